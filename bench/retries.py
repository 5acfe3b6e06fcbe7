"""Quality retries that change the recipe against retries that change only the seed.

    python bench/retries.py --run ensemble-run

For every split of RUN that had a quality retry (two or more seeds), this trains the split
again in this process the way retries worked before issue 20: the first seed, then the second
seed with the run's recipe unchanged, in a scratch folder, guard on, 1 thread (as a 1-CPU Ray
task). The first attempt is the same code and seed as the run's, so it fails the same classes;
the comparison is what the second attempt then does. The run's own manifest has the outcome
with the recipe its retry used (ensemble/launching/recipes.py).
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


def seed_only(run_dir: Path, split: int, scratch: Path) -> tuple[list[dict], float]:
    """The split trained with its first two seeds and the run's recipe: the best generator's flags."""
    import torch

    from ensemble.run_spec import RunSpec
    from manifests.run_dir import RunDir
    from workers.train import train_split

    run = RunDir(run_dir)
    spec = RunSpec.from_dict(run.read_spec())
    record = run.read_manifest()[split]
    torch.set_num_threads(1)
    start = time.perf_counter()
    result = None
    for seed in record.seeds[:2]:
        job = replay_job(run, spec, record, seed, scratch / f"{split:03d}")
        result = train_split(job, device=torch.device("cpu"))
    return list(result.flags), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("ensemble-run"))
    args = parser.parse_args()
    from ensemble.launching.recipes import describe, parse_recipe
    from manifests.run_dir import RunDir

    records = [r for r in RunDir(args.run).read_manifest() if len(r.seeds) > 1]
    print(f"{len(records)} split(s) of {args.run} had a quality retry")
    scratch = Path(tempfile.mkdtemp(prefix="retries-bench-"))
    try:
        for record in records:
            flags, seconds = seed_only(args.run, record.split, scratch)
            recipe = describe(parse_recipe(record.recipes[1] if len(record.recipes) > 1 else None))
            shown = lambda fs: "; ".join(f"{f['label']} {f['verdict']} ({f['measure']} {f['value']:.2f})" for f in fs) or "none"  # noqa: E731
            print(f"split {record.split}: retry recipe ({recipe}) -> {record.status}, flags: {shown(record.flags)}")
            print(f"    a new seed only (the recipe unchanged), {seconds:.0f} s -> "
                  f"{'flagged' if flags else 'succeeded'}, flags: {shown(flags)}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
