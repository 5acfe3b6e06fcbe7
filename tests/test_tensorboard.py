"""A split's TensorBoard files, read back by TensorBoard's own loader: every history row once,
in order, across a crash and resume, with a sample grid per checkpoint."""
import pytest

from manifests.tables.history import read_history
from tests.helpers import Crash, crash_at, make_job, train_on_cpu
from workers.tensorboard import TAGS, TENSORBOARD_DIR

pytestmark = pytest.mark.usefixtures("one_thread")


def read_events(logdir):
    """What TensorBoard shows for one run folder: {tag: [(step, value)]} and the image steps."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    images = [(e.step, e.width, e.height) for tag in events.Tags()["images"] for e in events.Images(tag)]
    return scalars, images


def test_tensorboard_shows_every_history_row_once_across_a_crash_and_resume(tmp_path):
    with pytest.raises(Crash):  # stopped at step 25: the checkpoint at 20 is the newest
        train_on_cpu(make_job(tmp_path, 30, history_every=4), report=crash_at(25))
    train_on_cpu(make_job(tmp_path, 30, history_every=4))
    split_dir = tmp_path / "splits" / "041"
    scalars, images = read_events(split_dir / TENSORBOARD_DIR)

    history = read_history(split_dir)
    steps = [row["step"] for row in history]
    assert steps == [4, 8, 10, 12, 16, 20, 24, 28, 30]  # every 4, and each checkpoint the guard checked
    for column in ("loss_d", "loss_g", "class_accuracy", "class_accuracy_fake", "d_real", "d_fake"):
        shown = scalars[TAGS[column]]
        assert [s for s, _ in shown] == steps  # once each, in order: the crash's steps 21-25 are not there twice
        assert [v for _, v in shown] == pytest.approx([row[column] for row in history], rel=1e-6)
    # One grid per checkpoint: 10 classes in rows of 4 samples, 32 px each with 2 px gaps.
    assert sorted(images) == [(10, 4 * 34 + 2, 10 * 34 + 2), (20, 138, 342), (30, 138, 342)]


def test_a_reseeded_split_starts_its_curves_again(tmp_path):
    train_on_cpu(make_job(tmp_path, 20, history_every=5))
    train_on_cpu(make_job(tmp_path, 10, history_every=5, seed=8))  # another seed: the old state set aside
    scalars, images = read_events(tmp_path / "splits" / "041" / TENSORBOARD_DIR)
    assert [s for s, _ in scalars[TAGS["loss_d"]]] == [5, 10]
    assert [s for s, *_ in images] == [10]


def test_tensorboard_finds_each_split_of_a_run_folder(tmp_path):
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    train_on_cpu(make_job(tmp_path, 10))
    train_on_cpu(make_job(tmp_path, 10, split=42, split_dir=str(tmp_path / "splits" / "042")))
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))  # what `tensorboard --logdir RUN` does
    multiplexer.Reload()
    assert sorted(multiplexer.Runs()) == ["splits/041/tensorboard", "splits/042/tensorboard"]
