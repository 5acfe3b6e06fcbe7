"""A split's decoded images, cached on the run's storage: splits/NNN/images-SIZE.safetensors.

Decoding and resizing ~13k JPEGs takes a minute; a retry, a resume or a relaunch reads
the uint8 tensor back in a second instead. The file records what it was made from (a
fingerprint of the source files' paths, sizes and times, the classes and the size), so a
changed dataset is decoded again rather than trained on stale pixels.
"""
from __future__ import annotations

import hashlib
import json
import os

from typing import Iterable

from manifests.storage import Location, location
from workers.datasets.loaded import LoadedImages

CACHE_VERSION = "1"


def cache_path(cache_dir: "Location | str", image_size: int) -> Location:
    return location(cache_dir) / f"images-{image_size}.safetensors"


def fingerprint_files(files: "Iterable[tuple[object, int | None, int | None]]") -> str:
    """Changes when any of these files is added, removed, replaced or touched. Each is
    (path or Location, size, mtime_ns); a size of None is found by a stat."""
    digest = hashlib.sha1()
    for path, size, mtime_ns in files:
        if size is None:
            stat = os.stat(str(path))
            size, mtime_ns = stat.st_size, stat.st_mtime_ns
        digest.update(f"{path}\0{size}\0{mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_key(source: str, fingerprint: str, classes: list[int], image_size: int) -> str:
    text = json.dumps([CACHE_VERSION, source, fingerprint, list(classes), image_size])
    return hashlib.sha1(text.encode()).hexdigest()


def read_cache(path: Location, key: str, per_class: int | None = None) -> LoadedImages | None:
    """The cached images (only the first `per_class` of each class when given: the report
    shows six, and a paper-128 split's cache is 640 MB), or None when there are none for this
    key (or the file is damaged)."""
    from safetensors import SafetensorError, safe_open

    path = location(path)
    if not path.exists():
        return None
    try:
        with path.reading() as local, safe_open(local, framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("key") != key:
                return None
            labels = f.get_tensor("labels")
            if per_class is None:
                images = f.get_tensor("images")
            else:
                import itertools

                import torch

                # Each class's images are one run (decoded in class order): read its first rows only.
                counts = torch.unique_consecutive(labels, return_counts=True)[1].tolist()
                starts = itertools.accumulate([0] + counts[:-1])
                ranges = [(start, start + min(per_class, count)) for start, count in zip(starts, counts)]
                images = torch.cat([f.get_slice("images")[a:b] for a, b in ranges])
                labels = torch.cat([labels[a:b] for a, b in ranges])
            return LoadedImages(images=images, labels=labels, skipped=int(metadata["skipped"]))
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError):
        return None  # decoded again and rewritten


def write_cache(path: Location, key: str, data: LoadedImages) -> None:
    from safetensors.torch import save_file

    tensors = {"images": data.images.contiguous(), "labels": data.labels.contiguous()}
    location(path).write_with(lambda tmp: save_file(tensors, tmp, metadata={"key": key, "skipped": str(data.skipped)}))
