"""`ensemble serve`: the ensemble as a Ray Serve application, every request routed by label.

Two deployments:
- `Ingress` (FastAPI, so OpenAPI at /docs) maps each request's label to its split through the
  manifest, which it re-reads every few seconds so that checkpoints written by a launch still
  running are picked up, and answers HTTP;
- `Generators`, behind it, holds generators: multiplexed by "split/kind/step", so a replica
  keeps at most M of them (least recently used out first), Serve routes a request to a replica
  that already holds its generator, and a newer checkpoint is a new model id.

The images are those `ensemble sample` writes for the same label, count and seed: the same
generator file and the same `workers.images.generate`.
"""
from __future__ import annotations

import os
import sys
import time

from ensemble.errors import EnsembleError, Interrupted
from ensemble.generators import check_checkpoint
from ensemble.serve.rules import ONGOING_PER_REPLICA, QUEUED_AT_INGRESS, QUEUED_PER_REPLICA, RETRY_AFTER_S
from manifests.errors import first_line
from manifests.run_dir import RunDir


DEPLOY_TIMEOUT_S = 300.0
"""How long `ensemble serve` waits for its replicas to be ready (loading no generator yet)."""


def build_app(run_dir: str, checkpoint: str = "best", replicas: int = 1, models_per_replica: int = 8,
              gpus_per_replica: float = 0.0, cpus_per_replica: float = 1.0, host: str = "127.0.0.1"):  # fmt: skip
    """The Serve application (ingress bound to the generators), checked against the run first."""
    if replicas < 1:
        raise EnsembleError(f"--replicas must be at least 1, got {replicas}")
    if models_per_replica < 1:
        raise EnsembleError(f"--models-per-replica must be at least 1, got {models_per_replica}")
    if gpus_per_replica < 0:
        raise EnsembleError(f"--gpus-per-replica must be 0 or more, got {gpus_per_replica:g}")
    check_checkpoint(checkpoint)
    run = RunDir(run_dir)
    run.read_manifest()  # a missing or unreadable run is refused here, in one line

    from ensemble.serve.app import Ingress, generators  # Ray Serve and FastAPI: imported once the checks pass

    # Bounded queues: past them a request is answered 503 with Retry-After at once (rules.py).
    from ray.serve.config import BackpressureConfig

    replica = generators(models_per_replica).options(
        num_replicas=replicas, ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
        max_ongoing_requests=ONGOING_PER_REPLICA, max_queued_requests=QUEUED_PER_REPLICA * replicas,
    )  # fmt: skip
    absolute = str(run.root) if not run.root.is_local else os.path.abspath(str(run.root))
    ingress = Ingress.options(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256,
                              max_queued_requests=QUEUED_AT_INGRESS,
                              backpressure_config=BackpressureConfig(retry_after_s=RETRY_AFTER_S))  # fmt: skip
    return ingress.bind(replica.bind(absolute), absolute, checkpoint, host)


def check_port(host: str, port: int) -> None:
    """Refuse a port another process listens on, before a cluster starts."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise EnsembleError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port or --host") from None


def serve_forever(run_dir: str, host: str, port: int, address: str | None, deploy_timeout: float = DEPLOY_TIMEOUT_S,
                  **options) -> None:  # fmt: skip
    """Deploy on a cluster (started or attached), print the URL, wait for Ctrl-C or SIGTERM, then
    take the application down (and the cluster, if this process started it)."""
    import signal
    import threading

    from ray import serve

    from ensemble.cluster import connect

    if not 1 <= port <= 65535:
        raise EnsembleError(f"--port must be between 1 and 65535, got {port}")
    if not deploy_timeout > 0:
        raise EnsembleError(f"--deploy-timeout must be a number of seconds above 0, got {deploy_timeout:g}")
    app = build_app(run_dir, host=host, **options)  # every check of the options and the run, then the port's
    if address is None:  # a cluster of this machine: its Serve will listen here
        check_port(host, port)
    cluster = connect(address)
    gpus = options.get("gpus_per_replica", 0.0)
    if gpus > 0 and cluster.num_gpus == 0:  # Ray would queue the replicas forever, and serve would wait on them
        if cluster.started_here:
            import ray

            ray.shutdown()
        raise EnsembleError(f"--gpus-per-replica {gpus:g} asks for GPUs, but the Ray cluster has none; pass "
                            f"--gpus-per-replica 0, or --address of a cluster with GPUs")  # fmt: skip
    where = "a new local Ray cluster" if cluster.started_here else f"the Ray cluster at {cluster.address}"
    print(f"Deploying on {where} ...", file=sys.stderr, flush=True)  # a first answer: this takes seconds
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    name = app_name(RunDir(run_dir).root)
    try:
        serve.start(http_options={"host": host, "port": port})
        check_listening(host, port, where)
        deploy(app, name, where, stop, deploy_timeout)
        print(f"Serving {run_dir} at http://{host}:{port}/ as Serve application {name} (API: /v1/classes, "
              f"/v1/sample, /v1/samples; OpenAPI: /docs). Ctrl-C stops it.", flush=True)  # fmt: skip
        while not stop.wait(0.5):
            pass
    finally:
        _take_down(name, cluster.started_here)


def deploy(app, name: str, where: str, stop, timeout: float) -> None:
    """Deploy, then wait for every replica to be ready: until Ctrl-C or SIGTERM (`stop`) or
    `timeout` seconds, each ending it in one line; the caller then deletes whatever was half
    deployed. serve.run waits with no bound and deaf to both, so the deployment is submitted
    without waiting (serve.api._run: the same call with its wait left out) and waited for here."""
    from ray.serve.api import _run

    try:
        _run(app, name=name, route_prefix="/", _blocking=False)
    except Exception as exc:  # noqa: BLE001 - Serve's refusals (a taken route prefix) have no one class
        raise EnsembleError(f"cannot deploy on {where}: {first_line(exc)}; stop that application or "
                            f"serve on another cluster (--address)") from None  # fmt: skip
    deadline = time.monotonic() + timeout
    while (state := _app_state(name))[0] != "RUNNING":
        if state[0] == "DEPLOY_FAILED":
            raise EnsembleError(f"cannot deploy on {where}: {state[1]}")
        if stop.wait(0.5):
            raise Interrupted("interrupted while deploying; nothing is left deployed")
        if time.monotonic() > deadline:
            raise EnsembleError(f"the application did not become ready on {where} in {timeout:g} s (its replicas "
                                f"may wait for CPUs or GPUs the cluster does not have); see `ray status`, or pass a "
                                f"longer --deploy-timeout")  # fmt: skip


def _app_state(name: str) -> tuple[str | None, str]:
    """The application's status (None before Serve knows it) and Serve's one line about it, from one status call."""
    from ray import serve

    app = serve.status().applications.get(name)
    if app is None:
        return None, ""
    return str(getattr(app.status, "value", app.status)), first_line(getattr(app, "message", "") or "deploy failed")


def check_listening(host: str, port: int, where: str) -> None:
    """Serve already running on the cluster keeps the host and port it was started with, and
    ignores those asked for: refuse, naming where it does listen, rather than print a URL
    that answers nothing."""
    from ray.serve.context import _get_global_client  # no public API gives the running proxy's options

    config = _get_global_client().http_config
    if (config.host, config.port) != (host, port):
        raise EnsembleError(f"Serve already runs on {where} and listens on {config.host}:{config.port}, not "
                            f"{host}:{port}; pass --host {config.host} --port {config.port}, or serve on another "
                            f"cluster (--address)")  # fmt: skip


def app_name(run_root) -> str:
    """This run's Serve application: one name per run, so that serving two runs on one cluster,
    or stopping one, leaves the other alone."""
    import hashlib

    return f"acgan-ensemble-{hashlib.sha1(str(run_root).encode()).hexdigest()[:8]}"


def _take_down(name: str, cluster_started_here: bool) -> None:
    """Delete this command's application only: on a shared cluster the others' stay. Serve itself
    goes when nothing else is left on it, and the cluster when this process started it."""
    import ray
    from ray import serve

    if cluster_started_here:
        serve.shutdown()
        ray.shutdown()
        return
    if name in serve.status().applications:  # also what a deploy that failed half-way left
        serve.delete(name)
    if not serve.status().applications:
        serve.shutdown()
