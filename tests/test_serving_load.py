"""`ensemble serve` under load, on the test cluster over real HTTP: bounded queues answer 503
with Retry-After instead of growing, and /healthz stays answered while the generators are
saturated by worst-case requests; nothing is left running once the clients are answered."""
from __future__ import annotations

import json
import threading
import time

import pytest

from tests.helpers import call, free_port, invoke

pytestmark = pytest.mark.usefixtures("ray_cluster")
QUICK = ["--steps", "12", "--batch-size", "8", "--checkpoint-every", "6", "--no-guard", "--gpus-per-split", "0"]
WORST_CASE = json.dumps({"labels": [410, 411, 412, 413, 420, 421, 422, 423], "n": 128}).encode()
"""1024 images (the most a request may ask) from two splits, with one generator per replica:
every request loads both generators in turn."""


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    """Splits 41 and 42 of a built-in run, served twice: with the default limits under `/`, and
    under `/tight` with one request at work and one queued per replica."""
    from ray import serve

    from ensemble.serve import command

    run = tmp_path_factory.mktemp("serve-load") / "run"
    assert invoke("launch", "--splits", "100", "--only", "41,42", "--run", run, *QUICK).exit_code == 0
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(command.build_app(str(run), models_per_replica=1, cpus_per_replica=0.5), name="acgan-load",
              route_prefix="/", blocking=False)  # fmt: skip
    limits = command.ONGOING_PER_REPLICA, command.QUEUED_PER_REPLICA
    command.ONGOING_PER_REPLICA, command.QUEUED_PER_REPLICA = 1, 1
    try:
        tight = command.build_app(str(run), models_per_replica=1, cpus_per_replica=0.5)
    finally:
        command.ONGOING_PER_REPLICA, command.QUEUED_PER_REPLICA = limits
    serve.run(tight, name="acgan-tight", route_prefix="/tight", blocking=False)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while any(call(base, path, timeout=10)[0] != 200 for path in ("/healthz", "/tight/healthz")):
        assert time.monotonic() < deadline, "the applications did not come up"
        time.sleep(0.5)
    yield base
    serve.shutdown()


ONE_SPLIT = json.dumps({"labels": [410, 411, 412, 413], "n": 256}).encode()
"""1024 images from one split: one call to the generators."""


def post_all(base: str, path: str, count: int, body: bytes = WORST_CASE) -> list[tuple[int, dict]]:
    """`count` POSTs of `body` at once: (status, headers) of each."""
    import urllib.error
    import urllib.request

    answers: list[tuple[int, dict]] = []

    def post() -> None:
        request = urllib.request.Request(base + path, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                answer.read()
                answers.append((answer.status, dict(answer.headers)))
        except urllib.error.HTTPError as error:
            answers.append((error.code, {**dict(error.headers), "body": error.read()[:300]}))

    threads = [threading.Thread(target=post) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return answers


def test_a_full_queue_answers_503_with_retry_after_at_once(serving):
    started = time.monotonic()
    answers = post_all(serving, "/tight/v1/samples", 8, ONE_SPLIT)
    statuses = sorted(status for status, _ in answers)
    busy = [headers for status, headers in answers if status == 503]
    # One at work (and perhaps one waiting); the rest refused at once rather than queued.
    assert set(statuses) == {200, 503} and len(statuses) == 8, answers
    assert all(headers.get("retry-after") == "2" or headers.get("Retry-After") == "2" for headers in busy), busy
    print(f"\ntight queue: {statuses.count(200)} answered, {len(busy)} refused, in {time.monotonic() - started:.1f} s")


def test_healthz_stays_answered_while_64_worst_case_requests_saturate_the_generators(serving):
    health: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.monotonic()
            status, _, _ = call(serving, "/healthz", timeout=30)
            assert status == 200
            health.append(time.monotonic() - started)
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    started = time.monotonic()
    answers = post_all(serving, "/v1/samples", 64)
    busy_for = time.monotonic() - started
    done.set()
    prober.join(timeout=60)
    statuses = [status for status, _ in answers]
    assert len(statuses) == 64 and set(statuses) <= {200, 503}, sorted(statuses)
    health.sort()
    p99 = health[int(0.99 * (len(health) - 1))]
    print(f"\n64 worst-case POSTs: {statuses.count(200)} answered in {busy_for:.1f} s; /healthz p99 {p99 * 1000:.0f} ms "
          f"over {len(health)} probes")
    assert len(health) >= 10 and p99 < 1.0
    # Nothing left running once every client is answered: a small request is served at once.
    started = time.monotonic()
    assert call(serving, "/v1/sample?label=417&n=1", timeout=30)[0] == 200 and time.monotonic() - started < 5
