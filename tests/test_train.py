"""The per-split training function, called directly: no Ray involved."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import CPU, CPU_32, Crash, RunsCode, crash_at, make_job, train_on_cpu
from workers.checkpoints import CheckpointError, load_generator
from manifests.tables.history import METRICS, ROW_WIDTH, read_history
from workers.images import generate
from workers.presets import cpu_32
from workers.state_format import load_state
from workers.train import TrainingDiverged, train_split

# Every option that draws random numbers or keeps state: dropout, activation noise,
# DiffAugment, batch norm, spectral norm's power iteration, TAC, EMA.
pytestmark = pytest.mark.usefixtures("one_thread")

RANDOM_OPTIONS = {**CPU_32, "d_batchnorm": True, "d_dropout": 0.5, "d_noise": 0.1, "d_spectral_norm": True,
                  "diff_augment": ["color", "translation", "cutout"], "tac": True, "loss": "hinge",
                  "d_projection": True, "d_minibatch_std": 4, "g_mode_seeking": 0.2,
                  "g_mode_seeking_centred": True}  # fmt: skip

def test_training_reports_progress_and_writes_both_checkpoints(tmp_path):
    events = []
    result = train_on_cpu(make_job(tmp_path, 20), report=events.append)
    assert events[0]["event"] == "started" and events[0]["step"] == 0 and events[0]["device"] == "cpu"
    steps = [e["step"] for e in events[1:]]
    assert steps == sorted(steps) and steps[-1] == 20
    assert [e["checkpoint_step"] for e in events if "checkpoint" in e] == [10, 20]
    assert result.step == 20 and result.resumed_from_step == 0
    assert all(v is not None for v in (result.loss_d, result.loss_g, result.class_accuracy))

    split_dir = tmp_path / "splits" / "041"
    for name in ("state.pt", "generator.safetensors", "generator.json"):  # readable by other accounts
        assert (split_dir / name).stat().st_mode & 0o777 == 0o644, name
    info = json.loads((split_dir / "generator.json").read_text())
    assert info["classes"] == list(range(410, 420)) and info["step"] == 20
    generator, loaded = load_generator(split_dir / "generator.safetensors")
    assert loaded.step == 20 and loaded.config.to_dict() == {**cpu_32().gan.to_dict(), "num_classes": 10}
    images = generate(generator, local_label=7, count=5, seed=3)
    assert images.shape == (5, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images, generate(generator, local_label=7, count=5, seed=3))


def _everything(split_dir):
    """The whole training state but the clock: weights, optimisers, random states, history."""
    state = load_state(str(split_dir / "state.pt"))
    state.pop("train_seconds")
    seconds = 1 + len(METRICS)  # the column of seconds, after the step and the metrics
    state["history"] = torch.cat([state["history"][:, :seconds], state["history"][:, seconds + 1 :]], dim=1)
    return state


def _assert_same(a, b, where="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, torch.Tensor):  # exactly equal; NaN (a step the guard did not check) equals NaN
        assert torch.equal(a, b) or (a.is_floating_point() and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)), where
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.integration  # three runs of 30 steps each
@pytest.mark.parametrize("gan", [CPU_32, RANDOM_OPTIONS], ids=["cpu-32", "random-options"])
def test_resume_is_exact(tmp_path, gan):
    """A split stopped right after a checkpoint, or between two, and resumed ends in exactly
    the state of one never stopped: weights, optimisers, random states and loss history
    (whose rows, every 4 steps, straddle the checkpoint at 10)."""
    straight = train_on_cpu(make_job(tmp_path / "a", 30, gan=gan, history_every=4))
    with pytest.raises(Crash):  # stopped at step 11: the checkpoint at 10 is the newest
        train_on_cpu(make_job(tmp_path / "b", 30, gan=gan, history_every=4), report=crash_at(11))
    resumed = train_on_cpu(make_job(tmp_path / "b", 30, gan=gan, history_every=4))
    with pytest.raises(Crash):  # stopped at step 25: the checkpoint at 20 is the newest
        train_on_cpu(make_job(tmp_path / "c", 30, gan=gan, history_every=4), report=crash_at(25))
    crashed = train_on_cpu(make_job(tmp_path / "c", 30, gan=gan, history_every=4))
    assert (resumed.resumed_from_step, crashed.resumed_from_step) == (10, 20)
    dirs = [tmp_path / run / "splits" / "041" for run in "abc"]
    for other in dirs[1:]:
        _assert_same(_everything(dirs[0]), _everything(other))
        a, b = load_file(dirs[0] / "generator.safetensors"), load_file(other / "generator.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
        curve = [{k: v for k, v in row.items() if k != "train_seconds"} for row in read_history(other)]
        assert curve == [{k: v for k, v in row.items() if k != "train_seconds"} for row in read_history(dirs[0])]
    assert resumed.loss_d == pytest.approx(straight.loss_d)


def test_history_has_a_row_every_n_steps_with_every_metric(tmp_path):
    train_on_cpu(make_job(tmp_path, 20, history_every=5))
    rows = read_history(tmp_path / "splits" / "041")
    assert [r["step"] for r in rows] == [5, 10, 15, 20] and {r["split"] for r in rows} == {41}
    for row in rows:
        assert all(0.0 <= row[m] <= 1.0 for m in ("class_accuracy", "class_accuracy_fake", "d_real", "d_fake"))
        assert all(row[m] == row[m] for m in METRICS)  # no NaN
    seconds = [r["train_seconds"] for r in rows]
    assert seconds == sorted(seconds) and seconds[0] > 0


def test_a_corrupt_state_falls_back_to_the_previous_one_and_resumes_exactly(tmp_path):
    train_on_cpu(make_job(tmp_path / "a", 30))  # the run without a fault, compared below
    train_on_cpu(make_job(tmp_path / "b", 20))  # checkpoints at 10 (state.prev.pt) and 20 (state.pt)
    split_dir = tmp_path / "b" / "splits" / "041"
    state = split_dir / "state.pt"
    state.write_bytes(state.read_bytes()[:5000])  # a torn write, a bad disk block
    events = []
    resumed = train_on_cpu(make_job(tmp_path / "b", 30), report=events.append)
    assert resumed.resumed_from_step == 10 and resumed.step == 30
    warning = events[0]["warning"]
    assert "state.pt is unreadable" in warning and "resumed from state.prev.pt at step 10" in warning
    assert (split_dir / "state.bad.pt").is_file()  # kept for inspection, out of the rotation
    a = load_file(tmp_path / "a" / "splits" / "041" / "generator.safetensors")
    b = load_file(split_dir / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the fallback is an exact resume too


def test_a_kill_between_the_two_renames_resumes_from_the_previous_state(tmp_path):
    train_on_cpu(make_job(tmp_path, 20))
    split_dir = tmp_path / "splits" / "041"
    (split_dir / "state.pt").unlink()  # what a kill after `state.pt -> state.prev.pt` leaves
    events = []
    assert train_on_cpu(make_job(tmp_path, 30), report=events.append).resumed_from_step == 10
    assert events[0]["warning"] is None


def test_a_split_whose_training_states_are_both_gone_fails_instead_of_starting_over(tmp_path):
    train_on_cpu(make_job(tmp_path, 20))
    split_dir = tmp_path / "splits" / "041"
    curves = sorted(p.name for p in (split_dir / "tensorboard").iterdir())
    for name in ("state.pt", "state.prev.pt"):
        (split_dir / name).unlink()
    with pytest.raises(CheckpointError, match=r"no training state \(state.pt and state.prev.pt are missing\).*delete"):
        train_on_cpu(make_job(tmp_path, 30))
    assert sorted(p.name for p in (split_dir / "tensorboard").iterdir()) == curves  # nothing of the split is undone
    shutil.rmtree(split_dir)  # what the message says to do, to retrain it
    assert train_on_cpu(make_job(tmp_path, 10)).resumed_from_step == 0


def test_loading_a_state_never_runs_pickled_code(tmp_path):
    split_dir = tmp_path / "splits" / "041"
    split_dir.mkdir(parents=True)
    torch.save({"step": 5, "generator": RunsCode(tmp_path / "pwned")}, split_dir / "state.pt")
    with pytest.raises(CheckpointError, match=r"holds a pickled reference to posix.system, which is never run"):
        train_on_cpu(make_job(tmp_path, 10))
    assert not (tmp_path / "pwned").exists()


def test_a_finished_split_resumed_trains_no_further(tmp_path):
    train_on_cpu(make_job(tmp_path, 10))
    events = []
    result = train_on_cpu(make_job(tmp_path, 10), report=events.append)
    assert result.resumed_from_step == 10 and result.step == 10
    assert [e["event"] for e in events] == ["started"]


def test_a_checkpoint_of_another_config_is_not_silently_reused(tmp_path):
    train_on_cpu(make_job(tmp_path, 10))
    other = {**CPU_32, "g_widths": [32, 16, 8]}
    with pytest.raises(CheckpointError, match="another model config"):
        train_on_cpu(make_job(tmp_path, 20, gan=other))


def test_non_finite_losses_stop_training_with_a_clear_error(tmp_path):
    exploding = {**CPU_32, "lr": 1e30}
    with pytest.raises(TrainingDiverged, match="non-finite loss"):
        train_on_cpu(make_job(tmp_path, 40, gan=exploding))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_matches_the_cpu_contract(tmp_path):
    events = []
    result = train_split(make_job(tmp_path, 20), report=events.append, device=torch.device("cuda"))
    assert result.device.startswith("cuda:0") and events[0]["device"].startswith("cuda:0")
    generator, info = load_generator(tmp_path / "splits" / "041" / "generator.safetensors", device="cuda")
    assert info.step == 20
    assert generate(generator, 7, 4, seed=1).shape == (4, 3, 32, 32)
    resumed = train_split(make_job(tmp_path, 30), device=torch.device("cuda"))
    assert resumed.resumed_from_step == 20 and resumed.step == 30


@pytest.mark.parametrize("preset", [
    pytest.param("paper-128", marks=pytest.mark.integration),  # the paper's models train for seconds
    pytest.param("paper-64", marks=pytest.mark.integration),
    "cifar-32",
    "cpu-32",
])  # fmt: skip
def test_every_preset_trains_and_checkpoints_on_an_image_folder(tmp_path, image_folder, preset):
    """A few steps at batch 2 on 32x32 PNGs, resized to each preset's resolution."""
    from workers.presets import get_preset

    gan = get_preset(preset).gan
    job = make_job(tmp_path, 2, data=str(image_folder), classes=[0, 1, 2], class_names=["a", "b", "c"],
                   gan=gan.to_dict(), batch_size=2, checkpoint_every=2)  # fmt: skip
    result = train_on_cpu(job)
    assert result.step == 2 and result.loss_d is not None and result.skipped_images == 0
    generator, info = load_generator(tmp_path / "splits" / "041" / "generator.safetensors")
    assert generate(generator, 2, 2, seed=0).shape == (2, 3, gan.image_size, gan.image_size)
    assert (tmp_path / "splits" / "041" / f"images-{gan.image_size}.safetensors").is_file()


def test_the_generator_samples_come_from_is_the_weight_average(tmp_path):
    """cpu-32 keeps an average of G's weights (g_ema): generator.safetensors, and so `ensemble
    sample`, hold the average, not the last step's weights."""
    assert CPU_32["g_ema"] > 0
    train_on_cpu(make_job(tmp_path, 20, guard=False))
    split_dir = tmp_path / "splits" / "041"
    saved = load_file(split_dir / "generator.safetensors")
    state = load_state(str(split_dir / "state.pt"))
    averaged, raw = state["generator_ema"], state["generator"]
    params = [name for name in saved if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(saved[name], averaged[name]) for name in saved)
    assert any(not torch.equal(saved[name], raw[name]) for name in params)
    generator, _ = load_generator(split_dir / "generator.safetensors")
    assert all(torch.equal(generator.state_dict()[name], averaged[name].to(generator.state_dict()[name].dtype))
               for name in params)  # fmt: skip


def test_snapshot_and_restore_carry_the_same_state(tmp_path):
    """What _snapshot saves, _restore loads back in full: a snapshot of the restored models
    equals the one restored from, key for key (keys cannot drift apart)."""
    from workers.config import GANConfig
    from workers.step import GAN, draw_batch, train_step
    from workers.train import _restore, _snapshot, _Window

    config = GANConfig.from_dict({**CPU_32, "num_classes": 10})
    torch.manual_seed(0)
    gan, rng, window = GAN.build(config, CPU), torch.Generator().manual_seed(0), _Window(CPU)
    images, labels = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8), torch.arange(20) % 10
    for _ in range(3):
        window.add(train_step(gan, draw_batch(images, labels, 8, config.z_dim, 10, rng)))
    saved = _snapshot(gan, rng, window, CPU, step=3, seed=0, train_seconds=1.5, history=[[1.0] * ROW_WIDTH])

    torch.manual_seed(1)
    fresh, fresh_rng, fresh_window = GAN.build(config, CPU), torch.Generator().manual_seed(1), _Window(CPU)
    step, seconds, history = _restore(saved, fresh, fresh_rng, fresh_window, CPU)
    again = _snapshot(fresh, fresh_rng, fresh_window, CPU, step=step, seed=0, train_seconds=seconds, history=history)
    assert saved.keys() == again.keys() and (step, seconds) == (3, 1.5)

    def same(a, b) -> bool:
        if isinstance(a, torch.Tensor):
            return isinstance(b, torch.Tensor) and torch.equal(a, b)
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
        return a == b

    assert [key for key in saved if not same(saved[key], again[key])] == []
