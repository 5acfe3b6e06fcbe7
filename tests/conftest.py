from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import uuid

import pytest

from tests.helpers import S3_BUCKET
from workers.datasets.drawing import render_class

FAKE_GPUS = 4

TIERS = ("unit", "integration", "faults", "browser")
"""Every test is in one tier (pyproject.toml's markers). `make check` runs `unit`; `make test`,
like CI, runs them all."""
CLUSTER_FIXTURES = {"ray_cluster", "s3_server"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which turns the groups set here into node ids
def pytest_collection_modifyitems(items) -> None:
    """A test marked with no tier is `integration` when it uses the session's Ray cluster or S3
    server, else `unit`. A test in two tiers (a faults test with a browser) keeps the first.

    Under pytest-xdist (`make test` runs two workers, --dist loadgroup), a module with a
    module-scoped fixture (a trained run, a Serve app) stays on one worker, so that fixture is
    built once; every other test goes wherever a worker is free."""
    _longest_first(items)
    for item in items:
        if any(fixture.scope == "module" for name in item.fixturenames
               for fixture in item._fixtureinfo.name2fixturedefs.get(name, ())):  # fmt: skip
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
        marked = [tier for tier in TIERS if item.get_closest_marker(tier)]
        if not marked:
            item.add_marker("integration" if CLUSTER_FIXTURES & set(item.fixturenames) else "unit")
        elif "unit" in marked and CLUSTER_FIXTURES & set(item.fixturenames):
            raise pytest.UsageError(f"{item.nodeid} is marked unit but uses a Ray cluster or the S3 server")


# Under xdist each worker gets a temporary folder of its own, set before any Ray cluster or
# `ensemble` process starts so that all of them inherit it: the tests that check what a
# command leaves in the temporary folder then see their own worker's files only. Short, as
# Ray's socket paths under it must fit 107 bytes.
if os.environ.get("PYTEST_XDIST_WORKER"):
    WORKER_TMPDIR = tempfile.mkdtemp(prefix=f"t{os.environ['PYTEST_XDIST_WORKER']}-", dir="/tmp")
    os.environ["TMPDIR"] = tempfile.tempdir = WORKER_TMPDIR


def pytest_sessionfinish(session) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(WORKER_TMPDIR, ignore_errors=True)


# Set before any Ray cluster or `ensemble` process starts, so that all of them inherit it:
# every S3 request of the test session goes to its own server on 127.0.0.1, never to AWS.
# The server's socket is bound now and held until the server serves on it: a port only
# chosen now could be taken by a Ray worker or an outgoing connection before the first S3
# test, and moto's own server then waits forever for a server that never started (a CI run
# hung 80 minutes that way).
S3_SOCKET = socket.create_server(("127.0.0.1", 0))
S3_ENDPOINT = f"http://127.0.0.1:{S3_SOCKET.getsockname()[1]}"
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_name, None)
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                  AWS_ENDPOINT_URL=S3_ENDPOINT, AWS_EC2_METADATA_DISABLED="true")  # fmt: skip


def _longest_first(items) -> None:
    """Modules with fault tests first, then the integration and browser ones, the unit tests
    last: xdist hands work out in this order, so the long tests start at once and the short
    ones fill in at the end, instead of one worker finishing a fault test alone. A module's
    tests stay together and in order (its module-scoped fixtures are built once)."""
    rank = {"faults": 0, "integration": 1, "browser": 2}

    def module_rank(item) -> int:
        marks = [m.name for m in item.iter_markers() if m.name in rank]
        fixtures = "integration" if CLUSTER_FIXTURES & set(item.fixturenames) else None
        return min([rank[m] for m in marks] + ([rank[fixtures]] if fixtures else []) + [3])

    by_module: dict[str, int] = {}
    for item in items:
        by_module[item.module.__name__] = min(by_module.get(item.module.__name__, 3), module_rank(item))
    items.sort(key=lambda item: by_module[item.module.__name__])  # stable: order kept within a rank


@pytest.fixture
def one_thread():
    """Torch on one thread, as in a 1-CPU Ray task; also makes runs bit-for-bit repeatable."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray cluster for the whole session: 2 CPUs and 4 fake GPUs.

    Ray's GPU resources are a scheduling promise only, so tasks that ask for GPUs are
    scheduled against these 4 and then train on the CPU (torch finds no CUDA here).
    The coordinator reuses this cluster because the test process is already connected.
    """
    import ray

    # address="local": a cluster of its own even where `ray start` left /tmp/ray/ray_current_cluster
    # behind (ray.init() would attach to that one).
    ray.init(address="local", num_cpus=2, num_gpus=FAKE_GPUS, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.fixture
def image_folder(tmp_path):
    """A small real image folder: 4 classes of built-in images saved as PNG files."""
    from PIL import Image

    root = tmp_path / "images"
    for class_index, label in enumerate([3, 40, 417, 901]):
        folder = root / f"class_{class_index}"
        folder.mkdir(parents=True)
        for i, image in enumerate(render_class(label, 12)):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server for the session: moto's, threaded, on the socket held since import."""
    import boto3
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    # What moto's ThreadedMotoServer does, on a socket that is already ours (it takes a port only).
    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True,
                         request_handler=MotoRequestHandler, fd=S3_SOCKET.fileno())  # fmt: skip
    serving = threading.Thread(target=server.serve_forever, name="s3-server", daemon=True)
    serving.start()
    boto3.client("s3").create_bucket(Bucket=S3_BUCKET)
    yield S3_ENDPOINT
    server.shutdown()
    serving.join(timeout=30)
    server.server_close()
    S3_SOCKET.close()


@pytest.fixture
def s3_prefix(s3_server) -> str:
    """A fresh, empty prefix of the session's bucket: s3://acgan-tests/<random>."""
    return f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", "s3"])
def run_at(request, tmp_path):
    """Where the test's run lives: a local folder, then a prefix on the session's S3 server."""
    if request.param == "local":
        return tmp_path / "run"
    return request.getfixturevalue("s3_prefix") + "/run"
