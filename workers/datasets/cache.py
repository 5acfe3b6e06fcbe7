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
from pathlib import Path

from workers.datasets.loaded import LoadedImages

CACHE_VERSION = "1"


def cache_path(cache_dir: Path, image_size: int) -> Path:
    return Path(cache_dir) / f"images-{image_size}.safetensors"


def fingerprint_files(paths) -> str:
    """Changes when any of these files is added, removed, replaced or touched."""
    digest = hashlib.sha1()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_key(source: str, fingerprint: str, classes: list[int], image_size: int) -> str:
    text = json.dumps([CACHE_VERSION, source, fingerprint, list(classes), image_size])
    return hashlib.sha1(text.encode()).hexdigest()


def read_cache(path: Path, key: str) -> LoadedImages | None:
    """The cached images, or None when there are none for this key (or the file is damaged)."""
    from safetensors import SafetensorError, safe_open

    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("key") != key:
                return None
            return LoadedImages(images=f.get_tensor("images"), labels=f.get_tensor("labels"),
                                skipped=int(metadata["skipped"]))  # fmt: skip
    except (SafetensorError, OSError, KeyError, ValueError):
        return None  # decoded again and rewritten


def write_cache(path: Path, key: str, data: LoadedImages) -> None:
    from safetensors.torch import save_file

    from manifests.atomic_files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"images": data.images.contiguous(), "labels": data.labels.contiguous()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"key": key, "skipped": str(data.skipped)}))
