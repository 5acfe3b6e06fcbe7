"""Which checkpoint the quality guard keeps as the split's best (workers/quality/guard.py)."""
import json
from types import SimpleNamespace

from manifests.storage import location
from workers.config import GANConfig
from workers.model import Generator
from workers.presets import get_preset
from workers.quality.guard import QualityGuard
from workers.quality.measures import ClassScore


def _guard(tmp_path, steps: int) -> QualityGuard:
    """A guard whose yardstick's verdicts need only the real accuracy (no classifier trained)."""
    guard = QualityGuard.__new__(QualityGuard)
    guard.config = GANConfig.from_dict({**get_preset("cpu-32").gan.to_dict(), "num_classes": 10})
    guard.job = SimpleNamespace(classes=list(range(10)), class_names=[str(k) for k in range(10)], seed=0, split=0,
                                steps=steps)  # fmt: skip
    guard.split_dir = location(tmp_path)
    guard.yardstick = SimpleNamespace(real_accuracy=[1.0] * 10)
    guard.best = None
    return guard


def _scores(accuracy: float) -> list[ClassScore]:
    return [ClassScore(accuracy, 1.0, 1.0) for _ in range(10)]


def test_the_best_is_the_top_score_from_the_last_three_quarters_of_training(tmp_path):
    """The scores of real photos' split 1 (bench/README.md): the top one, 0.991 at step 400 of
    4000, was a generator of colour blotches; the structured generator of step 3600 is kept."""
    guard = _guard(tmp_path, steps=4000)
    generator = Generator(guard.config)
    history = {200: 0.948, 400: 0.991, 600: 0.979, 800: 0.969, 1000: 0.922, 2200: 0.951, 3600: 0.982, 3800: 0.970}
    kept = [step for step, score in history.items() if guard.keep_if_best(generator, _scores(score), step)]
    assert kept == [1000, 2200, 3600]
    assert guard.best_step == 3600 and abs(guard.best_score - 0.982) < 1e-9
    saved = json.loads((tmp_path / "generator.best.json").read_text())
    assert saved["step"] == 3600
