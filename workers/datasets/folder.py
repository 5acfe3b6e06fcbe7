"""An image folder with one subfolder per class, as torchvision's ImageFolder reads it.

    ROOT/n01440764/*.JPEG, ROOT/n01443537/*.JPEG, ...

ROOT is a local folder or a prefix on object storage (s3://bucket/imagenet/train), listed
and read through manifests/storage/.

Class index = position of the folder name in sorted order, so ImageNet's training folder
gives the standard 1000 class indices; its classes are then named as torchvision names
them ("balloon"), and their WordNet ids are kept as class ids. Other folders' classes are
named by their folder names. Images of any size and mode (grayscale, palette, CMYK, alpha)
become RGB, centre-cropped to a square and resized to the model's resolution.
"""
from __future__ import annotations

import io
import os
import re
from concurrent.futures import ThreadPoolExecutor

from manifests.errors import first_line
from manifests.storage import Entry, Location, StorageError, location, redacted
from workers.datasets.cache import fingerprint_files
from workers.datasets.errors import DatasetError
from workers.datasets.loaded import LoadedImages

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
WORDNET_ID = re.compile(r"n\d{8}")
IMAGENET_CLASSES = 1000
LISTING_THREADS = 16
"""Class folders listed at once: on object storage each listing is a round trip."""


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def imagenet_class_names() -> list[str]:
    """torchvision's names of the 1000 ImageNet classes, in class-index order."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _layout_hint(root: Location, class_dirs: list) -> str:
    names = {entry.name for entry in class_dirs}
    if {"train", "val"} <= names:
        return f"; it looks like a dataset's top folder: pass --data {root / 'train'}"
    return ""


class ImageFolderDataset:
    def __init__(self, root: "str | os.PathLike | Location"):
        try:
            self.root = location(root)
            self._open()
        except StorageError as exc:
            raise DatasetError(f"--data {redacted(root)}: {exc}") from None
        except OSError as exc:
            raise DatasetError(f"cannot list the data folder {root}: {first_line(exc, 300)}") from None

    def _open(self) -> None:
        self.name = str(self.root)
        if not self.root.is_local:
            self.root.require_bucket()
        if not self.root.exists():
            raise DatasetError(f"data folder {self.root} does not exist; pass --data PATH or --data builtin")
        if not self.root.is_dir():
            raise DatasetError(f"--data {self.root} is a file; it must be a folder with one subfolder per class")
        entries = self.root.list()
        self.class_dirs = sorted(
            (e for e in entries if e.is_dir and not e.name.startswith(".")), key=lambda e: e.name
        )
        if not self.class_dirs:
            loose = sum(not e.is_dir and _is_image(e.name) for e in entries)
            found = f"it holds {loose} image files directly, " if loose else ""
            raise DatasetError(
                f"data folder {self.root} has no class subfolders; {found}expected {self.root}/<class>/<image files>"
            )
        with ThreadPoolExecutor(max_workers=LISTING_THREADS) as pool:
            self._files = list(pool.map(self._list_images, self.class_dirs))
        for entry, files in zip(self.class_dirs, self._files):
            if not files:
                raise DatasetError(
                    f"class folder {entry.location} holds no image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)"
                    + _layout_hint(self.root, self.class_dirs)
                )
        self.class_ids = [entry.name for entry in self.class_dirs]
        """Folder names (WordNet ids for ImageNet): what `--label` also accepts."""
        self.is_imagenet = len(self.class_ids) == IMAGENET_CLASSES and all(map(WORDNET_ID.fullmatch, self.class_ids))
        self.class_names = imagenet_class_names() if self.is_imagenet else list(self.class_ids)

    @staticmethod
    def _list_images(folder: Entry) -> list[Entry]:
        files = (f for f in folder.location.list() if not f.is_dir and _is_image(f.name))
        return sorted(files, key=lambda f: f.name)

    def files(self, class_index: int) -> list[Entry]:
        """The class's image files, sorted by name (listed once, when the dataset opened)."""
        return self._files[class_index]

    def fingerprint(self, classes: list[int]) -> str:
        return fingerprint_files(f for class_index in classes for f in self.files(class_index))

    def load_classes(self, classes: list[int], image_size: int, per_class: int | None = None) -> LoadedImages:
        """Every image of the classes, or the first `per_class` files of each."""
        import torch
        from concurrent.futures import ThreadPoolExecutor

        jobs = [(f.location, local) for local, c in enumerate(classes) for f in self.files(c)[:per_class]]
        # PIL releases the GIL while it decodes and resizes, so threads decode in parallel.
        with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
            decoded = list(pool.map(lambda job: _decode(job[0], image_size), jobs))
        kept = [(array, local) for array, (_, local) in zip(decoded, jobs) if array is not None]
        skipped = len(jobs) - len(kept)
        counts = torch.bincount(torch.tensor([local for _, local in kept], dtype=torch.long), minlength=len(classes))
        empty = [self.class_ids[c] for c, count in zip(classes, counts.tolist()) if count == 0]
        if empty:
            raise DatasetError(f"no readable images in class folder(s) {', '.join(empty[:3])} under {self.root}")
        images = torch.stack([array for array, _ in kept])
        return LoadedImages(images=images, labels=torch.tensor([local for _, local in kept]), skipped=skipped)


def _decode(file: Location, image_size: int):
    """(3, S, S) uint8, or None for a file that cannot be decoded (counted as skipped)."""
    import torch
    from PIL import Image, ImageOps

    # Read outside the try: a store that fails to answer is an error, not a skipped image.
    source = file.path if file.is_local else io.BytesIO(file.read_bytes())
    try:
        with Image.open(source) as img:
            img.draft("RGB", (image_size, image_size))  # JPEG: decode at a reduced scale, much faster
            img = ImageOps.fit(_to_rgb(img), (image_size, image_size), Image.BILINEAR)
            array = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None  # unreadable or corrupt
    return array.view(image_size, image_size, 3).permute(2, 0, 1)


def _to_rgb(img):
    """RGB from any mode; transparent pixels become white rather than whatever colour they hide."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
