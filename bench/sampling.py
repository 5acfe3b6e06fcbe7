"""Sampling latency: `ensemble sample --label 417`, cold and in-process.

    python bench/sampling.py                  # trains split 41 of a new run first (~30 s)
    python bench/sampling.py --run ensemble-run

cold: the whole `ensemble sample --label 417 --n 16` command in a fresh process (Python
start, imports, manifest, routing, loading, generating, PNG), median of --repeats.
in-process: the same steps timed one by one in this process, the first call and then the
median of --repeats warm calls: routing (read the manifest, build the router, resolve),
loading the generator, generating 16 images. The same is timed for a paper-128 generator
(random weights, the real size: 16.5M parameters), whose load and generation cost is what
a user of the paper presets waits for.
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

LABEL = "417"
COUNT = 16


def cold(run: Path, out: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*ENSEMBLE, "sample", "--label", LABEL, "--n", str(COUNT), "--run", str(run), "--out", str(out)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def stages(run: Path, weights: Path | None) -> dict[str, float]:
    """Seconds of each stage of one sample call; `weights` overrides the routed checkpoint."""
    from ensemble.routing import Router
    from manifests.run_dir import RunDir
    from workers.checkpoints import load_generator
    from workers.images import generate

    times = {}
    start = time.perf_counter()
    route = Router(RunDir(run).read_manifest()).resolve(LABEL)
    times["route (manifest + router + resolve)"] = time.perf_counter() - start
    start = time.perf_counter()
    generator, _ = load_generator(weights or run / route.record.checkpoint)
    times["load generator"] = time.perf_counter() - start
    start = time.perf_counter()
    generate(generator, route.local_label, COUNT, seed=0)
    times[f"generate {COUNT} images"] = time.perf_counter() - start
    return times


def paper_128_weights(folder: Path) -> Path:
    import torch

    from workers.checkpoints import GeneratorInfo, save_generator
    from workers.model import Generator
    from workers.presets import get_preset

    config = get_preset("paper-128").gan
    torch.manual_seed(0)
    info = GeneratorInfo(config=config, step=0, split=41, classes=list(range(410, 420)),
                         class_names=[str(c) for c in range(410, 420)])  # fmt: skip
    return save_generator(folder, Generator(config), info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a run whose split owning label 417 has a checkpoint")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as `ensemble sample` on a 1-CPU share; the cold command uses torch's default
    work = Path(tempfile.mkdtemp(prefix="sampling-bench-"))
    try:
        run = args.run
        if run is None:
            run = work / "run"
            subprocess.run([*ENSEMBLE, "launch", "--splits", "100", "--only", "41", "--run", str(run)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        rows = [(f"ensemble sample --label {LABEL} --n {COUNT}: whole process, cold", cold(run, work / "s.png", args.repeats))]
        big = paper_128_weights(work / "paper-128")
        for name, weights in (("cpu-32 (trained)", None), ("paper-128 (random weights)", big)):
            first = stages(run, weights)
            warm = [stages(run, weights) for _ in range(args.repeats)]
            for stage, seconds in first.items():
                rows.append((f"{name}: {stage}, first / warm", (seconds, statistics.median(w[stage] for w in warm))))
        width = max(len(name) for name, _ in rows)
        print(f"torch {torch.__version__}, in-process on 1 thread")
        for name, value in rows:
            shown = f"{value:.3f} s" if isinstance(value, float) else f"{value[0] * 1e3:.1f} / {value[1] * 1e3:.1f} ms"
            print(f"{name:<{width}}  {shown}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
