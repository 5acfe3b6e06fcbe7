"""The whole loop on a real local Ray cluster: launch -> manifest -> status -> sample."""
import json
import os
import re

import pytest
import torch
from PIL import Image

from manifests.run_dir import RunDir
from manifests.tables.manifest import Status
from bench.command import installed_command
from tests.helpers import assert_one_line_error, invoke, rows_of

pytestmark = pytest.mark.usefixtures("ray_cluster")

# Tiny runs test the orchestration; the quality guard (which would flag 12-step generators)
# has its own tests (tests/test_quality.py).
QUICK = ["--steps", "12", "--batch-size", "8", "--checkpoint-every", "6", "--no-guard"]


def test_launch_status_and_sample_on_builtin_data(tmp_path):
    run = tmp_path / "run"
    result = invoke("launch", "--splits", "100", "--only", "41,42", "--run", run, "--gpus-per-split", "0", *QUICK)
    assert result.exit_code == 0, result.output
    assert "98 pending, 2 succeeded" in result.output

    rows = rows_of(run)
    for split in (41, 42):
        row = rows[split]
        assert (row.status, row.attempt, row.step, row.total_steps) == (Status.SUCCEEDED, 1, 12, 12)
        assert row.checkpoint == f"splits/{split:03d}/generator.safetensors" and row.checkpoint_step == 12
        assert (run / row.checkpoint).is_file() and row.device == "cpu" and row.node
        assert row.started_at <= row.finished_at and row.train_seconds > 0
        assert row.loss_d is not None and row.error is None and row.warning is None
        assert row.pid > 0 and row.steps_redone == 0 and row.skipped_images == 0
    assert rows[41].classes == list(range(410, 420)) and rows[0].status == Status.PENDING
    assert json.loads((run / "run.json").read_text())["splits"] == 100

    status = json.loads(invoke("status", "--run", run, "--json").output)
    assert status["counts"] == {"pending": 98, "running": 0, "succeeded": 2, "flagged": 0, "failed": 0, "interrupted": 0}
    assert status["launch"] is None
    assert status["splits"][41]["status"] == "succeeded" and status["splits"][41]["step"] == 12

    sample = invoke("sample", "--label", "417", "--run", run, "--n", "9", "--out", tmp_path / "grid.png")
    assert sample.exit_code == 0, sample.output
    assert re.search(r"label 417 \(violet bar on maroon window\) -> split 41, local class 7, latest checkpoint, step 12",
                     sample.output)  # fmt: skip
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (3 * 34 + 2, 3 * 34 + 2) and grid.mode == "RGB"

    by_name = invoke("sample", "--label", "VIOLET BAR ON MAROON WINDOW", "--run", run, "--n", "3",
                     "--out", tmp_path / "each", "--scale", "2")  # fmt: skip
    assert by_name.exit_code == 0, by_name.output
    files = sorted((tmp_path / "each").iterdir())
    assert len(files) == 3 and all(Image.open(f).size == (64, 64) for f in files)

    assert_one_line_error(invoke("sample", "--label", "5", "--run", run), "split 0", "no checkpoint yet")


def test_relaunch_skips_succeeded_splits_and_retrains_the_rest(tmp_path):
    run = tmp_path / "run"
    assert invoke("launch", "--splits", "100", "--only", "41", "--run", run, "--gpus-per-split", "0", *QUICK).exit_code == 0
    first = rows_of(run)[41]

    # What a crashed coordinator leaves: a split shown running, and one that failed.
    manifest = RunDir(run)
    records = manifest.read_manifest()
    records[42].status, records[42].attempt = Status.RUNNING, 1
    records[43].status, records[43].error = Status.FAILED, "RuntimeError: boom"
    manifest.write_manifest(records)

    result = invoke("launch", "--run", run, "--only", "41-43", "--gpus-per-split", "0")
    assert result.exit_code == 0, result.output
    rows = rows_of(run)
    assert rows[41] == first  # untouched: not retrained, not rewritten
    assert (rows[42].status, rows[42].attempt) == (Status.SUCCEEDED, 2)
    assert (rows[43].status, rows[43].error) == (Status.SUCCEEDED, None)

    again = invoke("launch", "--run", run, "--only", "41-43")
    assert again.exit_code == 0 and "Nothing to do" in again.output


def test_image_folder_run_and_sampling_by_folder_name(tmp_path, image_folder):
    """4 class folders in 3 splits: --splits need not divide the classes (the first split gets the extra one)."""
    run = tmp_path / "run"
    result = invoke("launch", "--data", image_folder, "--splits", "3", "--run", run, "--gpus-per-split", "0", *QUICK)
    assert result.exit_code == 0, result.output
    assert "Data: 48 images in 4 class folders, listed in" in result.output and (run / "data-index.parquet").is_file()
    assert "3 of 3 splits of 1-2 classes" in " ".join(result.output.split())  # rich wraps the line at 80 columns
    rows = rows_of(run)
    assert [r.class_names for r in rows.values()] == [["class_0", "class_1"], ["class_2"], ["class_3"]]
    assert all(r.status == Status.SUCCEEDED for r in rows.values())
    for label, route in (("class_3", "-> split 2, local class 0"), ("class_1", "-> split 0, local class 1")):
        sample = invoke("sample", "--label", label, "--run", run, "--out", tmp_path / f"{label}.png")
        assert sample.exit_code == 0 and route in sample.output, sample.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="fake GPUs are told apart from real ones by the missing CUDA")
@pytest.mark.parametrize("gpus_per_split,ids_per_task", [(None, 1), ("2", 2), ("0.5", 1)])
def test_splits_are_scheduled_on_fake_gpus(tmp_path, gpus_per_split, ids_per_task):
    """The session cluster advertises 4 GPUs that do not exist: Ray assigns them, torch finds
    no CUDA, and the manifest says so."""
    option = [] if gpus_per_split is None else ["--gpus-per-split", gpus_per_split]
    result = invoke("launch", "--splits", "100", "--only", "0-2", "--run", tmp_path / "run", *option, *QUICK)
    assert result.exit_code == 0, result.output
    expected_gpus = "1" if gpus_per_split is None else gpus_per_split
    assert f"{expected_gpus} GPU per split" in result.output and "4 GPUs" in result.output
    for split in (0, 1, 2):
        device = rows_of(tmp_path / "run")[split].device
        match = re.fullmatch(r"cpu \(GPU ([\d,]+) assigned, no CUDA\)", device)
        assert match, device
        ids = [int(i) for i in match.group(1).split(",")]
        assert len(ids) == ids_per_task and all(0 <= i < 4 for i in ids)


def test_more_gpus_than_a_node_has_is_refused_before_anything_runs(tmp_path):
    result = invoke("launch", "--splits", "100", "--only", "0", "--run", tmp_path / "run", "--gpus-per-split", "5")
    assert_one_line_error(result, "more than any node has")
    assert not (tmp_path / "run").exists()


def test_the_installed_command_starts_its_own_cluster(tmp_path):
    """The user's path: `ensemble` processes, a private local Ray cluster started and stopped
    by the launch (separate from this session's cluster, which it must not attach to)."""
    import subprocess

    command = installed_command()
    run = str(tmp_path / "run")

    def cli(*args, env=None):
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, env=env)

    # Python lists every module the coordinator process imports on stderr.
    launched = cli("launch", "--splits", "100", "--only", "41", "--run", run, *QUICK,
                   env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    # (the launch line wraps at the terminal's width, wherever its words fall)
    assert "a new local Ray cluster" in " ".join(launched.stderr.split()) and "1 succeeded" in launched.stdout
    # Only the splits' workers need torch: in the coordinator it would be 0.5 GB of memory.
    assert "| ray\n" in launched.stderr and not re.search(r"\|\s+torch$", launched.stderr, re.M)
    status = cli("status", "--run", run, "--summary")
    assert status.stdout.strip() == "100 splits: 99 pending, 1 succeeded; 1% of steps done"
    sample = cli("sample", "--label", "417", "--run", run, "--out", str(tmp_path / "s.png"))
    assert sample.returncode == 0 and (tmp_path / "s.png").is_file()
    bad = cli("sample", "--label", "417", "--run", str(tmp_path / "missing"))
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ") and "Traceback" not in bad.stderr


def test_a_paper_preset_on_mnist_from_a_torchvision_root(tmp_path):
    """cifar-32 (the paper's CIFAR model) with an option, on MNIST read from torchvision's
    files: the run records its preset, each split its loss history and its image cache."""
    import json

    from manifests.tables.history import read_history
    from tests.helpers import write_mnist

    root = write_mnist(tmp_path / "tv")
    run = tmp_path / "run"
    result = invoke("launch", "--data", f"mnist:{root}", "--preset", "cifar-32", "--set", "d_spectral_norm=true",
                    "--splits", "2", "--steps", "3", "--batch-size", "4", "--run", run, "--gpus-per-split", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cifar-32, 3 steps of 4" in result.output
    spec = json.loads((run / "run.json").read_text())
    assert spec["preset"] == "cifar-32" and spec["gan"]["d_spectral_norm"] is True
    assert spec["gan"]["g_widths"] == [384, 192, 96] and spec["gan"]["num_classes"] == 5
    rows = rows_of(run)
    # Trained to the end; after 3 steps the quality guard flags them (and their retries), which is right.
    assert rows[1].class_names[2] == "7 - seven" and all(r.status in Status.FINISHED for r in rows.values())
    for split in (0, 1):
        split_dir = run / "splits" / f"{split:03d}"
        # the last seed's steps: 3, or 4 after a retry's 1.5x (both ladders' second rung)
        assert [r["step"] for r in read_history(split_dir)] == list(range(1, rows[split].total_steps + 1))
        assert (split_dir / "images-32.safetensors").is_file()
    sample = invoke("sample", "--label", "7 - seven", "--run", run, "--out", tmp_path / "s.png")
    assert sample.exit_code == 0 and "label 7 (7 - seven) -> split 1, local class 2" in sample.output
