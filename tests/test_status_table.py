"""`ensemble status`'s table (ensemble/status/table.py)."""
from ensemble.status.table import table_lines
from manifests.tables.manifest import SplitRecord, Status


def tagged(text: str, **style) -> str:
    """A stand-in for click.style that shows which style each cell got."""
    return f"<{','.join(sorted(style))}:{style.get('fg', '')}>{text}</>" if style else text


def records():
    done = SplitRecord(split=0, classes=list(range(10)), class_names=[], status=Status.SUCCEEDED, attempt=1,
                       step=450, total_steps=450, loss_d=1.23456, node="10.0.0.7")  # fmt: skip
    failed = SplitRecord(split=11, classes=[3, 17], class_names=[], status=Status.FAILED, attempt=2, step=12,
                         total_steps=450, error="CheckpointError: " + "x" * 200)  # fmt: skip
    return [done, failed]


def test_one_aligned_line_per_split_with_only_the_columns_that_have_values():
    lines = list(table_lines(records(), lambda text, **style: text))
    assert len(lines) == 3
    assert lines[0].split() == ["split", "classes", "status", "attempt", "step", "loss", "D", "node", "note"]
    assert lines[1].split()[:6] == ["0", "0-9", "succeeded", "1", "450/450", "1.235"]
    assert lines[2].split()[:5] == ["11", "3,17", "failed", "2", "12/450"]
    # Right-aligned numbers end in the same column as their header; notes are cut to 70 characters.
    assert lines[0].index("split") + len("split") == lines[1].index("0") + 1 == lines[2].index("11") + 2
    assert lines[2].endswith("x" * (70 - len("CheckpointError: ")))


def test_status_cells_are_styled_by_status_and_the_header_is_bold():
    lines = list(table_lines(records(), tagged))
    assert lines[0].startswith("<bold:>split")
    assert "<fg:green>succeeded</>" in lines[1] and "<bold,fg:red>failed   </>" in lines[2]
