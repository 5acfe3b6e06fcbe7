"""What every request to `ensemble serve` obeys, whichever deployment answers it: the limits,
errors as an HTTP status and one line, and how a label becomes the generator that serves it
(the manifest as the ingress sees it). Free of Ray Serve and FastAPI."""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from ensemble.errors import EnsembleError
from ensemble.routing import Route, Router
from ensemble.generators import MAX_SEED, generator_path, generator_step
from manifests.run_dir import RunDir
from manifests.tables.manifest import SplitRecord

MAX_PER_LABEL = 256
MAX_PER_REQUEST = 1024
MAX_BODY_BYTES = 64 * 1024
MAX_SPLITS_PER_REQUEST = 8
"""Distinct splits one POST may name: each is a generator a replica may have to load (as many
as a replica keeps by default), so one small request cannot make it load a hundred in turn."""
MANIFEST_REFRESH_S = 2.0
"""How stale the ingress's view of the manifest may be: a new checkpoint is served this soon."""
REQUEST_TIMEOUT_S = 60.0
ONGOING_PER_REPLICA = 64
"""Requests a generator replica works on at once (its event loop takes them; generation runs in
threads): Serve's router backs off and retries when every replica is at its limit, and at 32
clients its default (5) made the median request 4.6 s and cut throughput to a seventh."""
QUEUED_PER_REPLICA = 32
"""Requests a generator replica lets wait beyond the 64 it works on; more are answered 503
at once, with Retry-After, rather than queued without bound (each may be 1024 images)."""
QUEUED_AT_INGRESS = 512
"""HTTP requests the ingress lets wait beyond the 256 it handles; more get Serve's own 503."""
RETRY_AFTER_S = 2


class RequestError(Exception):
    """An answer other than 200: its HTTP status and one line (and headers, e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class ServedModel:
    """What a label's request is served from: a split's generator file at one step."""

    split: int
    path: str
    """Relative to the run."""
    kind: str
    step: int

    @property
    def model_id(self) -> str:
        return f"{self.path}@{self.step}"


def served_generator(record: SplitRecord, checkpoint: str) -> ServedModel | None:
    """What a split's requests are served from, or None before its first checkpoint."""
    path, kind = generator_path(record, checkpoint)
    if not path:
        return None
    return ServedModel(record.split, path, kind, int(generator_step(record, kind) or 0))


def check_splits(routes: list[Route]) -> None:
    """422 for a request whose labels belong to more than MAX_SPLITS_PER_REQUEST splits."""
    splits = {route.record.split for route in routes}
    if len(splits) > MAX_SPLITS_PER_REQUEST:
        raise RequestError(422, f"the labels asked for belong to {len(splits)} splits; at most "
                                f"{MAX_SPLITS_PER_REQUEST} per request: send them in several requests")  # fmt: skip


def served_model(route: Route, checkpoint: str) -> ServedModel:
    """served_generator for a label's request: 409 before the split's first checkpoint."""
    model = served_generator(route.record, checkpoint)
    if model is None:
        record = route.record
        raise RequestError(409, f"split {record.split} (label {route.global_label}) has no checkpoint yet "
                                f"(status: {record.status}); try again once it has checkpointed")  # fmt: skip
    return model


class ManifestView:
    """The run's manifest as the ingress sees it, re-read at most every MANIFEST_REFRESH_S."""

    def __init__(self, run_dir: str):
        self.run = RunDir(run_dir)
        self.router = Router(self.run.read_manifest())
        self.read_at = time.monotonic()

    def current(self) -> Router:
        if time.monotonic() - self.read_at >= MANIFEST_REFRESH_S:
            try:
                self.router = Router(self.run.read_manifest())
            except Exception:  # noqa: BLE001 - a manifest being replaced, a store hiccup: keep the last view
                pass
            self.read_at = time.monotonic()
        return self.router

    def resolve(self, label: str) -> Route:
        try:
            return self.current().resolve(label)
        except EnsembleError as exc:
            raise RequestError(404, str(exc)) from None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def host_allowed(header: str | None, bound: str) -> bool:
    """Whether a request's Host header names this server. On a loopback address only loopback
    names are answered, so that a web page whose DNS name rebinds to 127.0.0.1 cannot read the
    API from a browser (DNS rebinding); bound to 0.0.0.0 or ::, it was exposed on purpose."""
    if bound in ("0.0.0.0", "::") or not header:
        return True
    name = header.strip().lower()
    name = name[1 : name.index("]")] if name.startswith("[") and "]" in name else name.rsplit(":", 1)[0]
    return name in (LOOPBACK if bound in LOOPBACK else (bound.lower(),))


def check_seed_asked(seed: int) -> None:
    """A request's seed: what torch and the JSON answer can hold (`ensemble sample`'s range)."""
    if not 0 <= seed <= MAX_SEED:
        raise RequestError(422, f"seed must be between 0 and {MAX_SEED}, got {seed}")


def check_count(n: int, labels: int = 1) -> None:
    if not 1 <= n <= MAX_PER_LABEL:
        raise RequestError(422, f"n must be between 1 and {MAX_PER_LABEL}, got {n}")
    if n * labels > MAX_PER_REQUEST:
        raise RequestError(422, f"{labels} labels x n={n} is {n * labels} images; at most {MAX_PER_REQUEST} per request")


def b64_png(image) -> str:
    """A (3, H, W) uint8 tensor as base64 PNG, for JSON answers."""
    from workers.images import encode

    return base64.b64encode(encode(image)).decode("ascii")
