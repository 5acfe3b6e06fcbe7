"""The built-in dataset: 1000 procedurally drawn classes of 32x32 RGB images, no download.

Class c is a coloured shape on a tinted background:
    c // 100       -> background style  (plain, fade-right, ..., frame)
    (c // 10) % 10 -> background tint   (slate, maroon, ..., sand)
    c % 10         -> foreground        (red circle, orange square, ..., white frame)
so with contiguous 10-class splits, the classes of a split share a background and differ
by their coloured shape. Inside a class, position, size, colours, the background's
layout's edges and pixel noise vary. Rendering is deterministic: the same request gives
the same images on every call.
"""
from __future__ import annotations

from workers.datasets.loaded import LoadedImages
from workers.datasets.palette import CLASS_NAMES, IMAGE_SIZE


class BuiltinDataset:
    """The built-in data as a dataset: `load_classes` renders a split's classes in memory."""

    name = "builtin"
    class_names = CLASS_NAMES
    class_ids = CLASS_NAMES
    images_per_class = 256

    def load_classes(self, classes: list[int], image_size: int) -> LoadedImages:
        import torch

        from workers.datasets.drawing import render_class

        if image_size != IMAGE_SIZE:
            raise ValueError(f"the built-in data is {IMAGE_SIZE}x{IMAGE_SIZE}; got image_size {image_size}")
        images = torch.cat([render_class(c, self.images_per_class) for c in classes])
        labels = torch.arange(len(classes)).repeat_interleave(self.images_per_class)
        return LoadedImages(images=images, labels=labels, skipped=0)
