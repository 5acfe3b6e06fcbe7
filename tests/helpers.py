"""Small helpers shared by the tests."""
from __future__ import annotations

import gzip
import json
import socket
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

import cli
import ensemble
from ensemble.planning import plan_splits
from manifests.run_dir import RunDir
from manifests.tables.manifest import SplitRecord
from workers.config import TrainJob
from workers.datasets.builtin import CLASS_NAMES
from workers.presets import cpu_32


def invoke(*args: str):
    return CliRunner().invoke(cli.main, [str(a) for a in args], prog_name="ensemble")


def records_for(plan: list[list[int]], total_steps: int = 10) -> list[SplitRecord]:
    """Manifest rows for a split plan over the built-in classes, nothing trained yet."""
    return [SplitRecord(split=i, classes=c, class_names=[CLASS_NAMES[x] for x in c], total_steps=total_steps)
            for i, c in enumerate(plan)]  # fmt: skip


def planned_run(root, splits: int = 100) -> RunDir:
    """A run directory (run.json and manifest) planned over the built-in data, nothing trained yet."""
    from ensemble.run_spec import new_spec

    run = RunDir(root)
    run.write_spec(new_spec(data=None, splits=splits, num_classes=1000, steps=None, batch_size=None, seed=None,
                            checkpoint_every=None).to_dict())  # fmt: skip
    run.write_manifest(records_for(plan_splits(1000, splits), total_steps=10))
    return run


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def rows_of(run_dir) -> dict:
    """{split: SplitRecord} of a run's manifest as it is on disk now ({} before the first write)."""
    run = RunDir(run_dir)
    return {r.split: r for r in run.read_manifest()} if run.exists() else {}


def wait_for(check, timeout: float, what: str, interval: float = 0.05):
    """Poll `check` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def join_or_fail(thread, timeout: float, what: str) -> None:
    """Join a thread that runs a launch; a launch still running after `timeout` fails the
    test with a clear message instead of letting it go on to assert on a half-done run."""
    thread.join(timeout)
    assert not thread.is_alive(), f"{what} still running after {timeout} s: the launch hangs"


def process_alive(pid: int) -> bool:
    """True for a live process; False for a gone or zombie one (dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class RunsCode:
    """Unpickling this would run a shell command that leaves a marker file: what a malicious
    checkpoint carries. Loading must refuse it without running it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


S3_BUCKET = "acgan-tests"
"""The bucket of the session's S3 server (conftest.py's s3_server)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 this instant."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, path: str, body: bytes | None = None, timeout: float = 60,
         headers: dict | None = None) -> tuple[int, str, bytes]:  # fmt: skip
    request = urllib.request.Request(base + path, data=body, method="POST" if body is not None else "GET",
                                     headers=headers or {})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.headers.get("content-type", ""), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type", ""), error.read()


def get_json(base: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    status, kind, data = call(base, path, None if body is None else json.dumps(body).encode())
    assert kind.startswith("application/json"), (status, kind, data[:200])
    return status, json.loads(data)


def write_mnist(root, count=30, compress=False):
    """A small fake of torchvision's MNIST files under root, in the real idx format."""
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    labels = np.arange(count, dtype=np.uint8) % 10
    images = np.repeat(labels[:, None, None] * 20, 28 * 28).reshape(count, 28, 28).astype(np.uint8)
    blobs = {"train-images-idx3-ubyte": struct.pack(">iiii", 2051, count, 28, 28) + images.tobytes(),
             "train-labels-idx1-ubyte": struct.pack(">ii", 2049, count) + labels.tobytes()}  # fmt: skip
    for name, blob in blobs.items():
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
    return root


CPU_32 = cpu_32().gan.to_dict()
"""The cpu-32 preset's model, as a TrainJob carries it."""

CPU = torch.device("cpu")  # explicit: on a CUDA machine train_split would pick the GPU


def train_on_cpu(job, **kwargs):
    from workers.train import train_split

    return train_split(job, device=CPU, **kwargs)


def make_job(tmp_path, steps, **overrides):
    """A TrainJob of split 41 of the built-in data (classes 410-419) under tmp_path."""
    classes = list(range(410, 420))
    values = dict(split=41, classes=classes, class_names=[CLASS_NAMES[c] for c in classes], data="builtin",
                  split_dir=str(tmp_path / "splits" / "041"), steps=steps, batch_size=8, seed=7,
                  gan=CPU_32, checkpoint_every=10, report_every_seconds=0.0)  # fmt: skip
    values.update(overrides)
    return TrainJob(**values)


class Crash(Exception):
    """Raised by crash_at's report callback: a worker killed mid-training."""


def crash_at(step):
    """A report callback that stops training at the first progress event at or past `step`."""

    def report(event):
        if event.get("step", 0) >= step and event["event"] == "progress":
            raise Crash(step)
    return report


def trained_run_at(root) -> Path:
    """A 100-split run where split 41 has succeeded and split 42 was interrupted after two
    checkpoints (state.pt and state.prev.pt): 4 steps each, trained in this process (no Ray)."""
    from ensemble.launching.tasks import job_for
    from ensemble.run_spec import new_spec
    from manifests.tables.manifest import Status
    from workers.train import train_split

    run = RunDir(root)
    spec = new_spec(data=None, splits=100, num_classes=1000, steps=4, batch_size=4, seed=0, checkpoint_every=2)
    records = records_for(plan_splits(1000, 100), total_steps=spec.steps)
    for split, status in ((41, Status.SUCCEEDED), (42, Status.INTERRUPTED)):
        torch.set_num_threads(1)
        result = train_split(job_for(spec, records[split], run), device=torch.device("cpu"))
        records[split].status, records[split].step, records[split].attempt = status, result.step, 1
        records[split].checkpoint = run.relative(result.generator_path)
        records[split].checkpoint_step = result.step
    run.write_spec(spec.to_dict())
    run.write_manifest(records)
    return run.root.path


# -- a CLI command line as the Python API's call (tests/test_bad_input.py asks both) ---------
LAUNCH_OPTIONS = {"--splits": ("splits", int), "--steps": ("steps", int), "--batch-size": ("batch_size", int),
                  "--seed": ("seed", int), "--checkpoint-every": ("checkpoint_every", int), "--preset": ("preset", str),
                  "--data": ("data", str), "--address": ("address", str), "--gpus-per-split": ("gpus_per_split", float),
                  "--cpus-per-split": ("cpus_per_split", float), "--quality-retries": ("quality_retries", int)}  # fmt: skip
"""`ensemble launch`'s options with a value, as `ensemble.launch`'s keyword arguments."""


def api_call(args: list[str]):
    """The Python API's call for a `sample`, `export` or `launch` case (a function to call), or
    None for a case about what only the CLI has (other commands, PNG files, --scale)."""
    if args[0] == "launch":
        return _api_launch(args[1:])
    if args[0] not in ("sample", "export") or {"--scale"} & set(args) or args[0] == "sample" and "--out" in args:
        return None
    options = dict(zip(args[1::2], args[2::2]))  # the rest are option-value pairs
    if len(options) * 2 != len(args) - 1 or "--run" not in options:
        return None
    if args[0] == "export":
        return lambda: ensemble.open(options["--run"]).export(options["--out"], options.get("--checkpoint", "best"))
    if "--label" not in options:
        return None
    return lambda: ensemble.open(options["--run"]).sample(options["--label"], n=int(options.get("--n", 16)),
                                                          seed=int(options.get("--seed", 0)),
                                                          checkpoint=options.get("--checkpoint", "best"))  # fmt: skip


def _api_launch(args: list[str]):
    from ensemble.planning import parse_split_ids
    from ensemble.run_spec import parse_overrides

    kwargs, sets, run = {}, [], "ensemble-run"
    while args:
        name = args.pop(0)
        if name in ("--guard", "--no-guard"):
            kwargs["guard"] = name == "--guard"
        elif not args:
            return None
        elif name == "--run":
            run = args.pop(0)
        elif name == "--set":
            sets.append(args.pop(0))
        elif name == "--only":
            kwargs["only"] = args.pop(0)
        elif name in LAUNCH_OPTIONS:
            key, kind = LAUNCH_OPTIONS[name]
            kwargs[key] = (kind, args.pop(0))
        else:
            return None

    def call():
        converted = {k: v[0](v[1]) if isinstance(v, tuple) else v for k, v in kwargs.items()}
        if "only" in converted:
            converted["only"] = parse_split_ids(converted["only"])
        return ensemble.launch(run, overrides=parse_overrides(tuple(sets)), **converted)

    return call
