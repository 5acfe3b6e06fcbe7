"""The quality guard and `ensemble evaluate` through the CLI, on a real local Ray cluster: a
split flagged at the end is retried with a new seed, the retry is recorded, the best
generator is kept and sampled by default; evaluate writes its Parquet and JSON and flags a
generator that ignores its noise."""
import json

import pyarrow.parquet as pq
import pytest
from safetensors.torch import load_file, save_file

from ensemble.launching.tasks import SEED_STRIDE
from manifests.tables.history import read_history
from manifests.run_dir import RunDir
from manifests.tables.manifest import Status
from tests.helpers import invoke, rows_of

pytestmark = pytest.mark.usefixtures("ray_cluster")

TINY = ["--steps", "12", "--batch-size", "8", "--checkpoint-every", "6", "--gpus-per-split", "0"]


def test_a_flagged_split_is_retried_with_a_new_seed_and_keeps_its_best_generator(tmp_path):
    run = tmp_path / "run"
    # 12 steps: no generator is recognisable yet, so the guard flags the split every time.
    result = invoke("launch", "--splits", "100", "--only", "41", "--run", run, *TINY)
    assert result.exit_code == 0, result.output
    assert "training it again with a new seed" in result.output and "split 41 flagged" in result.output
    assert "1 split(s) flagged" in result.output

    row = rows_of(run)[41]
    # The run's seed for the split, then two fresh ones: one per rung of the retry ladders.
    assert row.seeds == [41, 41 + SEED_STRIDE, 41 + 2 * SEED_STRIDE]
    # ... each with a recipe that answers what the seed before's best generator failed (recipes.py)
    recipe, last = json.loads(row.recipes[1]), json.loads(row.recipes[2])
    assert row.recipes[0] == "{}" and recipe["because"] and set(recipe["because"]) <= {"collapsed", "low-accuracy"}
    assert recipe["set"]["lr"] == 2.5e-4  # half the run's lr, for either verdict
    assert ("steps" in recipe) == ("collapsed" in recipe["because"])  # and 1.5x the steps for a collapse
    assert last["because"] and last["steps"] == 18  # either ladder's second rung: 1.5x the steps
    retry_steps = last["steps"]
    assert (row.status, row.attempt, row.step, row.total_steps) == (Status.FLAGGED, 3, retry_steps, retry_steps)
    assert "and a recipe for it (" in result.output
    assert row.steps_redone == 0  # a fresh seed on purpose is not work lost
    assert row.flags and all(f["label"] in row.classes for f in row.flags)
    assert all((f["verdict"], f["measure"]) in {("low-accuracy", "accuracy"), ("collapsed", "diversity")} for f in row.flags)
    assert row.flagged.startswith(f"{row.flags[0]['label']} {row.flags[0]['verdict']} ({row.flags[0]['measure']} ")
    assert row.best_checkpoint == "splits/041/generator.best.safetensors" and row.best_step in (6, 12, 18)
    assert 0.0 <= row.quality <= 1.0
    split_dir = RunDir(run).split_dir(41)
    assert (split_dir / "history.seed-41.parquet").is_file()  # the rejected seed's curves, kept
    best = json.loads((split_dir / "generator.best.json").read_text())
    assert best["quality"]["score"] == pytest.approx(row.quality) and len(best["quality"]["classes"]) == 10
    guarded = [r for r in read_history(split_dir) if r["quality"] is not None]
    assert [r["step"] for r in guarded] == list(range(6, retry_steps + 1, 6))  # the retry's checkpoints
    assert all(0 <= r["sample_accuracy"] <= 1 and r["sample_diversity"] >= 0 for r in guarded)

    status = invoke("status", "--run", run)
    assert "flagged" in status.output and "1 flagged" in status.output
    by_json = json.loads(invoke("status", "--run", run, "--json").output)
    assert by_json["splits"][41]["quality"]["score"] == pytest.approx(row.quality)
    assert by_json["counts"]["flagged"] == 1

    best_sample = invoke("sample", "--label", "417", "--run", run, "--n", "4", "--out", tmp_path / "best.png")
    assert best_sample.exit_code == 0 and f"best checkpoint, step {row.best_step}" in best_sample.output
    latest = invoke("sample", "--label", "417", "--run", run, "--n", "4", "--out", tmp_path / "latest.png",
                    "--checkpoint", "latest")  # fmt: skip
    assert latest.exit_code == 0 and f"latest checkpoint, step {retry_steps}" in latest.output

    # A relaunch leaves a flagged split alone; --quality-retries gives it more seeds.
    assert "Nothing to do" in invoke("launch", "--run", run, "--only", "41", "--gpus-per-split", "0").output
    assert rows_of(run)[41].seeds == row.seeds
    again = invoke("launch", "--run", run, "--only", "41", "--gpus-per-split", "0", "--quality-retries", "1")
    assert again.exit_code == 0, again.output
    retried = rows_of(run)[41]
    assert retried.seeds == [*row.seeds, 41 + 3 * SEED_STRIDE] and retried.attempt == 4
    assert len(retried.recipes) == 4 and json.loads(retried.recipes[3])["because"]  # the second rung again
    page = invoke("report", "--run", run, "--out", tmp_path / "report.html")
    assert page.exit_code == 0, page.output
    assert "quality retries: 1 (" in (tmp_path / "report.html").read_text() and "; 3 (" in (tmp_path / "report.html").read_text()  # what each retry changed, shown
    assert retried.quality >= row.quality  # the best file is the best over every seed


def test_evaluate_writes_its_table_and_flags_a_generator_that_ignores_its_noise(tmp_path):
    run = tmp_path / "run"
    assert invoke("launch", "--splits", "100", "--only", "41", "--run", run, "--gpus-per-split", "0").exit_code == 0
    row = rows_of(run)[41]
    assert row.status == Status.SUCCEEDED and row.flagged is None, row.flagged

    result = invoke("evaluate", "--run", run, "--samples", "40", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    classes = report["classes"]
    assert [c["label"] for c in classes] == list(range(410, 420))
    for c in classes:
        assert {"label", "split", "accuracy", "real_accuracy", "ms_ssim", "real_ms_ssim", "diversity", "verdict"} <= set(c)
        assert c["split"] == 41 and c["checkpoint"] == "best" and c["checkpoint_step"] == row.best_step
        assert c["accuracy"] >= 0.9 and c["diversity"] >= 0.3
    table = pq.read_table(run / "evaluation.parquet").to_pylist()
    assert [r["label"] for r in table] == list(range(410, 420)) and table[0]["verdict"] == classes[0]["verdict"]
    ok = sum(c["verdict"] == "ok" for c in classes)
    assert f"evaluated 10 classes: {ok} ok" in invoke("status", "--run", run, "--summary").output
    assert f"{ok}/10 ok" in invoke("status", "--run", run).output

    # The paper's 1000-way accuracy, with a torchvision ResNet-50 state dict file (random
    # weights here: the path is what is tested, not the figure).
    import torch
    import torchvision

    weights_file = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights_file)
    paper = json.loads(invoke("evaluate", "--run", run, "--samples", "2", "--classifier-weights", weights_file,
                              "--json").output)["classes"]  # fmt: skip
    assert all(c["imagenet_accuracy"] in (0.0, 0.5, 1.0) for c in paper) and len(paper) == 10
    assert all(c["imagenet_accuracy"] is None for c in classes)  # only with the file

    # The same generator made to ignore its noise: every class is one picture.
    weights_path = run / row.best_checkpoint
    weights = load_file(weights_path)
    z_dim = json.loads((run / "run.json").read_text())["gan"]["z_dim"]
    weights["project.weight"][:, :z_dim] = 0.0
    save_file(weights, weights_path, metadata={"step": str(row.best_step)})
    collapsed = json.loads(invoke("evaluate", "--run", run, "--samples", "40", "--json").output)["classes"]
    assert all(c["verdict"] == "collapsed" and c["ms_ssim"] > 0.99 for c in collapsed), collapsed
    summary = invoke("status", "--run", run, "--summary").output
    assert "evaluated 10 classes: 0 ok, 10 collapsed" in summary
    latest = json.loads(invoke("evaluate", "--run", run, "--samples", "40", "--checkpoint", "latest", "--json").output)
    assert {c["checkpoint"] for c in latest["classes"]} == {"latest"}
