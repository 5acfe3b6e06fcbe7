"""`ensemble evaluate` writes each split's rows as soon as it is measured: an evaluate that
dies halfway keeps what it finished. In-process, with the measuring replaced (what it
measures is tested in tests/test_evaluate.py, on a real trained split)."""
import pytest

from ensemble import evaluate
from manifests.tables.evaluation import read_evaluation
from manifests.tables.manifest import Status
from tests.helpers import planned_run
from workers.quality.evaluation import ClassEvaluation


def finished(run, splits):
    records = run.read_manifest()
    for r in records:
        if r.split in splits:
            r.status, r.step, r.checkpoint = Status.SUCCEEDED, 10, f"splits/{r.split:03d}/generator.safetensors"
    run.write_manifest(records)


def test_an_evaluate_that_dies_halfway_keeps_the_splits_it_measured(tmp_path, monkeypatch):
    run = planned_run(tmp_path / "run")
    finished(run, {3, 4})

    def measure(run, spec, record, checkpoint, samples, device, imagenet):
        if record.split == 4:
            raise KeyboardInterrupt  # Ctrl-C, or a crash, while the second split is measured
        classes = [ClassEvaluation(k, 1.0, 1.0, 0.2, 0.3, 0.9, None, 1.1, 0.95) for k in range(10)]
        return evaluate._Measured(record, "latest", 10, classes, None, None)

    monkeypatch.setattr(evaluate, "_measure_split", measure)
    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate_run(run.root, checkpoint="latest", samples=8)
    rows = read_evaluation(run.root)
    assert [r["label"] for r in rows] == list(range(30, 40)) and {r["verdict"] for r in rows} == {"ok"}
