"""Peak memory of the coordinator and of one running split, for a real `ensemble launch`.

    python bench/memory.py                                   # cpu-32 on the built-in data
    python bench/memory.py --preset paper-64 --steps 2       # a 64x64 image folder is made up
    python bench/memory.py --preset paper-128 --steps 2

Runs `ensemble launch --splits 100 --only 0,1` (two splits, one per CPU) in a fresh
process and polls /proc every 0.1 s for: the coordinator (the `ensemble` process), each
split's Ray worker (processes titled ray::_train_split_task), and Ray's own processes
(GCS, raylet, ...). Peaks are the kernel's high-water mark of resident memory (VmHWM),
so a short spike between two polls still counts; a Ray worker's mark includes whatever
it ran before, which here is the same kind of split. RSS counts every page a process
maps, including the torch libraries it shares with the other processes; PSS (the peak of
the polled proportional set size) divides shared pages among their users, so PSS figures
add up to what the machine actually spends.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from command import ENSEMBLE  # noqa: E402

RAY_SYSTEM = ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py", "runtime_env", "ray_client")


def kib(pid: int, field: str, source: str = "status") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def processes() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                pass
    return found


def image_folder(root: Path, size: int, classes: int = 20, per_class: int = 20) -> Path:
    """Random-noise JPEGs: enough for the memory of a split at this resolution."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c:03d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-32")
    parser.add_argument("--steps", type=int, help="default: the preset's")
    parser.add_argument("--data", help="default: built-in for 32x32 presets, else a made-up image folder")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from workers.presets import get_preset

    preset = get_preset(args.preset)
    work = Path(tempfile.mkdtemp(prefix="memory-bench-"))
    try:
        data = args.data
        if data is None and preset.gan.image_size != 32:
            data = str(image_folder(work / "images", preset.gan.image_size))
        command = [*ENSEMBLE, "launch", "--splits", "100" if data is None else "10", "--only", "0,1",
                   "--preset", args.preset, "--run", str(work / "run")]  # fmt: skip
        command += ["--data", data] if data else []
        command += ["--steps", str(args.steps)] if args.steps else []
        coordinator = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peaks = {key: 0 for key in ("coordinator", "coordinator pss", "split", "split pss", "ray", "ray pss")}

        def peak(key: str, value: int | None) -> None:
            peaks[key] = max(peaks[key], value or 0)

        while coordinator.poll() is None:
            peak("coordinator", kib(coordinator.pid, "VmHWM"))
            peak("coordinator pss", kib(coordinator.pid, "Pss", "smaps_rollup"))
            ray_rss = ray_pss = 0
            for pid, cmdline in processes().items():
                if cmdline.startswith("ray::_train_split_task"):
                    peak("split", kib(pid, "VmHWM"))
                    peak("split pss", kib(pid, "Pss", "smaps_rollup"))
                elif any(name in cmdline for name in RAY_SYSTEM):
                    ray_rss += kib(pid, "VmRSS") or 0
                    ray_pss += kib(pid, "Pss", "smaps_rollup") or 0
            peak("ray", ray_rss)
            peak("ray pss", ray_pss)
            time.sleep(0.1)
        if coordinator.returncode != 0:
            sys.exit(f"launch failed: {coordinator.stderr.read().strip().splitlines()[-1:]}")
        batch = preset.batch_size
        print(f"launch --preset {args.preset} ({preset.gan.image_size}x{preset.gan.image_size}, batch {batch}), "
              f"2 splits on {os.cpu_count()} CPUs")  # fmt: skip
        print(f"{'process':<40} {'peak RSS':>9} {'peak PSS':>9}")
        for key, name in (("coordinator", "coordinator (ensemble launch)"), ("split", "one running split (Ray worker)"),
                          ("ray", "Ray system processes (sum)")):  # fmt: skip
            print(f"{name:<40} {peaks[key] / 1024:>5.0f} MiB {peaks[key + ' pss'] / 1024:>5.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
