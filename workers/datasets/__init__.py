"""Datasets a split can train on, named by a `--data` spec:

    builtin            the embedded procedural data (32x32, 1000 classes)
    cifar10:ROOT       CIFAR-10 / CIFAR-100 / MNIST from a local torchvision root
    cifar100:ROOT      (workers/datasets/arrays.py)
    mnist:ROOT
    PATH               an image folder, one subfolder per class (ImageNet's train/ included),
                       local or on object storage (s3://bucket/imagenet/train, gs://...)

Every dataset has class_names, class_ids (what `--label` accepts besides names and
indices) and load_classes(classes, image_size); those that are costly to decode also have
fingerprint(classes), and load_split_images caches their decoded pixels. An image folder is
listed once per launch, into the run's data index; given that index, a split's loading
reads its own classes' rows and never lists the folder (workers/datasets/folder.py).
"""
from __future__ import annotations

import os
from pathlib import Path

from manifests.storage import is_uri
from workers.datasets.arrays import SOURCES
from workers.datasets.builtin import BuiltinDataset
from workers.datasets.errors import DatasetError
from workers.datasets.folder import ImageFolderDataset, IndexedFolder, SplitFolder
from workers.datasets.listing import Progress
from workers.datasets.loaded import LoadedImages

BUILTIN = "builtin"
IMAGE_CHANNELS = 3
"""Every dataset yields RGB images (grayscale repeated, palettes and alpha flattened)."""


def _split_spec(spec: str) -> tuple[str | None, str]:
    kind, sep, root = spec.partition(":")
    return (kind, root) if sep and kind in SOURCES else (None, spec)


def normalise_spec(spec: str) -> str:
    """The spec with its path made absolute, as run.json stores it."""
    if spec == BUILTIN:
        return spec
    kind, path = _split_spec(spec)
    if not is_uri(path):
        path = os.path.abspath(os.path.expanduser(path))
    return f"{kind}:{path}" if kind else path


def is_image_folder(spec: str) -> bool:
    """Whether `spec` names an image folder (the data that runs keep an index of)."""
    return spec != BUILTIN and _split_spec(spec)[0] is None


def open_dataset(spec: str, progress: Progress | None = None):
    """The whole dataset; an image folder is listed (with `progress` as it goes)."""
    if spec == BUILTIN:
        return BuiltinDataset()
    kind, path = _split_spec(spec)
    if kind is not None:
        if is_uri(path):
            raise DatasetError(f"--data {spec}: {kind} is read from a local folder only; copy it to each node, or "
                               f"pass an image folder (one subfolder per class) on object storage")  # fmt: skip
        if not Path(path).is_dir():
            raise DatasetError(f"--data {spec}: {path} is not a folder; pass {kind}:ROOT, ROOT being torchvision's root")
        return SOURCES[kind](path)
    return ImageFolderDataset(spec, progress)


def open_split(spec: str, classes: list[int], index=None):
    """What a split's classes are read from: for an image folder with a data index (a path,
    URI or Location of RUN/data-index.parquet that exists), those classes' rows of it; else
    the whole dataset."""
    if index is not None and is_image_folder(spec):
        from manifests.storage import location

        index = location(index)
        if index.exists():
            return SplitFolder(index, classes)
    return open_dataset(spec)


def load_split_images(spec: str, classes: list[int], image_size: int, cache_dir=None, index=None) -> LoadedImages:
    """One split's images; decoded once, then read from cache_dir (a path, URI or
    Location) on later attempts. `index`: the run's data index (see open_split)."""
    from workers.datasets.cache import write_cache

    dataset = open_split(spec, classes, index)
    if cache_dir is None or not hasattr(dataset, "fingerprint"):
        return dataset.load_classes(classes, image_size)
    path, key, cached = _cached(dataset, classes, image_size, cache_dir)
    if cached is not None:
        return cached
    if isinstance(dataset, SplitFolder):
        dataset.check_unchanged(classes)  # decoding now: the files must still be those the run listed
    data = dataset.load_classes(classes, image_size)
    try:
        write_cache(path, key, data)
    except OSError:
        pass  # a full or read-only disk costs the next attempt a decode, nothing more
    return data


def real_examples(spec: str, classes: list[int], image_size: int, per_class: int, cache_dir=None,
                  index=None) -> LoadedImages:  # fmt: skip
    """A few images of each class, for people to look at: from the split's decode cache when
    it has one, else decoding (or drawing) only those few. `index`: see open_split."""
    import torch

    dataset = open_split(spec, classes, index)
    if isinstance(dataset, BuiltinDataset):
        from workers.datasets.drawing import render_class

        images = torch.cat([render_class(c, per_class) for c in classes])
        return LoadedImages(images, torch.arange(len(classes)).repeat_interleave(per_class), skipped=0)
    if cache_dir is not None and hasattr(dataset, "fingerprint"):
        cached = _cached(dataset, classes, image_size, cache_dir, per_class)[2]
        if cached is not None:
            return cached
    if isinstance(dataset, IndexedFolder):
        return dataset.load_classes(classes, image_size, per_class=per_class)
    return dataset.load_classes(classes, image_size)


def _cached(dataset, classes: list[int], image_size: int, cache_dir, per_class: int | None = None):
    """(the cache file, the key the split's images have now, what the cache holds under that key or None)."""
    from workers.datasets.cache import cache_key, cache_path, read_cache

    path = cache_path(cache_dir, image_size)
    key = cache_key(dataset.name, dataset.fingerprint(classes), classes, image_size)
    return path, key, read_cache(path, key, per_class)


__all__ = ["BUILTIN", "BuiltinDataset", "DatasetError", "ImageFolderDataset", "LoadedImages", "SplitFolder",
           "is_image_folder", "load_split_images", "normalise_spec", "open_dataset", "open_split", "real_examples"]  # fmt: skip
