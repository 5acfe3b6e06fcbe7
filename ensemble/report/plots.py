"""A split's training curves as one PNG, drawn with matplotlib from its history.parquet rows.

matplotlib's Agg canvas draws offline, without a display or a browser-side library, into a
small image the report embeds; the Figure API (not pyplot) keeps no global state, so a
report can draw a hundred of them in one process."""
from __future__ import annotations

import io

PANELS = (
    ("losses", (("loss_d", "D"), ("loss_g", "G")), None),
    ("D's class accuracy", (("class_accuracy", "real"), ("class_accuracy_fake", "fake")), (0.0, 1.02)),
    ("D's P(real)", (("d_real", "on real"), ("d_fake", "on fake")), (0.0, 1.02)),
    ("quality guard", (("sample_accuracy", "sample acc."), ("sample_diversity", "least div."), ("quality", "score")),
     (0.0, None)),
)
"""(title, ((history column, legend), ...), y limits): a panel each; the guard's only when
the split has guard rows."""
COLOURS = ("#1f77b4", "#d62728", "#2ca02c")


def curves_png(rows: list[dict], width_px: int = 880, height_px: int = 170) -> bytes:
    """The curves of one split's history rows (manifests/tables/history.py), as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [p for p in PANELS if any(row.get(column) is not None for row in rows for column, _ in p[1])]
    dpi = 80
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, lines, limits) in zip(axes, panels):
        for (column, legend), colour in zip(lines, COLOURS):
            points = [(row["step"], row[column]) for row in rows if row.get(column) is not None]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, color=colour, linewidth=1.2, label=legend,
                        marker="o" if len(points) < 12 else None, markersize=2.5)  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if limits:
            ax.set_ylim(*limits)
        ax.legend(fontsize=7, frameon=False, loc="upper right")  # "best" measures every spot: 5x slower
        ax.set_xlabel("step", fontsize=7, labelpad=1)
    # Fixed margins: tight_layout measured every label and took a third of the time.
    figure.subplots_adjust(left=0.045, right=0.99, bottom=0.2, top=0.88, wspace=0.22)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
