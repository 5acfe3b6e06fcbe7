"""Datasets a split can train on: the built-in procedural data or an image folder."""
from __future__ import annotations

from workers.datasets.builtin import BuiltinDataset
from workers.datasets.folder import DatasetError, ImageFolderDataset
from workers.datasets.loaded import LoadedImages

BUILTIN = "builtin"


def open_dataset(spec: str) -> BuiltinDataset | ImageFolderDataset:
    """`builtin` for the embedded data, or the path of an image folder."""
    if spec == BUILTIN:
        return BuiltinDataset()
    return ImageFolderDataset(spec)


__all__ = ["BUILTIN", "BuiltinDataset", "DatasetError", "ImageFolderDataset", "LoadedImages", "open_dataset"]
