"""What the quality guard and `ensemble evaluate` call a class, and how the manifest says it.
Free of torch, so that the coordinator and `ensemble status` stay light."""
from __future__ import annotations

OK, COLLAPSED, LOW_ACCURACY, MEMORISED = "ok", "collapsed", "low-accuracy", "memorised"
VERDICTS = (OK, COLLAPSED, LOW_ACCURACY, MEMORISED)


def describe_flags(flags: list[dict]) -> str:
    """`417 collapsed (diversity 0.12); 418 low-accuracy (accuracy 0.31)` for the manifest."""
    parts = []
    for flag in flags:
        figure = f"diversity {flag['diversity']:.2f}" if flag["verdict"] == COLLAPSED else f"accuracy {flag['accuracy']:.2f}"
        parts.append(f"{flag['label']} {flag['verdict']} ({figure})")
    return "; ".join(parts)
