"""`ensemble serve`: a real Ray Serve application on the test cluster, spoken to over real HTTP
on 127.0.0.1: routing by index, name and class id; the four endpoints; bounds and errors; a
new checkpoint picked up while serving; more splits than a replica may hold; a corrupt
checkpoint refused for its split alone; the gallery in headless Chromium; the command itself."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.command import installed_command
from manifests.run_dir import RunDir
from tests.helpers import call, free_port, get_json, invoke, wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")
QUICK = ["--steps", "12", "--batch-size", "8", "--checkpoint-every", "6", "--no-guard", "--gpus-per-split", "0"]
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"


def decoded(b64: str) -> np.ndarray:
    import base64
    import io

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Splits 41 and 42 of a built-in run trained; served with ONE replica that may hold ONE
    generator, so that every switch between the two splits evicts and reloads."""
    from ray import serve

    from ensemble.serve.command import build_app

    run = tmp_path_factory.mktemp("serve") / "run"
    assert invoke("launch", "--splits", "100", "--only", "41,42", "--run", run, *QUICK).exit_code == 0
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(str(run), models_per_replica=1, cpus_per_replica=0.5), name="acgan-test", route_prefix="/",
              blocking=False)  # fmt: skip
    yield run, f"http://127.0.0.1:{port}"
    serve.shutdown()


def test_routing_by_index_name_and_class_id_gives_the_cli_s_images(served, tmp_path):
    run, base = served
    status, listed = get_json(base, "/v1/classes")
    assert status == 200 and len(listed["classes"]) == 1000
    row = listed["classes"][417]
    assert row == {"label": 417, "name": "violet bar on maroon window", "class_id": "violet bar on maroon window",
                   "split": 41, "local_class": 7, "checkpoint": "latest", "step": 12}  # fmt: skip
    assert listed["classes"][5]["step"] is None  # split 0 has not trained

    cli = invoke("sample", "--label", "417", "--run", run, "--n", "3", "--seed", "5", "--out", tmp_path / "cli")
    assert cli.exit_code == 0, cli.output
    expected = [np.asarray(Image.open(f).convert("RGB")) for f in sorted((tmp_path / "cli").iterdir())]
    for label in ("417", "Violet%20Bar%20on%20Maroon%20Window"):
        status, answer = get_json(base, f"/v1/sample?label={label}&n=3&seed=5&format=json")
        assert status == 200, answer
        assert (answer["label"], answer["split"], answer["local_class"], answer["step"], answer["seed"]) == (417, 41, 7, 12, 5)
        assert all(np.array_equal(decoded(image), want) for image, want in zip(answer["images"], expected))

    status, kind, png = call(base, "/v1/sample?label=417&n=16")
    assert status == 200 and kind == "image/png"
    grid = Image.open(__import__("io").BytesIO(png))
    assert grid.size == (4 * 34 + 2, 4 * 34 + 2)  # the same grid `ensemble sample` writes

    status, health = get_json(base, "/healthz")
    assert status == 200 and health == {"ok": True, "classes": 1000}
    status, schema = get_json(base, "/openapi.json")  # the API described, as FastAPI gives it
    assert status == 200 and {"/v1/classes", "/v1/sample", "/v1/samples", "/healthz"} <= set(schema["paths"])


def test_many_labels_in_one_request_come_back_in_the_order_asked(served):
    _, base = served
    status, answer = get_json(base, "/v1/samples", {"labels": [421, "violet bar on maroon window", 410, 417], "n": 2,
                                                    "seed": 1})  # fmt: skip
    assert status == 200, answer
    results = answer["results"]
    assert [(r["label"], r["split"], len(r["images"])) for r in results] == [(421, 42, 2), (417, 41, 2), (410, 41, 2),
                                                                             (417, 41, 2)]  # fmt: skip
    assert results[1]["images"] == results[3]["images"]  # the same label and seed: the same images


@pytest.mark.parametrize("path, body, status, fragment", [
    ("/v1/sample?label=balloon", None, 404, "no class is named 'balloon'"),
    ("/v1/sample?label=1000", None, 404, "out of range"),
    ("/v1/sample?label=5", None, 409, "split 0 (label 5) has no checkpoint yet"),
    ("/v1/sample?label=417&n=0", None, 422, "n must be between 1 and 256"),
    ("/v1/sample?label=417&n=257", None, 422, "n must be between 1 and 256"),
    ("/v1/sample?label=417&n=many", None, 422, "n: "),
    ("/v1/sample?label=417&format=gif", None, 422, "format must be png or json"),
    ("/v1/sample", None, 422, "label: Field required"),
    ("/v1/samples", b"not json", 422, "the body is not JSON"),
    ("/v1/samples", b'{"labels": []}', 422, "non-empty list `labels`"),
    ("/v1/samples", b'{"labels": [417], "n": "4"}', 422, "n and seed must be integers"),
    ("/v1/sample?label=417&seed=-1", None, 422, "seed must be between 0 and 9223372036854775807, got -1"),
    ("/v1/samples", json.dumps({"labels": [417], "seed": 2**64}).encode(), 422, "seed must be between 0 and"),
    ("/v1/samples", json.dumps({"labels": [417] * 5, "n": 256}).encode(), 422, "at most 1024 per request"),
    ("/v1/samples", json.dumps({"labels": ["x" * 70_000]}).encode(), 413, "at most 65536"),
    ("/v1/samples", json.dumps({"labels": list(range(0, 900, 100))}).encode(), 422,
     "the labels asked for belong to 9 splits; at most 8 per request"),
    ("/v1/nothing", None, 404, "Not Found"),
])  # fmt: skip
def test_bad_requests_get_one_line_of_json_and_the_right_status(served, path, body, status, fragment):
    _, base = served
    got, kind, data = call(base, path, body)
    assert got == status and kind.startswith("application/json"), (got, kind, data[:300])
    error = json.loads(data).get("error") or json.loads(data).get("detail")
    assert fragment in error and "\n" not in error and "Traceback" not in error, error


def test_a_body_declared_too_large_is_refused_before_it_is_sent(served):
    """Content-Length first: a client that announces 10 MB and sends nothing gets its 413 at
    once; the server does not wait for (or buffer) a body it will refuse."""
    import http.client

    _, base = served
    host, port = base.rsplit("/", 1)[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)  # a server waiting for the body: timeout
    try:
        connection.putrequest("POST", "/v1/samples")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", "10000000")
        connection.endheaders()  # the headers alone: no byte of the body follows
        answer = connection.getresponse()
        body = json.loads(answer.read())
    finally:
        connection.close()
    assert answer.status == 413 and body["error"] == "the body is 10000000 bytes; at most 65536", body


def test_a_new_checkpoint_is_served_within_seconds_and_a_corrupt_one_is_refused_for_its_split_alone(served):
    import torch

    from workers.checkpoints import GeneratorInfo, load_generator, save_generator

    run, base = served
    manifest = RunDir(run)
    # What a launch still training writes: a newer generator, then the manifest naming its step.
    generator, info = load_generator(run / "splits" / "042" / "generator.safetensors")
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.05)
    newer = GeneratorInfo(config=info.config, step=18, split=42, classes=info.classes, class_names=info.class_names)
    save_generator(run / "splits" / "042", generator, newer)
    records = manifest.read_manifest()
    records[42].checkpoint_step = records[42].step = 18
    manifest.write_manifest(records)
    wait_for(lambda: get_json(base, "/v1/sample?label=421&n=1&format=json")[1].get("step") == 18, timeout=30,
             what="the new checkpoint to be served")  # fmt: skip

    # A corrupt file: that split answers 500 naming it; the other keeps serving.
    (run / "splits" / "042" / "generator.safetensors").write_bytes(b"\x00" * 64)
    records[42].checkpoint_step = records[42].step = 24
    manifest.write_manifest(records)

    def refused():
        status, answer = get_json(base, "/v1/sample?label=421&n=1&format=json")
        return answer if status == 500 else None

    error = wait_for(refused, timeout=30, what="the corrupt checkpoint to be refused")["error"]
    assert "split 42 cannot be served" in error and "splits/042/generator.safetensors is unreadable" in error, error
    assert str(run) not in error  # named within the run, not by this machine's path
    status, answer = get_json(base, "/v1/sample?label=417&n=1&format=json")
    assert status == 200 and answer["split"] == 41


@pytest.mark.browser
def test_the_gallery_shows_a_class_s_samples_in_headless_chromium(served):
    from tests.browser import HeadlessChromium

    _, base = served
    with HeadlessChromium(1000, 800) as browser:
        browser.open(f"{base}/?label=violet%20bar%20on%20maroon%20window")
        wait_for(lambda: browser.evaluate("document.body.dataset.ready") == "yes", timeout=60, what="the gallery")
        shown = browser.evaluate("""({
            images: Array.from(document.querySelectorAll('#images img')).map(i => i.naturalWidth),
            about: document.getElementById('about').textContent,
            options: document.querySelectorAll('#names option').length})""")
        assert shown["images"] == [32] * 16 and shown["options"] == 1000
        assert "417 violet bar on maroon window: split 41, local class 7" in shown["about"]
        assert browser.errors() == []
        ARTIFACTS.mkdir(exist_ok=True)
        browser.screenshot(ARTIFACTS / "serve-gallery.png")


def test_ensemble_serve_starts_answers_and_stops_cleanly_on_sigterm(served, tmp_path):
    run, _ = served
    port = free_port()
    process = subprocess.Popen([*installed_command(), "serve", "--run", str(run), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               start_new_session=True)  # fmt: skip
    try:
        line = process.stdout.readline()
        assert f"at http://127.0.0.1:{port}/" in line, process.stderr.read()[-3000:] if process.poll() is not None else line
        status, answer = get_json(f"http://127.0.0.1:{port}", "/v1/sample?label=417&n=2&format=json")
        assert status == 200 and answer["split"] == 41
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    # Nothing listens on the port any more (connections in TIME_WAIT may remain, as after any server).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))



def test_a_port_in_use_is_refused_in_one_line_before_a_cluster_starts(tmp_path):
    from tests.helpers import assert_one_line_error, planned_run

    planned_run(tmp_path / "run")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = invoke("serve", "--run", tmp_path / "run", "--port", str(port))
    assert_one_line_error(busy, f"cannot listen on 127.0.0.1:{port}", "pass another --port")


def test_a_request_for_another_host_is_refused_dns_rebinding(served):
    """Served on 127.0.0.1: a page whose DNS name rebinds to 127.0.0.1 sends its own name as
    Host, and is refused; loopback names (with or without a port) are answered."""
    _, base = served
    port = base.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "10.0.0.7"):
        status, kind, data = call(base, "/v1/classes", headers={"Host": host})
        assert status == 421 and kind.startswith("application/json"), (host, status, data[:200])
        assert "answers requests for 127.0.0.1 only" in json.loads(data)["error"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert call(base, "/healthz", headers={"Host": host})[0] == 200, host


def test_the_host_rule_answers_loopback_names_on_loopback_and_anything_when_exposed():
    from ensemble.serve.rules import host_allowed

    assert host_allowed("LOCALHOST:8000", "127.0.0.1") and host_allowed("[::1]", "localhost") and host_allowed(None, "::1")
    assert not host_allowed("127.0.0.1.evil.example", "127.0.0.1") and not host_allowed("10.1.2.3:80", "localhost")
    assert host_allowed("anything.example", "0.0.0.0") and host_allowed("10.1.2.3:80", "10.1.2.3")


def test_serve_asking_for_gpus_on_a_cluster_without_them_is_refused_instead_of_hanging(tmp_path):
    """Ray would queue the replicas forever; the command says so in one line (as launch does)."""
    from tests.helpers import planned_run

    planned_run(tmp_path / "run")
    done = subprocess.run([*installed_command(), "serve", "--run", str(tmp_path / "run"), "--gpus-per-replica", "1",
                           "--port", str(free_port())], capture_output=True, text=True, timeout=180)  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "--gpus-per-replica 1 asks for GPUs, but the Ray cluster has none" in lines[0]


def test_a_deploy_that_cannot_become_ready_gives_up_in_one_line_after_its_timeout(tmp_path):
    """Eight replicas of one CPU each on a cluster of two: Ray queues six of them forever, and
    `serve.run` would wait with them. The command gives up after --deploy-timeout."""
    from tests.helpers import planned_run

    planned_run(tmp_path / "run")
    done = subprocess.run([*installed_command(), "serve", "--run", str(tmp_path / "run"), "--replicas", "8",
                           "--deploy-timeout", "5", "--port", str(free_port())],
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "did not become ready on a new local Ray cluster in 5 s" in lines[0] and "--deploy-timeout" in lines[0]


def test_serve_on_a_shared_cluster_leaves_the_other_application_alone(served, tmp_path):
    """`ensemble serve --address` of a cluster where Serve already runs: another port than the
    one it listens on, or the route another application holds, is refused in one line, and
    the other application (the fixture's) still answers: the command deletes only what it
    deployed, never `serve.shutdown()` on a cluster it shares."""
    import ray

    run, base = served
    address = ray.get_runtime_context().gcs_address
    port = int(base.rsplit(":", 1)[1])

    def serve_there(asked_port: int) -> str:
        done = subprocess.run([*installed_command(), "serve", "--run", str(run), "--address", address,
                               "--port", str(asked_port)], capture_output=True, text=True, timeout=300)  # fmt: skip
        lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        return lines[0]

    # Serve keeps the port it runs on: another port asked for is refused, naming the real one.
    refused = serve_there(free_port())
    assert f"Serve already runs on the Ray cluster at {address} and listens on 127.0.0.1:{port}" in refused
    # On its port, the route is the fixture application's.
    refused = serve_there(port)
    assert f"cannot deploy on the Ray cluster at {address}" in refused and "stop that application" in refused
    status, health = get_json(base, "/healthz")
    assert status == 200 and health["ok"]
    assert set(ray.serve.status().applications) == {"acgan-test"}


@pytest.mark.faults  # kills a process and waits for Serve to replace it
def test_a_generator_replica_killed_under_load_is_replaced_and_requests_keep_being_answered(served):
    import threading
    import time

    import ray._private.state  # the GCS's actor table, through this process's connection (no dashboard needed)

    _, base = served

    def replica_pids() -> set[int]:
        return {a["Pid"] for a in ray._private.state.actors().values()
                if a["State"] == "ALIVE" and a["ActorClassName"].endswith("Generators")}  # fmt: skip

    (victim,) = replica_pids()
    outcomes: list[tuple[int, float]] = []
    stop = threading.Event()

    def load(label: str) -> None:
        while not stop.is_set():
            started = time.monotonic()
            status, _, _ = call(base, f"/v1/sample?label={label}&n=4&format=json", timeout=30)
            outcomes.append((status, time.monotonic() - started))

    threads = [threading.Thread(target=load, args=(label,)) for label in ("417", "415", "413", "411")]
    for thread in threads:
        thread.start()
    # Counted answers, not seconds, mark each phase: on a busy machine (the other xdist worker
    # training) three seconds may hold few answers, and the test must not depend on the load.
    wait_for(lambda: len(outcomes) >= 8, timeout=120, what="the load to be answered before the kill")
    before = len(outcomes)
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(lambda: replica_pids() - {victim}, timeout=120, what="Serve to start a new replica")
    replaced_at = len(outcomes)
    wait_for(lambda: len(outcomes) >= replaced_at + 20, timeout=120, what="20 answers through the new replica")
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    failed = [o for o in outcomes if o[0] != 200]
    slowest = max(seconds for _, seconds in outcomes)
    print(f"\nreplica kill: {len(outcomes)} requests ({before} before the kill), {len(failed)} failed, "
          f"slowest {slowest:.1f} s, new replica pid {replaced}")
    assert len(failed) <= 0.01 * len(outcomes), failed[:5]
    assert slowest < 30  # none hung past the client's timeout
