"""A run on object storage against the same run on local disk, with a real S3 server (moto's,
started here on 127.0.0.1, so the store shares the machine's 2 cores with the training).

    python bench/storage.py --part manifest     # manifest write/read and `ensemble status`, 100 splits (~20 s)
    python bench/storage.py --part launch       # the built-in 100-split launch, --run s3:// vs a folder (~20 min)

manifest: the real manifest writer and reader on a finished 100-split manifest, the median
of --repeats; then `ensemble status` / `--json` as a user runs them (a fresh process each).
launch: `ensemble launch --splits 100` on the built-in data (the quickstart's run) twice,
once into a local folder and once into s3://bench/run; prints both walls and their ratio
(the goal: s3 <= 1.1x local), and the bytes the S3 run holds.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifests.run_dir import RunDir  # noqa: E402
from manifests.storage import location  # noqa: E402
from command import ENSEMBLE  # noqa: E402
from status_scale import finished_run  # noqa: E402

BUCKET = "bench"


def start_s3() -> object:
    """moto's S3 server on a free port of 127.0.0.1, with the environment pointed at it (for this
    process and the `ensemble` processes it starts)."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_EC2_METADATA_DISABLED="true")  # fmt: skip
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return server


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_manifest(repeats: int) -> None:
    local_root = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    try:
        runs = {"local": finished_run(local_root / "run", 100), "s3": None}
        s3 = RunDir(f"s3://{BUCKET}/manifest-run")
        s3.write_spec({"note": "written by bench/storage.py"})
        s3.write_manifest(runs["local"].read_manifest())
        runs["s3"] = s3
        for name, run in runs.items():
            records = run.read_manifest()
            write = median_seconds(lambda: run.write_manifest(records), repeats)
            read = median_seconds(run.read_manifest, repeats)
            status = median_seconds(lambda: subprocess.run([*ENSEMBLE, "status", "--run", str(run.root)],
                                                           capture_output=True, check=True), repeats)  # fmt: skip
            as_json = median_seconds(lambda: subprocess.run([*ENSEMBLE, "status", "--json", "--run", str(run.root)],
                                                            capture_output=True, check=True), repeats)  # fmt: skip
            print(f"{name:5s} 100 splits: manifest write {write * 1000:.1f} ms, read {read * 1000:.1f} ms; "
                  f"`ensemble status` {status:.3f} s, `--json` {as_json:.3f} s (median of {repeats})")  # fmt: skip
    finally:
        shutil.rmtree(local_root, ignore_errors=True)


def bench_launch() -> None:
    local_root = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    walls = {}
    try:
        for name, run in (("local", str(local_root / "run")), ("s3", f"s3://{BUCKET}/launch-run")):
            start = time.perf_counter()
            subprocess.run([*ENSEMBLE, "launch", "--splits", "100", "--run", run], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            walls[name] = time.perf_counter() - start
            summary = subprocess.run([*ENSEMBLE, "status", "--summary", "--run", run], capture_output=True, text=True)
            print(f"{name:5s} launch --splits 100: {walls[name]:.1f} s wall; {summary.stdout.strip()}", flush=True)
        held = sum(e.size or 0 for e in _walk(location(f"s3://{BUCKET}/launch-run")))
        print(f"s3 / local wall: {walls['s3'] / walls['local']:.3f} (goal <= 1.1); the S3 run holds {held / 2**20:.0f} MiB")
    finally:
        shutil.rmtree(local_root, ignore_errors=True)


def _walk(folder):
    for entry in folder.list():
        if entry.is_dir:
            yield from _walk(entry.location)
        else:
            yield entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("manifest", "launch", "all"), default="manifest")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    server = start_s3()
    try:
        if args.part in ("manifest", "all"):
            bench_manifest(args.repeats)
        if args.part in ("launch", "all"):
            bench_launch()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
