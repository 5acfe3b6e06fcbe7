"""An image folder with one subfolder per class, as torchvision's ImageFolder reads it.

    ROOT/n01440764/*.JPEG, ROOT/n01443537/*.JPEG, ...

Class index = position of the folder name in sorted order, so ImageNet's training folder
gives the standard 1000 class indices. Images of any size and mode are converted to RGB,
centre-cropped to a square and resized to the model's resolution.
"""
from __future__ import annotations

import os
from pathlib import Path

from workers.datasets.loaded import LoadedImages

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class DatasetError(Exception):
    """A dataset that cannot be used: missing, empty, or laid out wrongly."""


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


class ImageFolderDataset:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.name = str(self.root)
        if not self.root.exists():
            raise DatasetError(f"data folder {self.root} does not exist; pass --data PATH or --data builtin")
        if not self.root.is_dir():
            raise DatasetError(f"--data {self.root} is a file; it must be a folder with one subfolder per class")
        self.class_dirs = sorted(
            (entry for entry in os.scandir(self.root) if entry.is_dir() and not entry.name.startswith(".")),
            key=lambda entry: entry.name,
        )
        if not self.class_dirs:
            raise DatasetError(
                f"data folder {self.root} has no class subfolders; expected {self.root}/<class>/<image files>"
            )
        for entry in self.class_dirs:
            if not any(_is_image(f.name) for f in os.scandir(entry.path) if f.is_file()):
                raise DatasetError(
                    f"class folder {entry.path} holds no image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)"
                )
        self.class_names = [entry.name for entry in self.class_dirs]

    def _files(self, class_index: int) -> list[str]:
        folder = self.class_dirs[class_index].path
        return sorted(os.path.join(folder, f.name) for f in os.scandir(folder) if f.is_file() and _is_image(f.name))

    def load_classes(self, classes: list[int], image_size: int) -> LoadedImages:
        import torch
        from PIL import Image, ImageOps

        images = []
        labels: list[int] = []
        skipped = 0
        for local_label, class_index in enumerate(classes):
            for path in self._files(class_index):
                try:
                    with Image.open(path) as img:
                        img = ImageOps.fit(img.convert("RGB"), (image_size, image_size), Image.BILINEAR)
                        array = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
                except (OSError, ValueError, Image.DecompressionBombError):
                    skipped += 1  # unreadable or corrupt: counted, left out
                    continue
                images.append(array.view(image_size, image_size, 3).permute(2, 0, 1))
                labels.append(local_label)
        counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=len(classes))
        empty = [self.class_names[c] for c, n in zip(classes, counts.tolist()) if n == 0]
        if empty:
            raise DatasetError(f"no readable images in class folder(s) {', '.join(empty[:3])} under {self.root}")
        return LoadedImages(images=torch.stack(images), labels=torch.tensor(labels), skipped=skipped)
