"""The Python API against the CLI: `Run.sample` warm in-process, `ensemble sample` as a
process, `ensemble.open` + `status()`, and the memory of a process that sampled every label.

    python bench/api.py                      # builds a 100-split run of cpu-32 generators (~10 s)
    python bench/api.py --run ensemble-run   # a trained run (every split with a generator)

Without --run, every split gets a cpu-32 generator with random weights (the size and the cost of
a trained one, not its pictures), so that all 1000 labels can be sampled. `ensemble serve`'s
latency is bench/serving.py's.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from command import ENSEMBLE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def random_run(root: Path) -> Path:
    """A 100-split built-in run whose every split has a cpu-32 generator (random weights)."""
    import torch

    from manifests.run_dir import RunDir
    from manifests.tables.manifest import Status
    from workers.checkpoints import GeneratorInfo, save_generator
    from workers.model import Generator
    from workers.presets import get_preset

    sys.path.insert(0, str(ROOT))
    from tests.helpers import planned_run

    run = planned_run(root)
    records = run.read_manifest()
    torch.manual_seed(0)
    config = get_preset("cpu-32").gan
    generator = Generator(config)
    for record in records:
        info = GeneratorInfo(config=config, step=10, split=record.split, classes=list(record.classes),
                             class_names=list(record.class_names))  # fmt: skip
        path = save_generator(run.split_dir(record.split), generator, info)
        record.checkpoint, record.checkpoint_step, record.status, record.step = run.relative(path), 10, Status.SUCCEEDED, 10
    RunDir(root).write_manifest(records)
    return root


def in_fresh_process(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT).stdout


def open_and_status(run: Path, repeats: int) -> float:
    code = f"""
import time
start = time.perf_counter()
import ensemble
table = ensemble.open({str(run)!r}).status()
print(time.perf_counter() - start, len(table))
"""
    return statistics.median(float(in_fresh_process(code).split()[0]) for _ in range(repeats))


def cli_sample(run: Path, out: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*ENSEMBLE, "sample", "--label", "417", "--n", "16", "--run", str(run), "--out", str(out)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def warm_sample(run: Path, calls: int) -> tuple[float, float, float]:
    """First call, then p50 and p95 of `calls` warm ones, in this process (torch's default threads)."""
    import ensemble

    opened = ensemble.open(run)
    start = time.perf_counter()
    opened.sample(417, n=16)
    first = time.perf_counter() - start
    times = []
    for seed in range(calls):
        start = time.perf_counter()
        opened.sample(417, n=16, seed=seed)
        times.append(time.perf_counter() - start)
    times.sort()
    return first, times[len(times) // 2], times[int(len(times) * 0.95)]


def memory_after_every_label(run: Path, capacity: int | None) -> tuple[float, float]:
    """RSS (MB) of a fresh process after opening the run, and after sampling each of its labels once."""
    code = f"""
import ensemble, ensemble.api
from ensemble.generators import GeneratorCache
if {capacity!r} is not None:
    ensemble.api.GENERATORS = GeneratorCache({capacity!r})
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6
run = ensemble.open({str(run)!r})
run.sample(0, n=1)
before = rss()
for label in range(1000):
    run.sample(label, n=4)
print(before, rss(), len(ensemble.api.GENERATORS))
"""
    before, after, kept = in_fresh_process(code).split()
    return float(before), float(after), int(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a run whose every split has a generator")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    try:
        run = args.run or random_run(work / "run")
        first, p50, p95 = warm_sample(run, args.calls)
        print(f"Run.sample(417, n=16) in-process: first {first * 1e3:.1f} ms, warm p50 {p50 * 1e3:.2f} ms, "
              f"p95 {p95 * 1e3:.2f} ms ({args.calls} calls)")  # fmt: skip
        print(f"ensemble sample --label 417 --n 16 as a process: median {cli_sample(run, work / 's.png', args.repeats):.2f} s")
        print(f"ensemble.open + status() of 100 splits, fresh process (imports included): "
              f"median {open_and_status(run, args.repeats):.3f} s")  # fmt: skip
        for capacity, name in ((None, "the default bound (8)"), (1000, "no bound")):
            before, after, kept = memory_after_every_label(run, capacity)
            print(f"RSS after sampling all 1000 labels once, {name}: {before:.0f} MB -> {after:.0f} MB, "
                  f"{kept} generators kept")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
