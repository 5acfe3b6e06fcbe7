"""Quality retries as they are (a new seed, a new recipe, from scratch) against retries that
change only the seed, or that fine-tune the failed attempt instead of starting again.

    python bench/retries.py --run ensemble-run
    python bench/retries.py --run ensemble-run --fine-tune 0.5                # 225 of cpu-32's 450 steps
    python bench/retries.py --run ensemble-run --fine-tune 0.5 --set g_mode_seeking=1.0

For every split of RUN that had a quality retry (two or more seeds), this trains the split
again in this process: the first seed, then the second, in a scratch folder, guard on, 1 thread
(as a 1-CPU Ray task). The first attempt is the same code and seed as the run's, so it fails the
same classes; the comparison is what the second attempt then does:
- by default, the way retries worked before issue 20: the second seed with the run's recipe;
- with --fine-tune F, the retry's recipe (its lr; --set adds fields) for F x the run's steps,
  starting from the first attempt's last training state (G, D, their optimisers and G's
  average) instead of from scratch: a retry that would cost a fraction of one.
The run's own manifest has the outcome with the recipe its retry used (ensemble/launching/recipes.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def replay_job(run, spec, record, seed: int, split_dir: Path):
    """The job of one attempt of a run's split with `seed` and the run's own recipe, writing to
    `split_dir` instead of the run: a split trained again in this process (also split_trace.py)."""
    from ensemble.launching.tasks import job_for

    plain = dataclasses.replace(record, seeds=[seed], recipes=["{}"])
    return dataclasses.replace(job_for(spec, plain, run), split_dir=str(split_dir))


def first_attempt(run_dir: Path, split: int, scratch: Path):
    """The split's first seed trained as in the run, in scratch (1 thread, as a 1-CPU Ray task):
    the run's spec, the split's row and the folder its retry goes on in."""
    import torch

    from ensemble.run_spec import RunSpec
    from manifests.run_dir import RunDir
    from workers.train import train_split

    run = RunDir(run_dir)
    spec = RunSpec.from_dict(run.read_spec())
    record = run.read_manifest()[split]
    split_dir = scratch / f"{split:03d}"
    torch.set_num_threads(1)
    train_split(replay_job(run, spec, record, record.seeds[0], split_dir), device=torch.device("cpu"))
    return run, spec, record, split_dir


def seed_only(run_dir: Path, split: int, scratch: Path) -> tuple[list[dict], float, float | None]:
    """The split trained with its first two seeds and the run's recipe: the best generator's
    flags, the retry's seconds and the split's best score."""
    import torch

    from workers.train import train_split

    run, spec, record, split_dir = first_attempt(run_dir, split, scratch)
    start = time.perf_counter()
    result = train_split(replay_job(run, spec, record, record.seeds[1], split_dir), device=torch.device("cpu"))
    return list(result.flags), time.perf_counter() - start, result.quality


def fine_tuned(run_dir: Path, split: int, scratch: Path, fraction: float,
               extra: dict) -> tuple[list[dict], float, float | None]:  # fmt: skip
    """The split's first attempt as in the run, then its retry's recipe (with `extra`) for
    `fraction` of the run's steps from that attempt's last state: as seed_only returns."""
    import torch

    import workers.train as train
    from ensemble.launching.tasks import job_for

    run, spec, record, split_dir = first_attempt(run_dir, split, scratch)
    retry = job_for(spec, dataclasses.replace(record, seeds=record.seeds[:2], recipes=record.recipes[:2]), run)
    retry = dataclasses.replace(retry, split_dir=str(split_dir), steps=round(spec.steps * fraction),
                                gan={**retry.gan, **extra})  # fmt: skip
    plain = train._state_to_resume

    def from_the_failed_attempt(split_dir, config, seed):
        loaded = train.load_training_state(split_dir)
        if loaded is None or int(loaded.state["seed"]) == seed:
            return plain(split_dir, config, seed)
        torch.manual_seed(seed)  # the retry's own random streams, from its first step
        state = {name: value for name, value in loaded.state.items() if name not in ("history", "history_window")}
        state.update(step=0, seed=seed, train_seconds=0.0, rng=torch.Generator().manual_seed(seed).get_state(),
                     torch_rng=torch.get_rng_state())  # fmt: skip
        for optimiser in ("opt_g", "opt_d"):
            for group in state[optimiser]["param_groups"]:
                group["lr"] = config.lr  # the retry's lr, not the failed attempt's
        return state, None, True

    train._state_to_resume = from_the_failed_attempt
    try:
        start = time.perf_counter()
        result = train.train_split(retry, device=torch.device("cpu"))
    finally:
        train._state_to_resume = plain
    return list(result.flags), time.perf_counter() - start, result.quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("ensemble-run"))
    parser.add_argument("--fine-tune", type=float, metavar="F",
                        help="retry from the failed attempt's last state, for F x the run's steps")
    parser.add_argument("--set", dest="overrides", action="append", metavar="FIELD=VALUE",
                        help="with --fine-tune: a model field the retry changes besides its recipe's")
    args = parser.parse_args()
    from ensemble.launching.recipes import describe, parse_recipe
    from ensemble.run_spec import parse_overrides
    from manifests.run_dir import RunDir

    records = [r for r in RunDir(args.run).read_manifest() if len(r.seeds) > 1]
    print(f"{len(records)} split(s) of {args.run} had a quality retry")
    scratch = Path(tempfile.mkdtemp(prefix="retries-bench-"))
    try:
        for record in records:
            if args.fine_tune:
                flags, seconds, score = fine_tuned(args.run, record.split, scratch, args.fine_tune,
                                                   parse_overrides(args.overrides))  # fmt: skip
                tried = f"fine-tuned for {args.fine_tune:g}x the steps{' with ' + ', '.join(args.overrides) if args.overrides else ''}"
            else:
                flags, seconds, score = seed_only(args.run, record.split, scratch)
                tried = "a new seed only (the recipe unchanged)"
            recipe = describe(parse_recipe(record.recipes[1] if len(record.recipes) > 1 else None))
            shown = lambda fs: "; ".join(f"{f['label']} {f['verdict']} ({f['measure']} {f['value']:.2f})" for f in fs) or "none"  # noqa: E731
            print(f"split {record.split}: retry recipe ({recipe}) -> {record.status}, flags: {shown(record.flags)}")
            print(f"    {tried}: retry {seconds:.1f} s -> {'flagged' if flags else 'succeeded'} (best score {score:.3f}), "
                  f"flags: {shown(flags)}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
