"""`ensemble status`'s table: one aligned line per split, coloured by status on a terminal.

Plain formatting rather than rich's Table: rich took 6.5 s to lay out 10,000 splits and
0.08 s to import (bench/status_scale.py); this is a few milliseconds per thousand rows.
"""
from __future__ import annotations

from typing import Callable, Iterator

from manifests.tables.manifest import SplitRecord

# click.style arguments per status (`ensemble status` on a terminal).
STATUS_STYLES = {
    "pending": {"dim": True},
    "running": {"fg": "cyan"},
    "succeeded": {"fg": "green"},
    "flagged": {"fg": "magenta", "bold": True},
    "failed": {"fg": "red", "bold": True},
    "interrupted": {"fg": "yellow"},
}
COLUMNS = ("split", "classes", "status", "attempt", "step", "loss D", "loss G", "D class acc", "quality", "device",
           "node", "note")  # fmt: skip
RIGHT_ALIGNED = {"split", "attempt", "step"}
NOTE_WIDTH = 70

Style = Callable[..., str]
"""click.style's signature: style(text, **STATUS_STYLES[status]) -> text with colour codes."""


def _classes(classes: list[int]) -> str:
    if len(classes) > 1 and classes == list(range(classes[0], classes[-1] + 1)):
        return f"{classes[0]}-{classes[-1]}"
    return ",".join(map(str, classes))


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _cells(r: SplitRecord, evaluated: dict | None) -> tuple[str, ...]:
    return (
        str(r.split), _classes(r.classes), r.status, str(r.attempt), f"{r.step}/{r.total_steps}",
        _number(r.loss_d), _number(r.loss_g), _number(r.class_accuracy), _quality(r, evaluated),
        r.device or "", r.node or "", (r.error or r.flagged or r.warning or "")[:NOTE_WIDTH],
    )  # fmt: skip


def _quality(r: SplitRecord, evaluated: dict | None) -> str:
    """The guard's score of the best generator, and once evaluated, its classes that pass."""
    text = _number(r.quality)
    if evaluated and r.split in evaluated:
        counts = evaluated[r.split]
        text = f"{text} {counts['ok']}/{counts['classes']} ok".strip()
    return text


def table_lines(records: list[SplitRecord], style: Style, evaluated: dict | None = None) -> Iterator[str]:
    """The header, then a line per split. Columns empty in every row are left out.
    `evaluated`: {split: {"classes": n, "ok": n}} from `ensemble evaluate`, if it ran."""
    rows = [_cells(r, evaluated) for r in records]
    shown = [i for i, name in enumerate(COLUMNS) if i < 3 or any(row[i] for row in rows)]
    widths = {i: max([len(COLUMNS[i]), *(len(row[i]) for row in rows)]) for i in shown}

    def pad(i: int, text: str) -> str:
        return text.rjust(widths[i]) if COLUMNS[i] in RIGHT_ALIGNED else text.ljust(widths[i])

    status_at = shown.index(COLUMNS.index("status"))
    yield style("  ".join(pad(i, COLUMNS[i]) for i in shown).rstrip(), bold=True)
    for row, record in zip(rows, records):
        cells = [pad(i, row[i]) for i in shown]
        cells[status_at] = style(cells[status_at], **STATUS_STYLES.get(record.status, {}))
        yield "  ".join(cells).rstrip()
