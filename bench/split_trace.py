"""One split of a run trained again in this process, with the guard's figures per class at
every checkpoint: what to look at when a class fails and a retry does not help.

    python bench/split_trace.py --run bench/out/real/textures/run --split 1
    python bench/split_trace.py --run RUN --split 1 --seed 1000000008 --set lr=0.00025 --steps 6000
    python bench/split_trace.py --run RUN --split 0 --set g_mode_seeking=0 --ms-ssim

The split trains from scratch in a scratch folder with the run's recipe (its first seed unless
--seed; --set and --steps change it), 1 thread, as a 1-CPU Ray task would; the run is only read.
At each checkpoint it prints, per class, the guard's accuracy / diversity / distinctness (and,
with --ms-ssim, the mean MS-SSIM of the guard's samples over 100 pairs, which `ensemble
evaluate` compares with the most self-similar real class's plus 0.05). Training is
deterministic, so a split's first seed here repeats what its launch did. Issue 20 found with it
that the printed page's near-copies held at every checkpoint (no best-checkpoint rule could
save it) and came from the mode-seeking term (bench/README.md, "Mode-seeking on centred images").
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def traced_check(check, with_ms_ssim: bool):
    """QualityGuard.check, printing each class's figures as it returns them."""
    import torch

    from workers.quality.measures import MS_SSIM_PAIRS, mean_ms_ssim

    def check_and_print(guard, generator):
        scores = check(guard, generator)
        cells = [f"{s.accuracy:.2f}/{s.diversity:.2f}/{s.distinctness:.2f}" for s in scores]
        if with_ms_ssim:
            was_training = generator.training
            generator.eval()
            with torch.no_grad():
                fakes = generator(guard.noise, guard.labels).float()
            generator.train(was_training)
            fakes = ((fakes + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
            per_class = len(fakes) // len(scores)
            cells = [f"{cell}/{mean_ms_ssim(fakes[k * per_class : (k + 1) * per_class], MS_SSIM_PAIRS, k):.3f}"
                     for k, cell in enumerate(cells)]  # fmt: skip
        print("  " + "  ".join(cells), flush=True)
        return scores

    return check_and_print


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--split", type=int, required=True)
    parser.add_argument("--seed", type=int, help="default: the split's first seed in the run")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=JSON")
    parser.add_argument("--ms-ssim", action="store_true", help="also the MS-SSIM of each class's samples (slower)")
    args = parser.parse_args()

    import torch

    from ensemble.launching.tasks import base_seed
    from ensemble.run_spec import RunSpec
    from retries import replay_job
    from manifests.run_dir import RunDir
    from workers.quality import guard
    from workers.train import train_split

    run = RunDir(args.run)
    spec = RunSpec.from_dict(run.read_spec())
    record = run.read_manifest()[args.split]
    seed = args.seed if args.seed is not None else (record.seeds[0] if record.seeds else base_seed(spec, record))
    changes = {name: json.loads(value) for name, value in (pair.split("=", 1) for pair in args.overrides)}
    scratch = Path(tempfile.mkdtemp(prefix="split-trace-"))
    job = replay_job(run, spec, record, seed, scratch / "split")
    job = dataclasses.replace(job, gan={**job.gan, **changes}, steps=args.steps or job.steps)
    names = list(record.class_names)
    print(f"split {args.split} ({', '.join(names)}), seed {job.seed}, {job.steps} steps, changes {changes or 'none'}")
    print(f"  per class: accuracy/diversity/distinctness{'/MS-SSIM' if args.ms_ssim else ''}, every "
          f"{job.checkpoint_every} steps")  # fmt: skip
    guard.QualityGuard.check = traced_check(guard.QualityGuard.check, args.ms_ssim)
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        result = train_split(job, device=torch.device("cpu"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    name_of = dict(zip(record.classes, names))
    flags = "; ".join(f"{name_of[f['label']]} {f['verdict']} ({f['measure']} {f['value']:.3f})"
                      for f in result.flags) or "none"  # fmt: skip
    print(f"{time.perf_counter() - start:.0f} s; best step {result.best_step}, score {result.quality:.3f}; "
          f"flags: {flags}")


if __name__ == "__main__":
    main()
