"""The Python API (`import ensemble`, docs/api.md): a run opened, read and sampled in this
process, the CLI's very images, the CLI's errors as EnsembleError, a bounded generator
cache, a launch with a progress callback, and a bundle exported and loaded with torch and
safetensors alone. The examples in docs/api.md run here too."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ensemble
from ensemble.generators import GeneratorCache
from tests.helpers import invoke, trained_run_at

ROOT = Path(__file__).parents[1]
API_DOC = ROOT / "docs" / "api.md"


@pytest.fixture(scope="module")
def run_path(tmp_path_factory) -> Path:
    """Split 41 succeeded, split 42 interrupted after its checkpoints; the other 98 pending."""
    return trained_run_at(tmp_path_factory.mktemp("api") / "run")


def in_a_fresh_process(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_import_and_open_and_status_import_neither_ray_nor_torch(run_path):
    out = in_a_fresh_process(f"""
import sys
import ensemble
light = sorted(m for m in ("torch", "ray", "pandas", "pyarrow") if m in sys.modules)
run = ensemble.open({str(run_path)!r})
table = run.status()
print(light, sorted(m for m in ("torch", "ray") if m in sys.modules), len(table), list(table.status.unique()))
""")
    assert out.split("\n")[0] == "[] [] 100 ['pending', 'succeeded', 'interrupted']", out


def test_status_and_classes_are_typed_tables(run_path):
    run = ensemble.open(run_path)
    status = run.status()
    assert list(status.columns[:5]) == ["split", "classes", "class_names", "class_ids", "status"]
    assert str(status.split.dtype) == "int32" and str(status.step.dtype) == "int64"
    assert status.loc[41, "status"] == "succeeded" and status.loc[41, "step"] == 4
    assert str(status.updated_at.dtype).startswith("datetime64")
    classes = run.classes()
    assert len(classes) == 1000 and list(classes.columns) == ["label", "name", "class_id", "split", "local_class"]
    assert classes.loc[417].to_dict() == {"label": 417, "name": "violet bar on maroon window",
                                          "class_id": "violet bar on maroon window", "split": 41, "local_class": 7}  # fmt: skip
    assert run.evaluation() is None  # not evaluated yet


def test_sample_gives_the_cli_s_very_images(run_path, tmp_path):
    cli = invoke("sample", "--label", "417", "--run", run_path, "--n", "3", "--seed", "5", "--out", tmp_path / "cli")
    assert cli.exit_code == 0, cli.output
    written = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted((tmp_path / "cli").iterdir())])

    run = ensemble.open(str(run_path))
    images = run.sample(417, n=3, seed=5)
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 32, 32)
    assert np.array_equal(images.permute(0, 2, 3, 1).numpy(), written)
    by_name = run.sample("Violet Bar on Maroon Window", n=3, seed=5)
    assert torch.equal(by_name, images)
    both = run.sample([417, "415"], n=2, seed=5)
    assert both.shape == (4, 3, 32, 32) and torch.equal(both[:2], images[:2])
    assert not torch.equal(both[2:], images[:2])  # another class, other images


def test_generator_is_the_one_that_samples(run_path):
    run = ensemble.open(run_path)
    generator, local = run.generator("417")
    assert local == 7 and not generator.training
    noise = torch.randn(4, generator.config.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = generator(noise, torch.full((4,), local))
    expected = run.sample(417, n=4, seed=0)
    assert torch.equal(images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8), expected)


@pytest.mark.parametrize(("call", "message"), [
    (lambda run: run.sample(1000), "label 1000 is out of range: this run has labels 0-999"),
    (lambda run: run.sample("balloon"), "no class is named 'balloon'"),
    (lambda run: run.sample(5), "split 0 (label 5) has no checkpoint yet (status: pending)"),
    (lambda run: run.sample(417, n=0), "--n must be between 1 and 10000, got 0"),
    (lambda run: run.sample(417, checkpoint="first"), "--checkpoint must be best or latest, got 'first'"),
    (lambda run: run.sample([]), "no label given"),
    (lambda run: run.generator(999999), "label 999999 is out of range"),
])  # fmt: skip
def test_bad_calls_raise_ensemble_error_in_one_line(run_path, call, message):
    with pytest.raises(ensemble.EnsembleError) as raised:
        call(ensemble.open(run_path))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_errors_of_every_layer_are_ensemble_errors(tmp_path):
    with pytest.raises(ensemble.EnsembleError, match="does not exist"):
        ensemble.open(tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{}")
    (tmp_path / "broken" / "manifest.parquet").write_bytes(b"not parquet")
    with pytest.raises(ensemble.EnsembleError, match="unreadable"):  # a TableError below, an EnsembleError here
        ensemble.open(tmp_path / "broken")
    with pytest.raises(ensemble.EnsembleError, match="unknown option.*stpes"):
        ensemble.launch(tmp_path / "new", stpes=10)


def test_the_generator_cache_is_bounded_least_recently_used_out():
    cache, loads = GeneratorCache(capacity=2), []

    def loader(key):
        return lambda: loads.append(key) or key

    for key in ("a", "b", "a", "c", "a", "b"):
        assert cache.get(key, loader(key)) == key
    assert loads == ["a", "b", "c", "b"] and len(cache) == 2  # c pushed b out; a, used last, stayed


def test_an_exported_bundle_samples_with_torch_and_safetensors_alone(run_path, tmp_path):
    out = tmp_path / "bundle"
    result = invoke("export", "--run", run_path, "--out", out)
    assert result.exit_code == 0, result.output
    assert "Exported 2 of 100 splits' best generators" in result.output
    assert "98 split(s) had no generator" in result.output and "99 split(s) had not finished" in result.output
    document = json.loads((out / "bundle.json").read_text())
    assert document["unfinished"][0] == 0 and 42 in document["unfinished"] and 41 not in document["unfinished"]
    assert sorted(p.name for p in (out / "generators").iterdir()) == [
        "split-041.json", "split-041.safetensors", "split-042.json", "split-042.safetensors"]
    readme = (out / "README.md").read_text()
    assert "| splits with a generator | 2 |" in readme and "| splits still unfinished when exported | 99 " in readme

    expected = ensemble.open(run_path).sample([417, 425], n=3, seed=9)
    code = f"""
import sys, torch
sys.modules["pyarrow"] = sys.modules["ray"] = sys.modules["pandas"] = None  # any import of them fails
import ensemble
bundle = ensemble.load_bundle({str(out)!r})
torch.save(bundle.sample([417, "425"], n=3, seed=9), {str(tmp_path / "images.pt")!r})
generator, local = bundle.generator(417)
print(type(generator).__name__, local)
"""
    assert in_a_fresh_process(code).strip() == "Generator 7"
    assert torch.equal(torch.load(tmp_path / "images.pt"), expected)
    with pytest.raises(ensemble.EnsembleError, match=r"split 0 \(label 3\) had no generator when"):
        ensemble.load_bundle(out).sample(3)
    with pytest.raises(ensemble.EnsembleError, match="no label given"):  # as Run.sample([]) says
        ensemble.load_bundle(out).sample([])


def _break(out: Path, how: str) -> None:
    weights = out / "generators" / "split-041.safetensors"
    if how == "newer":
        document = json.loads((out / "bundle.json").read_text())
        (out / "bundle.json").write_text(json.dumps({**document, "version": 99}))
    elif how == "missing":
        weights.unlink()
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif how == "not a bundle":
        (out / "bundle.json").unlink()


@pytest.mark.parametrize(("how", "message"), [
    ("not a bundle", "bundle.json is missing: {out} is not a bundle written by `ensemble export`"),
    ("newer", "bundle.json has bundle version 99, newer than this acgan-ensemble reads (1-1)"),
    ("missing", "{out}/generators/split-041.safetensors (split 41) is missing from the bundle"),
    ("truncated", "{out}/generators/split-041.safetensors (split 41) is 100 bytes where the bundle recorded"),
])  # fmt: skip
def test_a_broken_bundle_is_refused_in_one_line_naming_the_file(run_path, tmp_path, how, message):
    out = tmp_path / "bundle"
    ensemble.open(run_path).export(out)
    _break(out, how)
    with pytest.raises(ensemble.EnsembleError) as raised:
        ensemble.load_bundle(out)
    assert message.format(out=out) in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.usefixtures("ray_cluster")  # the last example launches a split on the session's cluster
def test_the_examples_in_docs_api_md_run(run_path, tmp_path, monkeypatch):
    """Every ```python block of docs/api.md, in order, in one namespace, against a trained run
    (`ensemble-run` in the working folder, as the docs assume); then what they made is checked."""
    blocks = re.findall(r"```python\n(.*?)```", API_DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ensemble-run").symlink_to(run_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(API_DOC), "exec"), namespace)  # noqa: S102 - our own docs

    assert namespace["images"].shape == (16, 3, 32, 32) and namespace["pairs"].shape == (8, 3, 32, 32)
    assert namespace["walk"].shape == (8, 3, 32, 32) and "out of range" in namespace["message"]
    assert (tmp_path / "exported" / "bundle.json").is_file()
    # The launch: it ended, and its callback saw it start, progress and finish split 41.
    first, events = namespace["first"], namespace["events"]
    assert isinstance(first, ensemble.Run) and first.status().loc[41, "status"] == "succeeded"
    kinds = [e.kind for e in events]
    assert "launched" in kinds and kinds.count("finished") == 1 and "updated" in kinds
    assert next(e for e in events if e.kind == "finished").split == 41
    assert events[-1].counts["succeeded"] == 1 and events[-1].steps_done == 6 and events[-1].steps_total == 600
