"""The CLI without training: help, light imports, errors, status."""
import json
import subprocess
import sys

import pytest

from ensemble.cluster import Cluster, choose_gpus_per_split
from ensemble.errors import EnsembleError
from tests.helpers import assert_one_line_error, invoke, planned_run


@pytest.mark.parametrize("command", [[], ["launch"], ["status"], ["sample"]])
def test_help_for_every_command(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    if command:
        assert "Examples:" in result.output


def test_help_and_status_import_neither_torch_nor_ray(tmp_path):
    planned_run(tmp_path / "run")
    code = (
        "import sys; from click.testing import CliRunner; import cli;"
        "r = CliRunner().invoke(cli.main, ['--help']); assert r.exit_code == 0;"
        f"r = CliRunner().invoke(cli.main, ['status', '--run', {str(tmp_path / 'run')!r}]);"
        "assert r.exit_code == 0, r.output;"
        "print(sorted(m for m in ('torch', 'ray', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_status_table_json_and_summary(tmp_path):
    planned_run(tmp_path / "run")
    table = invoke("status", "--run", tmp_path / "run")
    assert table.exit_code == 0
    assert "410-419" in table.output and "pending" in table.output
    assert table.output.strip().endswith("100 splits: 100 pending; 0% of steps done")

    data = json.loads(invoke("status", "--run", tmp_path / "run", "--json").output)
    assert len(data["splits"]) == 100 and data["counts"]["pending"] == 100
    row = data["splits"][41]
    for key in ("split", "status", "classes", "step", "total_steps", "attempt", "checkpoint"):
        assert key in row
    assert row["classes"] == list(range(410, 420)) and row["checkpoint"] is None

    summary = invoke("status", "--run", tmp_path / "run", "--summary")
    assert summary.output.strip() == "100 splits: 100 pending; 0% of steps done"


BAD_INPUTS = [
    (["status", "--run", "{tmp}/nowhere"], ["does not exist", "ensemble launch"]),
    (["status", "--run", "{tmp}"], ["not an ensemble run"]),
    (["sample", "--label", "417", "--run", "{tmp}/nowhere"], ["does not exist"]),
    (["sample", "--label", "1000", "--run", "{run}"], ["out of range", "0-999"]),
    (["sample", "--label", "-4", "--run", "{run}"], ["out of range"]),
    (["sample", "--label", "balloon", "--run", "{run}"], ["no class is named 'balloon'"]),
    (["sample", "--label", "417", "--run", "{run}"], ["split 41", "no checkpoint yet", "ensemble launch"]),
    (["sample", "--label", "417", "--n", "0", "--run", "{run}"], ["--n must be between 1 and"]),
    (["sample", "--label", "417", "--n", "100000000", "--run", "{run}"], ["--n must be between 1 and"]),
    (["sample", "--label", "417", "--scale", "0", "--run", "{run}"], ["--scale"]),
    (["launch", "--splits", "7", "--run", "{tmp}/new"], ["does not divide 1000", "try one of"]),
    (["launch", "--splits", "0", "--run", "{tmp}/new"], ["--splits must be at least 1"]),
    (["launch", "--splits", "2000", "--run", "{tmp}/new"], ["between 1 and 1000"]),
    (["launch", "--steps", "0", "--run", "{tmp}/new"], ["--steps must be at least 1"]),
    (["launch", "--batch-size", "-1", "--run", "{tmp}/new"], ["--batch-size must be at least 1"]),
    (["launch", "--data", "{tmp}/no-such-folder", "--run", "{tmp}/new"], ["does not exist"]),
    (["launch", "--data", "{empty}", "--run", "{tmp}/new"], ["no class subfolders"]),
    (["launch", "--run", "{run}", "--splits", "50"], ["launched with --splits 100, not 50", "new --run"]),
    (["launch", "--run", "{run}", "--steps", "99"], ["launched with --steps 10, not 99"]),
    (["launch", "--run", "{run}", "--only", "100"], ["--only names split(s) [100]"]),
    (["launch", "--run", "{clutter}"], ["exists and is not an ensemble run"]),
]


@pytest.mark.parametrize("args,fragments", BAD_INPUTS, ids=[" ".join(a[:3]) for a, _ in BAD_INPUTS])
def test_bad_input_gets_one_line_and_leaves_the_run_alone(tmp_path, args, fragments):
    run = planned_run(tmp_path / "run")
    run.write_spec({"version": 1, "data": "builtin", "splits": 100, "num_classes": 1000, "steps": 10,
                    "batch_size": 8, "seed": 0, "checkpoint_every": 5})  # fmt: skip
    (tmp_path / "empty").mkdir()
    (tmp_path / "clutter").mkdir()
    (tmp_path / "clutter" / "thesis.tex").write_text("precious")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    places = {"tmp": tmp_path, "run": tmp_path / "run", "empty": tmp_path / "empty", "clutter": tmp_path / "clutter"}
    result = invoke(*[a.format(**places) for a in args])
    assert_one_line_error(result, *fragments)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def cluster(gpus: float, largest: float) -> Cluster:
    return Cluster(address="x", started_here=False, num_cpus=8, num_gpus=gpus,
                   largest_node_cpus=8, largest_node_gpus=largest)  # fmt: skip


def test_gpus_per_split_defaults_to_the_cluster_kind():
    assert choose_gpus_per_split(cluster(0, 0), None) == 0
    assert choose_gpus_per_split(cluster(8, 8), None) == 1
    assert choose_gpus_per_split(cluster(8, 8), 0.25) == 0.25


@pytest.mark.parametrize("gpus,largest,requested,message", [
    (0, 0, 1, "has none; pass --gpus-per-split 0"),
    (8, 4, 6, "more than any node has"),
    (4, 4, -1, "0 or more"),
])  # fmt: skip
def test_impossible_gpu_requests_are_refused_rather_than_queued_forever(gpus, largest, requested, message):
    with pytest.raises(EnsembleError, match=message):
        choose_gpus_per_split(cluster(gpus, largest), requested)


def test_an_address_where_no_cluster_listens_fails_fast(tmp_path):
    import socket
    import time

    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    result = invoke("launch", "--splits", "100", "--only", "0", "--run", tmp_path / "run",
                    "--address", f"127.0.0.1:{port}")  # fmt: skip
    assert_one_line_error(result, "nothing answers at Ray address", "--address")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "run").exists()
