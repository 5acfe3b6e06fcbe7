"""An image folder with one subfolder per class, as torchvision's ImageFolder reads it.

    ROOT/n01440764/*.JPEG, ROOT/n01443537/*.JPEG, ...

ROOT is a local folder or a prefix on object storage (s3://bucket/imagenet/train), listed
and read through manifests/storage/. The coordinator lists it once per launch
(ImageFolderDataset) and keeps the listing as the run's data index; a split reads only its
own classes' rows of it (SplitFolder), never the whole folder.

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
from manifests.storage import Location, StorageError, location, redacted
from manifests.tables.data_index import ClassFiles, DataIndex
from workers.datasets.cache import fingerprint_files
from workers.datasets.errors import DatasetError
from workers.datasets.listing import IMAGE_EXTENSIONS, Progress, is_image, list_class, list_classes
from workers.datasets.loaded import LoadedImages

WORDNET_ID = re.compile(r"n\d{8}")
IMAGENET_CLASSES = 1000
REMOTE_READ_THREADS = 16
"""Files read at once from object storage: each GET is a round trip (~30 ms on S3), so one
thread per CPU would leave a split of 13k images waiting minutes on the network."""


def imagenet_class_names() -> list[str]:
    """torchvision's names of the 1000 ImageNet classes, in class-index order: read from the
    module that holds them without importing torchvision, which imports torch (~500 MB more
    in the coordinator, which otherwise never needs it); by the public API if it moved."""
    import ast
    import importlib.util
    from pathlib import Path

    try:
        source = Path(importlib.util.find_spec("torchvision").origin).parent / "models" / "_meta.py"
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_IMAGENET_CATEGORIES":
                names = ast.literal_eval(node.value)
                if len(names) == IMAGENET_CLASSES:
                    return list(names)
    except (AttributeError, OSError, SyntaxError, ValueError):
        pass
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _layout_hint(root: Location, class_ids: list[str]) -> str:
    if {"train", "val"} <= set(class_ids):
        return f"; it looks like a dataset's top folder: pass --data {root / 'train'}"
    return ""


class IndexedFolder:
    """Images of an image folder's classes, found through a data index (its file names, sizes
    and times) rather than by listing: what a split, `evaluate` and `report` read."""

    root: Location
    index: DataIndex

    @property
    def name(self) -> str:
        return str(self.root)

    def fingerprint(self, classes: list[int]) -> str:
        """Changes when a file of these classes is added, removed, replaced or touched (as listed)."""
        root = str(self.root)  # joined as text: the same as str(root / class_id / name), 10x faster
        return fingerprint_files((f"{root}/{files.class_id}/{name}", size, mtime)
                                 for files in map(self.index.files, classes)
                                 for name, size, mtime in zip(files.names, files.sizes, files.mtimes_ns))  # fmt: skip

    def check_unchanged(self, classes: list[int]) -> None:
        """Refuse to decode classes whose folders no longer hold what the index says: a data
        folder changed during a launch would otherwise mix old and new files across splits."""
        indexed = [self.index.files(c) for c in classes]
        with ThreadPoolExecutor(max_workers=1 if self.root.is_local else REMOTE_READ_THREADS) as pool:
            listed = list(pool.map(lambda files: list_class(self.root / files.class_id), indexed))
        for then, now in zip(indexed, listed):
            if now != then:
                added, removed, changed = then.differences(now)
                raise DatasetError(
                    f"class folder {self.root / then.class_id} changed after the launch listed it ({added} "
                    f"file(s) added, {removed} removed, {changed} changed); relaunch: it lists the data again and "
                    f"says what changed"
                )

    def load_classes(self, classes: list[int], image_size: int, per_class: int | None = None) -> LoadedImages:
        """Every image of the classes, or the first `per_class` files of each."""
        import torch

        jobs = [(self.root / files.class_id / name, local)
                for local, files in enumerate(map(self.index.files, classes)) for name in files.names[:per_class]]  # fmt: skip
        # PIL releases the GIL while it decodes and resizes, so threads decode in parallel; on
        # object storage more threads wait on GETs than there are CPUs to decode.
        threads = max(1, torch.get_num_threads())
        with ThreadPoolExecutor(max_workers=threads if self.root.is_local else max(threads, REMOTE_READ_THREADS)) as pool:
            decoded = list(pool.map(lambda job: _decode(job[0], image_size), jobs))
        kept = [(array, local) for array, (_, local) in zip(decoded, jobs) if array is not None]
        skipped = len(jobs) - len(kept)
        counts = torch.bincount(torch.tensor([local for _, local in kept], dtype=torch.long), minlength=len(classes))
        empty = [self.index.files(c).class_id for c, count in zip(classes, counts.tolist()) if count == 0]
        if empty:
            raise DatasetError(f"no readable images in class folder(s) {', '.join(empty[:3])} under {self.root}")
        images = torch.stack([array for array, _ in kept])
        return LoadedImages(images=images, labels=torch.tensor([local for _, local in kept]), skipped=skipped)


class SplitFolder(IndexedFolder):
    """Some classes of an image folder, read from the run's data index: no listing of the
    folder, and only these classes' file names in memory."""

    def __init__(self, index_path: Location, classes: list[int]):
        try:
            self.index = DataIndex.read(index_path, classes)
        except FileNotFoundError:
            raise DatasetError(f"the run's data index {index_path} is missing; relaunch to list the data again") from None
        self.root = location(self.index.root)
        missing = sorted(set(classes) - set(self.index.class_indices))
        if missing:
            raise DatasetError(f"the run's data index {index_path} has no class {missing[0]}; delete it and relaunch "
                               f"to list the data again")  # fmt: skip


class ImageFolderDataset(IndexedFolder):
    """A whole image folder, listed (every class folder's files, with sizes and times)."""

    def __init__(self, root: "str | os.PathLike | Location", progress: Progress | None = None):
        try:
            self.root = location(root)
            self._open(progress)
        except StorageError as exc:
            raise DatasetError(f"--data {redacted(root)}: {exc}") from None
        except OSError as exc:
            raise DatasetError(f"cannot list the data folder {root}: {first_line(exc, 300)}") from None

    def _open(self, progress: Progress | None) -> None:
        if not self.root.is_local:
            self.root.require_bucket()
        if not self.root.exists():
            raise DatasetError(f"data folder {self.root} does not exist; pass --data PATH or --data builtin")
        if not self.root.is_dir():
            raise DatasetError(f"--data {self.root} is a file; it must be a folder with one subfolder per class")
        entries = self.root.list()
        self.class_ids = sorted(e.name for e in entries if e.is_dir and not e.name.startswith("."))
        """Folder names (WordNet ids for ImageNet): what `--label` also accepts."""
        if not self.class_ids:
            loose = sum(not e.is_dir and is_image(e.name) for e in entries)
            found = f"it holds {loose} image files directly, " if loose else ""
            raise DatasetError(
                f"data folder {self.root} has no class subfolders; {found}expected {self.root}/<class>/<image files>"
            )
        self.index = list_classes(self.root, self.class_ids, progress, check=self._check_class)
        self.is_imagenet = len(self.class_ids) == IMAGENET_CLASSES and all(map(WORDNET_ID.fullmatch, self.class_ids))
        self.class_names = imagenet_class_names() if self.is_imagenet else list(self.class_ids)

    def _check_class(self, files: ClassFiles) -> None:
        if not files.names:
            raise DatasetError(
                f"class folder {self.root / files.class_id} holds no image files ({', '.join(IMAGE_EXTENSIONS[:4])}, "
                f"...)" + _layout_hint(self.root, self.class_ids)
            )


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
