"""What the quality guard and `ensemble evaluate` call a class.
Free of torch, so that the coordinator and `ensemble status` stay light.

A class is `collapsed` when its samples vary less than DIVERSITY_FLOOR times as much as its
real images, or come in near-copies (distinctness under DISTINCTNESS_FLOOR: a few pictures
repeated, however different those few are), and `low-accuracy` when its accuracy is under
ACCURACY_FLOOR times that of its held-out real images (the guard's verdict; `ensemble
evaluate` adds the paper's MS-SSIM criterion and `memorised`). The floors were calibrated
on real images used as samples, unchanged and made partially collapsed, of four kinds
(bench/guard_calibration.py; bench/README.md, "Calibrating the guard")."""
from __future__ import annotations

from manifests.tables.evaluation import COLLAPSED, LOW_ACCURACY, OK

DIVERSITY_FLOOR = 0.6
"""Samples that vary half as much as the class's real images are not ok: measured, such
samples score 0.39-0.57 (64 of them against the class's real spread), real images 0.79 and up."""
DISTINCTNESS_FLOOR = 0.75
"""Real images as samples score 0.88 and up; four or eight pictures each repeated with small
changes 0.83 and below (most under 0.3; every such case is also caught at 0.75, by this or by
diversity); the built-in run's generators 1.18 and up. Not 0.8: generators with the folder
recipe's mode-seeking term scored 0.785-0.796 on classes whose grids vary (bench/README.md)."""
ACCURACY_FLOOR = 0.5
"""Relative to the held-out real images' accuracy: a classifier that recognises 80% of real
images flags a class whose samples it recognises less than 40% of the time."""


def guard_verdict(accuracy: float, real_accuracy: float | None, diversity: float, distinctness: float | None) -> str:
    """The verdict the training guard can give: collapsed, low-accuracy or ok. `distinctness` is
    None for a best generator an older version scored without it."""
    if diversity < DIVERSITY_FLOOR or (distinctness is not None and distinctness < DISTINCTNESS_FLOOR):
        return COLLAPSED
    if accuracy < ACCURACY_FLOOR * (real_accuracy if real_accuracy is not None else 1.0):
        return LOW_ACCURACY
    return OK


def failed_measure(verdict: str, diversity: float, distinctness: float | None) -> str:
    """The figure a verdict that is not ok was given for: the manifest's flags name it."""
    if verdict != COLLAPSED:
        return "accuracy"
    return "diversity" if diversity < DIVERSITY_FLOOR or distinctness is None else "distinctness"
