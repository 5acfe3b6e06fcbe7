"""`ensemble serve` under load, on loopback: latency and throughput of GET /v1/sample (16
images, PNG grid), warm and cold, against `ensemble sample` as a whole process.

    python bench/serving.py                  # trains 4 quick built-in splits first (~30 s)
    python bench/serving.py --run ensemble-run --replicas 2

Warm: the generator already on the replica. Cold: --models-per-replica 1 and two splits asked
in turn, so that every request loads its generator. The load generator keeps one HTTP/1.1
connection per client and is bounded in both requests and seconds per phase. Memory: the RSS
of the generator replica with its models loaded.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.command import installed_command  # noqa: E402

N_IMAGES = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port: int, labels: list[str], concurrency: int, requests: int, seconds: float) -> dict:
    """`requests` GETs (or fewer, if `seconds` runs out) from `concurrency` clients."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    counter = iter(range(requests))

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            label = labels[(index + offset) % len(labels)]
            started = time.perf_counter()
            connection.request("GET", f"/v1/sample?label={label}&n={N_IMAGES}&seed={index}")
            answer = connection.getresponse()
            answer.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors[0] += answer.status != 200
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "concurrency": concurrency, "requests": len(latencies), "errors": errors[0],
        "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "images_per_s": len(latencies) * N_IMAGES / wall,
    }  # fmt: skip


def replica_rss_mib() -> float:
    import psutil
    import ray._private.state

    pids = [a["Pid"] for a in ray._private.state.actors().values()
            if a["State"] == "ALIVE" and a["ActorClassName"].endswith("Generators")]  # fmt: skip
    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 2**20 / max(1, len(pids))


def serve(run: str, port: int, **options) -> None:
    from ray import serve as ray_serve

    from ensemble.serve.command import build_app

    ray_serve.run(build_app(run, **options), name="bench", route_prefix="/", blocking=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a trained run [default: train 4 quick built-in splits]")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--requests", type=int, default=400, help="per phase, at most")
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase, at most")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="acgan-bench-serve-"))
    run = args.run
    if run is None:
        run = str(scratch / "run")
        subprocess.run([*installed_command(), "launch", "--splits", "100", "--only", "40-43", "--run", run,
                        "--steps", "12", "--batch-size", "8", "--no-guard"], check=True, capture_output=True)  # fmt: skip
    import ray
    from ray import serve as ray_serve

    from manifests.run_dir import RunDir

    records = [r for r in RunDir(run).read_manifest() if r.checkpoint]
    labels = [str(r.classes[0]) for r in records[:4]]
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    port = free_port()
    ray_serve.start(http_options={"host": "127.0.0.1", "port": port})
    results = {"cpus": os.cpu_count(), "replicas": args.replicas, "images_per_request": N_IMAGES}
    try:
        serve(run, port, replicas=args.replicas, models_per_replica=8)
        load(port, labels, 1, len(labels) * 2, 60)  # each split's generator loaded: warm from here
        results["warm"] = [load(port, labels, c, args.requests, args.seconds) for c in (1, 8, 32)]
        results["replica_rss_mib"] = replica_rss_mib()
        results["models_loaded"] = len(labels)
        serve(run, port, replicas=args.replicas, models_per_replica=1)  # redeploy: one model per replica
        two = labels[:2]
        load(port, two, 1, 2, 60)
        results["cold"] = load(port, two, 1, min(args.requests, 40), args.seconds)  # each request swaps the model
    finally:
        ray_serve.shutdown()
        ray.shutdown()
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([*installed_command(), "sample", "--label", labels[0], "--run", run, "--n", str(N_IMAGES),
                        "--out", str(scratch / "s.png")], check=True, capture_output=True)  # fmt: skip
        timings.append(time.perf_counter() - started)
    results["ensemble_sample_cold_s"] = statistics.median(timings)
    subprocess.run(["rm", "-rf", str(scratch)], check=False)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
