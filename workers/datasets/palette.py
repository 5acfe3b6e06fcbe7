"""What the built-in classes look like, torch-free: the foregrounds, tints and background
styles that make a class (drawing.py renders them) and the class names made of them (read by
the coordinator, status and the tests without importing torch)."""
from __future__ import annotations

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
