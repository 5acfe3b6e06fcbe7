"""What a quality retry of a split changes, chosen by what failed.

A split whose best generator fails classes is trained again from scratch with a new seed
(tasks.py). A new seed alone repeats the recipe that failed, and tends to fail the same way
(issue 20), so each retry also changes the recipe, one rung further up a ladder per verdict:

    collapsed     (a class's samples vary too little,  -> half the lr and 1.5x the steps, then the
                   or come in near-copies)                same with MSGAN's mode-seeking term in
                                                          G's loss (weight 1, or the run's if higher)
    low-accuracy  (the classifier does not recognise) -> half the lr, then a quarter of it and
                                                          1.5x the steps

A split with both kinds of failure climbs both ladders at once. Past the top rung a retry
keeps the top rung's recipe with yet another seed: the last resort, not the first. Each
seed's recipe is recorded in the manifest (`recipes`, in step with `seeds`) and shown by
`ensemble status --json` and the report. The guard keeps the best generator over every
attempt (by its score), so a retry can only raise the split's score.

The rungs were chosen by measurement (bench/README.md, issue 20): on the built-in run's six
low-accuracy retries a new seed alone fixed none of the three that stayed flagged, nor did
1.5x or 2x the steps; half the lr fixed all three (guard score 0.71-0.77 -> 0.89-0.90). On
the two splits the calibrated guard called collapsed (diversity 0.57, 0.58), the mode-seeking
term alone left both flagged, half the lr fixed one (and the other's class went unrecognised),
half the lr with 1.5x the steps fixed both (0.74-0.79 -> 0.85-0.89).
"""
from __future__ import annotations

import json

from workers.quality.verdicts import COLLAPSED, LOW_ACCURACY

LADDERS = {
    COLLAPSED: [{"lr_factor": 0.5, "steps_factor": 1.5},
                {"lr_factor": 0.5, "steps_factor": 1.5, "set": {"g_mode_seeking": 1.0}}],
    LOW_ACCURACY: [{"lr_factor": 0.5}, {"lr_factor": 0.25, "steps_factor": 1.5}],
}


def retry_recipe(flags: list[dict], retry: int, gan: dict, steps: int) -> dict:
    """The recipe of a split's `retry`-th quality retry (1: the first) after its best generator
    failed the classes in `flags`, relative to the run's recipe (`gan`, `steps`): what failed
    (`because`), the model fields it sets (`set`) and its steps (`steps`, when changed)."""
    verdicts = sorted({flag["verdict"] for flag in flags})
    recipe: dict = {"because": verdicts, "set": {}}
    factor_steps = factor_lr = 1.0
    for verdict in verdicts:
        ladder = LADDERS.get(verdict)
        if not ladder:
            continue
        rung = ladder[min(retry, len(ladder)) - 1]
        # A rung's fields are strengths it raises to, never lowers (a run's own mode-seeking
        # weight above the rung's stays).
        recipe["set"].update({name: max(value, gan.get(name) or 0) for name, value in rung.get("set", {}).items()})
        factor_steps = max(factor_steps, rung.get("steps_factor", 1.0))
        factor_lr = min(factor_lr, rung.get("lr_factor", 1.0))
    if factor_lr != 1.0:
        recipe["set"]["lr"] = gan["lr"] * factor_lr
    if factor_steps != 1.0:
        recipe["steps"] = round(steps * factor_steps)
    return recipe


def parse_recipe(text: str | None) -> dict:
    """A manifest's recipe text as a dict ({} for none: the run's recipe)."""
    return json.loads(text) if text else {}


def describe(recipe: dict) -> str:
    """A recipe as people read it: `the run's recipe`, or `collapsed: g_mode_seeking=1.0`."""
    changes = [f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
               for name, value in recipe.get("set", {}).items()]  # fmt: skip
    if "steps" in recipe:
        changes.append(f"steps={recipe['steps']}")
    if not recipe.get("because"):
        return "the run's recipe"
    return f"{', '.join(recipe['because'])}: {', '.join(changes) or 'a new seed only'}"
