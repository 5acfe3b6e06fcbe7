"""Whole runs with the run directory, and the data, on a real S3 server (moto's, on 127.0.0.1):
launch, status, sample, history and evaluate read and write only through object storage."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from manifests.tables.history import read_history
from manifests.run_dir import RunDir
from manifests.tables.manifest import Status
from manifests.storage import location
from tests.helpers import invoke, rows_of

pytestmark = pytest.mark.usefixtures("ray_cluster")

QUICK = ["--steps", "12", "--batch-size", "8", "--checkpoint-every", "6"]
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"


def scratch_folders() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("acgan-")}


def test_a_run_on_s3_trains_resumes_samples_and_evaluates_with_nothing_left_on_local_disk(s3_prefix, tmp_path,
                                                                                         monkeypatch):  # fmt: skip
    workdir, out = tmp_path / "cwd", tmp_path / "out"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # where a relative path would land
    scratch_before = scratch_folders()
    run = s3_prefix + "/run"

    result = invoke("launch", "--splits", "100", "--only", "41,42", "--run", run, "--gpus-per-split", "0",
                    "--quality-retries", "0", *QUICK)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Manifest: {run}/manifest.parquet" in result.output
    rows = rows_of(run)
    for split in (41, 42):
        row = rows[split]
        assert row.status in Status.FINISHED and row.step == 12 and row.attempt == 1, row
        assert row.checkpoint == f"splits/{split:03d}/generator.safetensors" and row.checkpoint_step == 12
        assert row.best_checkpoint == f"splits/{split:03d}/generator.best.safetensors"
    files = sorted(entry.name for entry in location(f"{run}/splits/041").list())
    states = [name for name in files if name.startswith("state-")]
    assert len(states) == 2 and "state.json" in files  # the newest two checkpoints, named by the pointer
    assert {"generator.safetensors", "generator.json", "generator.best.safetensors", "generator.best.json",
            "classifier.safetensors", "history.parquet"} <= set(files)  # fmt: skip
    assert [r["step"] for r in read_history(f"{run}/splits/041")][-1] == 12
    assert json.loads(location(f"{run}/run.json").read_text())["splits"] == 100
    assert not location(f"{run}/launch.lease").exists()  # released at the end

    status = json.loads(invoke("status", "--run", run, "--json").output)
    assert status["run"] == run and status["launch"] is None and status["expired_lease"] is None
    assert status["counts"]["pending"] == 98 and status["splits"][41]["step"] == 12

    sample = invoke("sample", "--label", "417", "--run", run, "--n", "4", "--out", out / "grid.png",
                    "--checkpoint", "latest")  # fmt: skip
    assert sample.exit_code == 0, sample.output
    assert "-> split 41, local class 7, latest checkpoint, step 12" in sample.output
    assert Image.open(out / "grid.png").size == (2 * 34 + 2, 2 * 34 + 2)

    evaluated = invoke("evaluate", "--run", run, "--only", "41", "--samples", "16", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    table = RunDir(run).root / "evaluation.parquet"
    assert table.is_file() and json.loads(evaluated.output)["counts"]

    # A relaunch of a finished selection reads the run back from S3 and trains nothing.
    again = invoke("launch", "--run", run, "--only", "41,42")
    assert again.exit_code == 0 and "Nothing to do" in again.output

    assert list(workdir.iterdir()) == []  # nothing of the run on local disk...
    assert scratch_folders() == scratch_before  # ...and no staging folder left behind


@pytest.mark.browser  # and integration: the S3 server and the session's cluster
def test_an_image_folder_on_s3_is_listed_decoded_once_and_cached_with_the_run(s3_prefix, image_folder, tmp_path):
    data = location(s3_prefix + "/images")
    for path in image_folder.rglob("*.png"):
        (data / path.parent.name / path.name).write_bytes(path.read_bytes())
    run = s3_prefix + "/run"
    result = invoke("launch", "--data", str(data), "--splits", "2", "--run", run, "--gpus-per-split", "0",
                    "--no-guard", *QUICK)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = rows_of(run)
    assert [r.class_names for r in rows.values()] == [["class_0", "class_1"], ["class_2", "class_3"]]
    assert all(r.status == Status.SUCCEEDED and r.skipped_images == 0 for r in rows.values())
    assert json.loads(location(f"{run}/run.json").read_text())["data"] == str(data)
    assert location(f"{run}/data-index.parquet").is_file()  # listed once, by the coordinator, with the run
    for split in (0, 1):
        assert location(f"{run}/splits/{split:03d}/images-32.safetensors").is_file()  # with the run, not on a node

    sample = invoke("sample", "--label", "class_3", "--run", run, "--out", tmp_path / "s.png")
    assert sample.exit_code == 0 and "-> split 1, local class 1" in sample.output

    # The report of an image-folder run on S3: written locally, real images from the cache on S3.
    page = tmp_path / "report.html"
    report = invoke("report", "--run", run, "--out", page, "--checkpoint", "latest")
    assert report.exit_code == 0, report.output
    text = page.read_text()
    assert text.count('alt="real images"') == 2 and text.count("pictures from its latest generator (step 12)") == 2
    assert 'title="3 class_3, split 1"' in text  # a folder name is the class's name
    # Each split's TensorBoard curves sit with the run on S3, one file per checkpoint.
    logs = [e.name for e in location(f"{run}/splits/001/tensorboard").list()]
    assert logs == ["events.out.tfevents.000000000006.split-001", "events.out.tfevents.000000000012.split-001"]

    from tests.browser import HeadlessChromium

    with HeadlessChromium() as browser:
        browser.open(page.as_uri())
        broken = browser.evaluate("Array.from(document.images).filter(i => i.naturalWidth === 0).length")
        assert (browser.evaluate("document.images.length"), broken, browser.errors()) == (4 + 2 * 5, 0, [])
        ARTIFACTS.mkdir(exist_ok=True)
        browser.screenshot(ARTIFACTS / "report-image-folder-s3.png", full_page=True)

    # Served from S3: the generator replica reads the generator through the same layer.
    from ray import serve

    from ensemble.serve.command import build_app
    from tests.helpers import free_port, get_json

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_app(run, cpus_per_replica=0.5), name="acgan-s3", route_prefix="/", blocking=False)
        status, answer = get_json(f"http://127.0.0.1:{port}", "/v1/sample?label=class_3&n=2&format=json")
        assert status == 200 and (answer["split"], answer["local_class"], answer["step"]) == (1, 1, 12), answer
    finally:
        serve.shutdown()
