"""The CLI without training: help, light imports, errors, status."""
import json
import subprocess
import sys

import pytest

import cli
from ensemble.cluster import Cluster, choose_gpus_per_split
from ensemble.errors import EnsembleError
from tests.helpers import assert_one_line_error, invoke, planned_run


@pytest.mark.parametrize("command", [[]] + [[name] for name in sorted(cli.main.commands)])
def test_help_for_every_command(command):
    """Every command the CLI has, found from the CLI itself: a new command cannot be missed."""
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert f"Usage: ensemble {command[0] if command else ''}".rstrip() in result.output
    if command:
        assert "Examples:" in result.output
        assert f"\n    ensemble {command[0]}" in result.output  # an example of this very command


def test_the_help_lists_every_command():
    assert {"launch", "status", "sample", "evaluate", "report", "serve"} <= set(cli.main.commands)
    listed = invoke("--help").output
    assert all(f"  {name} " in listed for name in cli.main.commands), listed


def test_help_and_status_import_neither_torch_nor_ray(tmp_path):
    from manifests.tables.evaluation import write_evaluation

    planned_run(tmp_path / "run")
    # An evaluated run: status reads evaluation.parquet too, still without torch.
    write_evaluation(tmp_path / "run", [{
        "label": 417, "name": "violet bar on maroon window", "split": 41, "checkpoint": "best", "checkpoint_step": 400,
        "samples": 100, "accuracy": 1.0, "real_accuracy": 1.0, "ms_ssim": 0.8, "real_ms_ssim": 0.8, "diversity": 0.9, "distinctness": 0.9,
        "fid": None, "split_fid": 2.0, "split_kid": 0.03, "novelty": 1.2, "imagenet_accuracy": None, "verdict": "ok",
    }])  # fmt: skip
    code = (
        "import sys; from click.testing import CliRunner; import cli;"
        "r = CliRunner().invoke(cli.main, ['--help']); assert r.exit_code == 0;"
        f"r = CliRunner().invoke(cli.main, ['status', '--run', {str(tmp_path / 'run')!r}]);"
        "assert r.exit_code == 0, r.output;"
        "assert 'evaluated 1 classes: 1 ok' in r.output, r.output;"
        "print(sorted(m for m in ('torch', 'ray', 'torchvision', 'torchmetrics') if m in sys.modules))"
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


def test_launch_help_gives_every_preset_and_its_recipe_defaults():
    from workers.presets import PRESETS, get_preset

    text = " ".join(invoke("launch", "--help").output.split())
    assert f"[{'|'.join(PRESETS)}]" in text
    for field, option in (("steps", "--steps"), ("batch_size", "--batch-size"), ("checkpoint_every", "--checkpoint-every")):
        described = text.rsplit(f"{option} INTEGER", 1)[1].split(" --", 1)[0]  # up to the next option
        assert f"{getattr(get_preset('cpu-32'), field)} for cpu-32" in described, described
        assert f"{getattr(get_preset('paper-128'), field)} for the others" in described, described


def test_only_naming_finished_splits_says_what_it_selected_and_why_nothing_ran(tmp_path):
    """`--only 41` where split 41 has succeeded and the 99 others are pending: not "every split
    has succeeded", but what --only selected, its state, and what the rest of the run is."""
    from manifests.tables.manifest import Status

    run = planned_run(tmp_path / "run")
    records = run.read_manifest()
    records[41].status = Status.SUCCEEDED
    run.write_manifest(records)
    result = invoke("launch", "--run", tmp_path / "run", "--only", "41")
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith("Nothing to do: --only selects split 41, which has finished training (1 succeeded)"), line
    assert "the run's other 99 splits: 99 pending" in line and "leave --only out" in line, line
    assert "every split" not in line

    records[40].status = Status.FLAGGED
    run.write_manifest(records)
    result = invoke("launch", "--run", tmp_path / "run", "--only", "40-41")
    assert "--only selects splits 40-41, which have finished training (1 succeeded, 1 flagged)" in result.output


@pytest.mark.parametrize("value,message", [("9-0", "9-0 runs backwards; write it 0-9"), ("3,", "not a list of split ids"),
                                           ("", "not a list of split ids")])  # fmt: skip
def test_only_refuses_ranges_that_select_nothing(tmp_path, value, message):
    planned_run(tmp_path / "run")
    assert_one_line_error(invoke("launch", "--run", tmp_path / "run", "--only", value), message)


def test_cpus_per_split_beyond_any_node_is_refused():
    from ensemble.cluster import check_cpus_per_split

    check_cpus_per_split(cluster(0, 0), 8)  # as many as the largest node: fine
    with pytest.raises(EnsembleError, match=r"--cpus-per-split 9 is more than any node has \(at most 8\)"):
        check_cpus_per_split(cluster(0, 0), 9)


def finished_run(root):
    from manifests.tables.manifest import Status

    run = planned_run(root)
    records = run.read_manifest()
    for r in records:
        r.status = Status.SUCCEEDED
    run.write_manifest(records)
    return run


def test_a_relaunch_repeating_the_stored_options_is_accepted(tmp_path):
    """--data, --splits, --preset and --set equal to what run.json holds are not a change."""
    run = finished_run(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.root.path.iterdir() if p.is_file()}
    result = invoke("launch", "--run", run.root, "--data", "builtin", "--splits", "100", "--preset", "cpu-32",
                    "--set", "loss=bce", "--set", "g_ema=0.98", "--guard")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Nothing to do: every split of"), result.output
    assert {p.name: p.read_bytes() for p in run.root.path.iterdir() if p.is_file()} == before


def test_ensemble_run_names_the_run_when_run_is_left_out(tmp_path, monkeypatch):
    finished_run(tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)  # no ./ensemble-run here
    from click.testing import CliRunner

    import cli

    result = CliRunner().invoke(cli.main, ["status", "--summary"], env={"ENSEMBLE_RUN": str(tmp_path / "elsewhere")})
    assert result.exit_code == 0 and "100 splits: 100 succeeded" in result.output, result.output
    assert_one_line_error(CliRunner().invoke(cli.main, ["status"], env={"ENSEMBLE_RUN": ""}), "does not exist")


@pytest.mark.parametrize("preset,gpus,asked,tip", [
    ("cpu-32", 1.0, False, True), ("cifar-32", 1.0, False, True),
    ("cpu-32", 1.0, True, False),  # the user chose one GPU per split
    ("cpu-32", 0.125, True, False), ("paper-128", 1.0, False, False), ("cpu-32", 0.0, False, False),
])  # fmt: skip
def test_a_launch_that_gives_a_small_model_a_whole_gpu_suggests_sharing_it(preset, gpus, asked, tip, capsys):
    from ensemble.console import LaunchView
    from ensemble.run_spec import new_spec

    spec = new_spec(data=None, splits=100, num_classes=1000, steps=None, batch_size=None, seed=None,
                    checkpoint_every=None, preset=preset)  # fmt: skip
    with LaunchView(gpus_asked=asked) as view:
        view.launched(cluster(8 if gpus else 0, 8 if gpus else 0), spec, [], gpus)
    shown = capsys.readouterr().err
    assert shown.startswith("Training 0 of 100 splits of 10 classes (")
    assert ("tip: one " in shown and "--gpus-per-split 0.125" in shown) == tip, shown
