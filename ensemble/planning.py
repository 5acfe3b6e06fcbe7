"""Split planning: C classes -> S splits of consecutive class indices, as equal as they can be.

With 1000 classes and 100 splits, split 41 holds classes 410-419, and global label 417 is
its local class 7. Which classes share a split made no conclusive difference in the
paper; contiguous ranges are its natural default. Where S does not divide C, the first C % S
splits get one class more (37 classes in 7 splits: two of 6, then five of 5): a folder with a
prime number of classes would otherwise get one model for all of them, and a model of 10
classes recognised the least-textured ones less often than two of 5 (bench/README.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ensemble.errors import EnsembleError

if TYPE_CHECKING:
    from manifests.tables.manifest import SplitRecord


def default_splits(num_classes: int, classes_per_split: int) -> int:
    """The number of splits --splits defaults to: the one whose splits hold nearest
    `classes_per_split` classes on average, by ratio (on a tie, the smaller splits). 1000
    classes at 10 per split: 100; 10 at 5: 2; 11 at 5: 2 (6 and 5); 7 at 5: 1 split of 7
    (1.4x) rather than 2 of 3.5 on average (1.43x); 37 at 10: 4 (10, 9, 9, 9)."""
    counts = range(1, max(num_classes, 1) + 1)

    def off_by(splits: int) -> float:
        size = num_classes / splits
        return round(max(size / classes_per_split, classes_per_split / size), 9)  # a tie stays a tie

    return min(counts, key=lambda d: (off_by(d), num_classes / d))


def plan_splits(num_classes: int, num_splits: int) -> list[list[int]]:
    """The class indices of each split, in split order: consecutive, the first
    num_classes % num_splits splits one class larger than the rest."""
    if num_classes < 1:
        raise EnsembleError("the dataset has no classes")
    if not 1 <= num_splits <= num_classes:
        raise EnsembleError(f"--splits must be between 1 and {num_classes} (the number of classes), got {num_splits}")
    size, larger = divmod(num_classes, num_splits)
    plan, start = [], 0
    for split in range(num_splits):
        end = start + size + (split < larger)
        plan.append(list(range(start, end)))
        start = end
    return plan


def split_size_text(num_classes: int, num_splits: int) -> str:
    """How many classes a split holds, as the launch line and the report say it: `10`, or `5-6`."""
    size, larger = divmod(num_classes, max(num_splits, 1))
    return f"{size}-{size + 1}" if larger else f"{size}"


def splits_named(records: list[SplitRecord], only: tuple[int, ...]) -> list[SplitRecord]:
    """The rows of the split ids `--only` names; an id the run does not have is refused."""
    wanted = set(only)
    unknown = sorted(wanted - {r.split for r in records})
    if unknown:
        raise EnsembleError(f"--only names split(s) {unknown[:5]} but this run has splits 0-{len(records) - 1}")
    return [r for r in records if r.split in wanted]


def format_split_ids(ids: tuple[int, ...] | list[int]) -> str:
    """(0, 1, 2, 3, 41) -> "0-3, 41": split ids as --only takes them."""
    ordered, runs = sorted(set(ids)), []
    for i in ordered:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def parse_split_ids(value: str | None) -> tuple[int, ...] | None:
    """`0-9,41` -> (0, 1, ..., 9, 41); None stays None (no --only: every split)."""
    if value is None:
        return None
    ids: list[int] = []
    for part in value.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise EnsembleError(f"--only {value!r} is not a list of split ids like `41` or `0-9,41`") from None
        if last < first:
            raise EnsembleError(f"--only {value!r} selects no split: {part.strip()} runs backwards; "
                                f"write it {last}-{first}")  # fmt: skip
        ids.extend(range(first, last + 1))
    return tuple(ids)
