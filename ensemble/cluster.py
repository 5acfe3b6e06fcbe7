"""Connecting to Ray: a quiet local cluster by default, or an existing one by address."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ensemble.errors import EnsembleError
from manifests.errors import first_line


@dataclass(frozen=True)
class Cluster:
    address: str
    started_here: bool
    """True when this process started the cluster (and so must shut it down)."""
    num_cpus: float
    num_gpus: float
    largest_node_cpus: float
    largest_node_gpus: float


def connect(address: str | None) -> Cluster:
    """Attach to `address` (or RAY_ADDRESS), reuse this process's cluster, or start one."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    started_here = False
    if not ray.is_initialized():
        options = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
        if address:
            try:
                ray.init(address=address, runtime_env=_code_for_remote_workers(), **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise EnsembleError(
                    f"cannot reach a Ray cluster at {address} ({first_line(exc) or type(exc).__name__}); "
                    f"check --address, or leave it out to start a local cluster"
                ) from None
            _check_actors_start(address)
        else:
            # A cluster of our own, even if another local one is running ("local" never
            # attaches). Token auth off, or `ray status` fails for the user.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(address="local", **options)
            started_here = True
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    resources = ray.cluster_resources()
    return Cluster(
        address=ray.get_runtime_context().gcs_address,
        started_here=started_here,
        num_cpus=resources.get("CPU", 0.0),
        num_gpus=resources.get("GPU", 0.0),
        largest_node_cpus=max((n["Resources"].get("CPU", 0.0) for n in nodes), default=0.0),
        largest_node_gpus=max((n["Resources"].get("GPU", 0.0) for n in nodes), default=0.0),
    )


ACTOR_PROBE_TIMEOUT_S = 120.0
"""How long the probe actor may take to start on a busy cluster (it needs no CPU)."""


def _check_actors_start(address: str) -> None:
    """A driver can attach and still have every actor it creates cancelled before it runs:
    with RAY_AUTH_MODE=token in the user's shell and a cluster started without token auth,
    ray.init succeeds, tasks run, and the launch's progress board died unstarted with a
    traceback, after the run's manifest was written. One tiny actor tells it before anything
    is written."""
    import ray

    @ray.remote(num_cpus=0)
    class Probe:
        def ready(self) -> bool:
            return True

    probe = Probe.remote()
    try:
        ray.get(probe.ready.remote(), timeout=ACTOR_PROBE_TIMEOUT_S)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
        ray.shutdown()
        why = first_line(exc) or type(exc).__name__
        mode = os.environ.get("RAY_AUTH_MODE")
        fix = (f"RAY_AUTH_MODE={mode} is set in this shell: set it to the cluster's mode (`disabled` for a "
               f"cluster started without token auth) or unset it" if mode else
               "check that this machine's Ray version and RAY_AUTH_MODE match the cluster's")  # fmt: skip
        raise EnsembleError(f"the Ray cluster at {address} accepted this driver but did not start its actor "
                            f"({why}); {fix}") from None
    ray.kill(probe)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds on an address nothing listens at; Ray itself retries for minutes."""
    import socket

    if address == "auto":
        return  # Ray finds the cluster this machine belongs to
    scheme, _, target = address.rpartition("://")
    host, _, port = target.rpartition(":")
    if scheme not in ("", "ray") or not host or not port.isdigit():
        raise EnsembleError(
            f"--address {address!r} is not a Ray address; use HOST:PORT (the head's GCS port, 6379 by "
            f"default), ray://HOST:10001, or auto"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise EnsembleError(
            f"nothing answers at Ray address {address} ({exc.strerror or exc}); check --address "
            f"(the head node's IP and GCS port, 6379 by default), or leave it out to start a local cluster"
        ) from None


def _code_for_remote_workers() -> dict:
    """Ship this project's packages to an existing cluster's workers, which may not have them.
    As folder paths, not module objects: inside a `ray job submit` job, Ray merges this with
    the job's own runtime_env by deep copy, and a module cannot be copied."""
    import manifests
    import workers

    folders = [Path(__file__).parent] + [Path(package.__file__).parent for package in (manifests, workers)]
    return {"py_modules": [str(folder) for folder in folders]}


def choose_gpus_per_split(cluster: Cluster, requested: float | None) -> float:
    """1 GPU per split on a GPU cluster, 0 on a CPU-only one, unless the user asked."""
    if requested is None:
        return 1.0 if cluster.num_gpus > 0 else 0.0
    check_requested_resources(gpus_per_split=requested)
    if requested > 0 and cluster.num_gpus == 0:
        # Ray would queue such tasks forever without a word.
        raise EnsembleError(
            f"--gpus-per-split {requested:g} asks for GPUs, but the Ray cluster has none; "
            f"pass --gpus-per-split 0 to train on CPUs"
        )
    if requested > cluster.largest_node_gpus:
        raise EnsembleError(
            f"--gpus-per-split {requested:g} is more than any node has (at most "
            f"{cluster.largest_node_gpus:g}); one split runs on one node"
        )
    return requested


def check_requested_resources(cpus_per_split: float | None = None, gpus_per_split: float | None = None) -> None:
    """The checks that need no cluster, done before one starts; None: not asked for."""
    if cpus_per_split is not None and cpus_per_split <= 0:
        raise EnsembleError(f"--cpus-per-split must be more than 0, got {cpus_per_split:g}")
    if gpus_per_split is not None and gpus_per_split < 0:
        raise EnsembleError(f"--gpus-per-split must be 0 or more, got {gpus_per_split:g}")


def check_cpus_per_split(cluster: Cluster, requested: float) -> None:
    check_requested_resources(cpus_per_split=requested)
    if requested > cluster.largest_node_cpus:
        raise EnsembleError(
            f"--cpus-per-split {requested:g} is more than any node has (at most {cluster.largest_node_cpus:g})"
        )
