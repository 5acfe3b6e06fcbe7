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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.datasets.loaded import LoadedImages

IMAGE_SIZE = 32
NUM_CLASSES = 1000

FOREGROUNDS = [  # (colour, shape, hue, saturation)
    ("red", "circle", 0.00, 0.9),
    ("orange", "square", 0.08, 0.9),
    ("yellow", "triangle", 0.15, 0.9),
    ("lime", "cross", 0.25, 0.9),
    ("green", "diamond", 0.36, 0.9),
    ("cyan", "plus", 0.50, 0.9),
    ("blue", "ring", 0.62, 0.9),
    ("violet", "bar", 0.75, 0.9),
    ("magenta", "column", 0.86, 0.9),
    ("white", "frame", 0.00, 0.0),
]
TINTS = [  # (name, hue, saturation) of the background: grey, then 9 evenly spaced hues
    ("slate", 0.00, 0.00),
    ("maroon", 0.00, 0.55),
    ("rust", 0.11, 0.55),
    ("olive", 0.22, 0.55),
    ("moss", 0.33, 0.55),
    ("jade", 0.44, 0.55),
    ("teal", 0.55, 0.55),
    ("navy", 0.66, 0.55),
    ("indigo", 0.77, 0.55),
    ("plum", 0.88, 0.55),
]
STYLES = [
    "plain", "halves", "tiers", "frame", "window",
    "quarters", "band", "pillar", "corner", "dim",
]  # fmt: skip


def class_name(label: int) -> str:
    style, tint, fg = label // 100, (label // 10) % 10, label % 10
    colour, shape, _, _ = FOREGROUNDS[fg]
    return f"{colour} {shape} on {TINTS[tint][0]} {STYLES[style]}"


CLASS_NAMES = [class_name(label) for label in range(NUM_CLASSES)]


class BuiltinDataset:
    """The built-in data as a dataset: `load_classes` renders a split's classes in memory."""

    name = "builtin"
    class_names = CLASS_NAMES
    class_ids = CLASS_NAMES
    images_per_class = 256

    def load_classes(self, classes: list[int], image_size: int) -> LoadedImages:
        import torch

        from workers.datasets.drawing import render_class
        from workers.datasets.loaded import LoadedImages

        if image_size != IMAGE_SIZE:
            raise ValueError(f"the built-in data is {IMAGE_SIZE}x{IMAGE_SIZE}; got image_size {image_size}")
        images = torch.cat([render_class(c, self.images_per_class) for c in classes])
        labels = torch.arange(len(classes)).repeat_interleave(self.images_per_class)
        return LoadedImages(images=images, labels=labels, skipped=0)
