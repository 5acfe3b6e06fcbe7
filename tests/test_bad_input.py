"""Bad input, across the CLI, data folders, the manifest and checkpoints.

Each case must get a one-line error that names the problem (the fragments below), a
non-zero exit code, no traceback, and leave every file of the run byte-identical. None of
them reaches Ray: each is refused before a cluster would start. docs/bad-inputs.md lists
the same cases for users (a test below keeps the two in step).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import ensemble

from manifests.run_dir import RunDir
from manifests.tables.manifest import Status
from tests.helpers import RunsCode, api_call, assert_one_line_error, invoke, trained_run_at

DOC = Path(__file__).parents[1] / "docs" / "bad-inputs.md"


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    answer: list[str]
    """Fragments of the one-line answer."""
    setup: str | None = None
    """Name of a function below that breaks something in the run first."""


CASES = [
    # -- the command line ----------------------------------------------------------------
    Case("unknown command", ["lanch"], ["No such command 'lanch'", "ensemble --help"]),
    Case("unknown option", ["launch", "--bogus"], ["No such option '--bogus'", "ensemble launch --help"]),
    Case("--splits not a number", ["launch", "--splits", "abc", "--run", "{tmp}/new"], ["'abc' is not a valid integer"]),
    Case("--splits 0", ["launch", "--splits", "0", "--run", "{tmp}/new"], ["--splits must be at least 1"]),
    Case("--splits above the class count", ["launch", "--splits", "2000", "--run", "{tmp}/new"], ["between 1 and 1000"]),
    Case("--steps 0", ["launch", "--steps", "0", "--run", "{tmp}/new"], ["--steps must be at least 1"]),
    Case("--batch-size negative", ["launch", "--batch-size", "-1", "--run", "{tmp}/new"], ["--batch-size must be at least 1"]),
    Case("--seed past what a manifest holds", ["launch", "--seed", "10000000000000", "--run", "{tmp}/new"],
         ["--seed must be between 0 and 4294967295, got 10000000000000"]),
    Case("--seed negative", ["launch", "--seed", "-3", "--run", "{tmp}/new"], ["--seed must be between 0 and 4294967295"]),
    Case("--cpus-per-split 0", ["launch", "--cpus-per-split", "0", "--run", "{tmp}/new"], ["--cpus-per-split must be more than 0"]),
    Case("--gpus-per-split negative", ["launch", "--gpus-per-split", "-1", "--run", "{tmp}/new"],
         ["--gpus-per-split must be 0 or more"]),
    Case("--only malformed", ["launch", "--only", "4-x", "--run", "{run}"], ["--only '4-x' is not a list of split ids"]),
    Case("--only beyond the run's splits", ["launch", "--run", "{run}", "--only", "100"], ["--only names split(s) [100]"]),
    Case("--only a reversed range", ["launch", "--run", "{run}", "--only", "9-0"],
         ["--only '9-0'", "9-0 runs backwards", "0-9"]),
    Case("--address not an address", ["launch", "--address", "head node", "--run", "{tmp}/new"],
         ["is not a Ray address", "HOST:PORT"]),
    Case("relaunch changing --splits", ["launch", "--run", "{run}", "--splits", "50"],
         ["launched with --splits 100, not 50", "new --run"]),
    Case("relaunch changing --steps", ["launch", "--run", "{run}", "--steps", "99"], ["launched with --steps 4, not 99"]),
    Case("relaunch changing --preset", ["launch", "--run", "{run}", "--preset", "cifar-32"],
         ["launched with --preset cpu-32, not cifar-32"]),
    Case("relaunch changing a model field", ["launch", "--run", "{run}", "--set", "loss=hinge"],
         ["launched with loss=\"bce\", not \"hinge\"", "leave --set loss out"]),
    Case("--preset unknown", ["launch", "--preset", "paper-256", "--run", "{tmp}/new"],
         ["'paper-256' is not one of", "ensemble launch --help"]),
    Case("--preset whose size the built-in data lacks", ["launch", "--preset", "paper-64", "--run", "{tmp}/new"],
         ["built-in data is 32x32", "paper-64 makes 64x64", "--preset cpu-32"]),
    Case("--set without =", ["launch", "--set", "hinge", "--run", "{tmp}/new"], ["must look like FIELD=VALUE"]),
    Case("--set of no such field", ["launch", "--set", "lossy=1", "--run", "{tmp}/new"], ["--set lossy: no such model field"]),
    Case("--set a bad value", ["launch", "--set", "loss=wgan", "--run", "{tmp}/new"], ["loss must be one of bce, hinge"]),
    Case("--set a negative mode-seeking weight", ["launch", "--set", "g_mode_seeking=-1", "--run", "{tmp}/new"],
         ["g_mode_seeking must be >= 0, got -1.0"]),
    Case("--set a wrong type", ["launch", "--set", "g_ema=fast", "--run", "{tmp}/new"], ["bad model config"]),
    Case("--set channels the data lacks", ["launch", "--set", "channels=1", "--run", "{tmp}/new"],
         ["--set channels=1", "every dataset is read as 3-channel RGB"]),
    Case("--set g_kernel of a model that does not use it", ["launch", "--set", "g_kernel=3", "--run", "{tmp}/new"],
         ["--set g_kernel changes G's transposed convolutions", "--set g_upsample=transpose"]),
    Case("--set num_classes", ["launch", "--set", "num_classes=5", "--run", "{tmp}/new"],
         ["--set num_classes", "10 classes per split", "--splits"]),
    Case("--set TAC with the paper's class loss", ["launch", "--preset", "cifar-32", "--set", "tac=true", "--run", "{tmp}/new"],
         ["tac trains D's class head on real images only"]),
    Case("--run a folder of other files", ["launch", "--run", "{clutter}"], ["exists and is not an ensemble run"]),
    Case("--run a file", ["launch", "--run", "{clutter}/thesis.tex"], ["is a file"]),
    Case("--run not writable", ["launch", "--run", "/proc/ensemble-run", "--only", "0"], ["cannot write the run"]),
    Case("status of a missing run", ["status", "--run", "{tmp}/nowhere"], ["does not exist", "ensemble launch"]),
    Case("status of a folder that is no run", ["status", "--run", "{clutter}"], ["not an ensemble run"]),
    Case("status of a file", ["status", "--run", "{clutter}/thesis.tex"], ["is a file, not a run directory"]),
    Case("sample without --label", ["sample", "--run", "{run}"], ["Missing option '--label'", "ensemble sample --help"]),
    Case("sample of a missing run", ["sample", "--label", "417", "--run", "{tmp}/nowhere"], ["does not exist"]),
    Case("label above the range", ["sample", "--label", "1000", "--run", "{run}"], ["out of range", "0-999"]),
    Case("label negative", ["sample", "--label", "-4", "--run", "{run}"], ["out of range"]),
    Case("label of no class", ["sample", "--label", "balloon", "--run", "{run}"], ["no class is named 'balloon'"]),
    Case("label empty", ["sample", "--label", "", "--run", "{run}"], ["no class is named ''"]),
    Case("label of two minus signs", ["sample", "--label=--5", "--run", "{run}"], ["no class is named '--5'"]),
    Case("label of a superscript digit", ["sample", "--label", "²", "--run", "{run}"], ["no class is named '²'"]),
    Case("label of 5000 digits", ["sample", "--label", "7" * 5000, "--run", "{run}"],
         ["label 7777777777777777777777777777777777777777... (5000 characters) is out of range"]),
    Case("label whose split has not trained", ["sample", "--label", "5", "--run", "{run}"],
         ["split 0", "no checkpoint yet", "ensemble launch"]),
    Case("--n 0", ["sample", "--label", "417", "--n", "0", "--run", "{run}"], ["--n must be between 1 and"]),
    Case("--n absurd", ["sample", "--label", "417", "--n", "100000000", "--run", "{run}"], ["--n must be between 1 and"]),
    Case("sample --seed negative", ["sample", "--label", "417", "--seed", "-1", "--run", "{run}"],
         ["--seed must be between 0 and 9223372036854775807, got -1"]),
    Case("sample --seed past int64", ["sample", "--label", "417", "--seed", str(2**64), "--run", "{run}"],
         ["--seed must be between 0 and 9223372036854775807, got 18446744073709551616"]),
    Case("--scale 0", ["sample", "--label", "417", "--scale", "0", "--run", "{run}"], ["--scale"]),
    Case("--out inside a file", ["sample", "--label", "417", "--run", "{run}", "--out", "{clutter}/thesis.tex/s.png"],
         ["is a file, not a folder"]),
    Case("--out not writable", ["sample", "--label", "417", "--run", "{run}", "--out", "/proc/s.png"], ["cannot write to"]),
    Case("launch --quality-retries negative", ["launch", "--run", "{run}", "--quality-retries", "-1"],
         ["--quality-retries must be 0 or more"]),
    Case("relaunch turning the guard off", ["launch", "--run", "{run}", "--no-guard"], ["was launched with --guard"]),
    Case("sample --checkpoint unknown", ["sample", "--label", "417", "--run", "{run}", "--checkpoint", "first"],
         ["'first' is not one of 'best', 'latest'", "ensemble sample --help"]),
    # -- evaluate ------------------------------------------------------------------------
    Case("evaluate of a missing run", ["evaluate", "--run", "{tmp}/nowhere"], ["does not exist"]),
    Case("evaluate --samples 0", ["evaluate", "--run", "{run}", "--samples", "0"], ["--samples must be between 2 and"]),
    Case("evaluate --samples absurd", ["evaluate", "--run", "{run}", "--samples", "10000000"],
         ["--samples must be between 2 and"]),
    Case("evaluate an unknown split", ["evaluate", "--run", "{run}", "--only", "500"], ["--only names split(s) [500]"]),
    Case("evaluate a split still training", ["evaluate", "--run", "{run}", "--only", "41,42"],
         ["split(s) [42] have not finished training", "ensemble launch"]),
    Case("evaluate a run with no finished split", ["evaluate", "--run", "{run}"],
         ["has finished training", "then evaluate"], setup="unfinish_run"),
    Case("evaluate --classifier-weights missing", ["evaluate", "--run", "{run}", "--classifier-weights", "{tmp}/none.pth"],
         ["--classifier-weights", "no such file"]),
    Case("evaluate --classifier-weights unreadable",
         ["evaluate", "--run", "{run}", "--classifier-weights", "{clutter}/thesis.tex"], ["--classifier-weights", "is unreadable"]),
    Case("evaluate --classifier-weights of another network",
         ["evaluate", "--run", "{run}", "--classifier-weights", "{tmp}/tiny.pth"],
         ["neither a torchvision Inception-v3 nor a ResNet-50"], setup="tiny_state_dict"),
    # -- report --------------------------------------------------------------------------
    Case("report of a missing run", ["report", "--run", "{tmp}/nowhere"], ["does not exist"]),
    Case("report of a run with nothing trained", ["report", "--run", "{run}"],
         ["nothing in", "has been trained yet", "ensemble launch"], setup="untrain_run"),
    Case("report --out in a missing folder", ["report", "--run", "{run}", "--out", "{tmp}/no/such/report.html"],
         ["the folder", "does not exist"]),
    Case("report --out a folder", ["report", "--run", "{run}", "--out", "{clutter}"], ["is a folder", "report.html"]),
    Case("report --out not .html", ["report", "--run", "{run}", "--out", "{tmp}/report.pdf"], ["must end in .html"]),
    Case("report --out not writable", ["report", "--run", "{run}", "--out", "/proc/report.html"],
         ["cannot be written"]),
    Case("status --watch --interval 0", ["status", "--run", "{run}", "--watch", "--interval", "0"],
         ["--interval must be at least 0.2 seconds"]),
    # -- serve ---------------------------------------------------------------------------
    Case("serve of a missing run", ["serve", "--run", "{tmp}/nowhere"], ["does not exist"]),
    Case("serve --replicas 0", ["serve", "--run", "{run}", "--replicas", "0"], ["--replicas must be at least 1"]),
    Case("serve --models-per-replica 0", ["serve", "--run", "{run}", "--models-per-replica", "0"],
         ["--models-per-replica must be at least 1"]),
    Case("serve --port out of range", ["serve", "--run", "{run}", "--port", "70000"],
         ["--port must be between 1 and 65535"]),
    Case("serve --deploy-timeout 0", ["serve", "--run", "{run}", "--deploy-timeout", "0"],
         ["--deploy-timeout must be a number of seconds above 0, got 0"]),
    Case("serve --host not an address of this machine", ["serve", "--run", "{run}", "--host", "192.0.2.99"],
         ["cannot listen on 192.0.2.99:8000", "--host"]),
    # -- data folders --------------------------------------------------------------------
    Case("--data missing", ["launch", "--data", "{tmp}/no-such-folder", "--run", "{tmp}/new"], ["does not exist"]),
    Case("--data empty", ["launch", "--data", "{empty}", "--run", "{tmp}/new"], ["no class subfolders"]),
    Case("--data a file", ["launch", "--data", "{clutter}/thesis.tex", "--run", "{tmp}/new"], ["is a file"]),
    Case("--data images not in class folders", ["launch", "--data", "{tmp}/loose", "--run", "{tmp}/new"],
         ["has no class subfolders", "3 image files directly"], setup="loose_images"),
    Case("--data CIFAR-10 not there", ["launch", "--data", "cifar10:{empty}", "--run", "{tmp}/new"],
         ["CIFAR-10 not found", "data_batch_1 is missing", "never downloads"]),
    Case("--data MNIST root missing", ["launch", "--data", "mnist:{tmp}/nowhere", "--run", "{tmp}/new"],
         ["is not a folder", "torchvision's root"]),
    Case("--data with a class folder of no images", ["launch", "--data", "{images}", "--run", "{tmp}/new"],
         ["holds no image files"], setup="class_without_images"),
    # -- the manifest and run spec -------------------------------------------------------
    Case("manifest truncated (status)", ["status", "--run", "{run}"], ["manifest", "is unreadable"], setup="truncate_manifest"),
    Case("manifest truncated (launch)", ["launch", "--run", "{run}"], ["manifest", "is unreadable"], setup="truncate_manifest"),
    Case("manifest of another schema", ["status", "--run", "{run}"], ["has schema version ? with columns", "reads versions 1-6"],
         setup="foreign_manifest"),
    Case("manifest of a newer release", ["status", "--run", "{run}"],
         ["has schema version 99, newer than this acgan-ensemble reads (1-6)", "upgrade acgan-ensemble"],
         setup="newer_manifest"),
    Case("evaluation table of a newer release", ["status", "--run", "{run}"],
         ["evaluation table", "has schema version 99, newer than this acgan-ensemble reads (1-3)"],
         setup="newer_evaluation"),
    Case("run.json corrupt", ["launch", "--run", "{run}"], ["run.json is not valid JSON"], setup="corrupt_spec"),
    Case("run.json missing", ["launch", "--run", "{run}"], ["run.json is missing"], setup="remove_spec"),
    Case("run.json of a newer release", ["launch", "--run", "{run}"], ["run.json has version 2", "upgrade acgan-ensemble"],
         setup="newer_spec"),
    # -- checkpoints ---------------------------------------------------------------------
    Case("training state carrying pickled code", ["launch", "--run", "{run}", "--only", "42"],
         ["split 42 cannot resume", "a pickled reference to", "never run", "delete"], setup="pickle_payload"),
    Case("training state truncated, no earlier one", ["launch", "--run", "{run}", "--only", "42"],
         ["split 42 cannot resume", "state.pt is unreadable", "no usable checkpoint"], setup="truncate_states"),
    Case("generator weights corrupt", ["sample", "--label", "417", "--run", "{run}"],
         ["generator checkpoint", "is unreadable"], setup="corrupt_generator"),
    Case("generator.json missing", ["sample", "--label", "417", "--run", "{run}"],
         ["generator.json is missing"], setup="remove_generator_info"),
    Case("generator of other classes", ["sample", "--label", "417", "--run", "{run}"],
         ["belongs to classes", "not split 41"], setup="swap_generator"),
    # -- export ---------------------------------------------------------------------------
    Case("export without --out", ["export", "--run", "{run}"], ["Missing option '--out'", "ensemble export --help"]),
    Case("export into a folder that holds files", ["export", "--run", "{run}", "--out", "{clutter}"],
         ["--out", "exists and is not an empty folder", "new folder"]),
    Case("export of a missing run", ["export", "--run", "{tmp}/nowhere", "--out", "{tmp}/bundle"], ["does not exist"]),
    Case("export whose generator file is gone", ["export", "--run", "{run}", "--out", "{tmp}/bundle"],
         ["split 41's generator file", "is missing", "relaunch"], setup="remove_generator_weights"),
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A 100-split run where split 41 has succeeded and split 42 was interrupted after two
    checkpoints (state.pt and state.prev.pt). Trained once, copied for each case."""
    return trained_run_at(tmp_path_factory.mktemp("trained") / "run")


# -- setups: each breaks one thing --------------------------------------------------------
def class_without_images(places):
    (places["images"] / "cats").mkdir(parents=True)
    (places["images"] / "cats" / "0.png").write_bytes(b"...")
    (places["images"] / "dogs").mkdir()
    (places["images"] / "dogs" / "notes.txt").write_text("no images here")


def truncate_manifest(places):
    path = places["run"] / "manifest.parquet"
    path.write_bytes(path.read_bytes()[:300])


def foreign_manifest(places):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"split": [0], "state": ["done"]}), places["run"] / "manifest.parquet")


def corrupt_spec(places):
    (places["run"] / "run.json").write_text('{"splits": 100,')


def newer_manifest(places):
    import pyarrow.parquet as pq

    from manifests.tables.parquet import VERSION_KEY

    path = places["run"] / "manifest.parquet"
    pq.write_table(pq.read_table(path).replace_schema_metadata({VERSION_KEY: b"99"}), path)


def newer_evaluation(places):
    import pyarrow.parquet as pq

    from manifests.tables.evaluation import write_evaluation
    from manifests.tables.parquet import VERSION_KEY

    path = write_evaluation(places["run"], [])
    pq.write_table(pq.read_table(path).replace_schema_metadata({VERSION_KEY: b"99"}), path)


def newer_spec(places):
    import json

    spec = json.loads((places["run"] / "run.json").read_text())
    (places["run"] / "run.json").write_text(json.dumps({**spec, "version": 2}))


def remove_spec(places):
    (places["run"] / "run.json").unlink()


def pickle_payload(places):
    split_dir = places["run"] / "splits" / "042"
    for name in ("state.pt", "state.prev.pt"):
        torch.save({"step": 4, "generator": RunsCode(places["tmp"] / f"pwned-{name}")}, split_dir / name)


def truncate_states(places):
    split_dir = places["run"] / "splits" / "042"
    (split_dir / "state.prev.pt").unlink()
    state = split_dir / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])


def corrupt_generator(places):
    path = places["run"] / "splits" / "041" / "generator.safetensors"
    path.write_bytes(b"\x00" * 64 + path.read_bytes()[64:200])


def remove_generator_info(places):
    (places["run"] / "splits" / "041" / "generator.json").unlink()


def loose_images(places):
    from PIL import Image

    (places["tmp"] / "loose").mkdir()
    for i in range(3):
        Image.new("RGB", (4, 4)).save(places["tmp"] / "loose" / f"{i}.png")


def unfinish_run(places):
    run = RunDir(places["run"])
    records = run.read_manifest()
    records[41].status = Status.INTERRUPTED
    run.write_manifest(records)


def untrain_run(places):
    """The manifest of a run whose launch has not checkpointed anything yet."""
    run = RunDir(places["run"])
    records = run.read_manifest()
    for record in records:
        record.checkpoint = record.checkpoint_step = record.best_checkpoint = None
    run.write_manifest(records)


def tiny_state_dict(places):
    torch.save({"weight": torch.zeros(2, 2)}, places["tmp"] / "tiny.pth")


def remove_generator_weights(places):
    (places["run"] / "splits" / "041" / "generator.safetensors").unlink()


def swap_generator(places):
    split_dir = places["run"] / "splits"
    for name in ("generator.safetensors", "generator.json"):
        shutil.copy(split_dir / "042" / name, split_dir / "041" / name)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_line_and_leaves_the_run_alone(tmp_path, trained_run, case):
    places = {"tmp": tmp_path, "run": tmp_path / "run", "empty": tmp_path / "empty",
              "clutter": tmp_path / "clutter", "images": tmp_path / "images"}  # fmt: skip
    shutil.copytree(trained_run, places["run"])
    places["empty"].mkdir()
    places["clutter"].mkdir()
    (places["clutter"] / "thesis.tex").write_text("precious")
    if case.setup:
        globals()[case.setup](places)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    args = [a.format(**places) for a in case.args]
    result = invoke(*args)

    assert_one_line_error(result, *case.answer)
    through_api = api_call(args)
    if through_api is not None and result.exit_code == 1:  # 2: click's usage errors, which only the CLI has
        with pytest.raises(ensemble.EnsembleError) as raised:
            through_api()
        assert f"Error: {raised.value}" == result.output.strip()  # the same one line, through the Python API
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing written, changed or removed; no marker from pickled code
    assert not list(tmp_path.glob("pwned-*"))


def test_the_api_is_asked_the_sample_export_and_launch_cases():
    """The check above is not vacuous: the cases of these commands reach the API."""
    places = {"tmp": "T", "run": "R", "empty": "E", "clutter": "C", "images": "I"}
    reached = {command: [c.id for c in CASES if c.args[0] == command
                         and api_call([a.format(**places) for a in c.args]) is not None]
               for command in ("sample", "export", "launch")}  # fmt: skip
    assert len(reached["sample"]) >= 8 and len(reached["export"]) >= 3 and len(reached["launch"]) >= 35, reached


def test_the_cases_are_at_least_25_and_all_in_the_docs():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)
    documented = set(re.findall(r"^\| ([^|]+?) \|", DOC.read_text(), flags=re.MULTILINE))
    assert {c.id for c in CASES} <= documented, sorted({c.id for c in CASES} - documented)
