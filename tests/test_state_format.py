"""Training states hold no pickle (issue 21): a safetensors file with its structure as JSON,
read back exactly; the torch.save states of earlier versions still resume."""
from __future__ import annotations

import zipfile

import pytest
import torch

from tests.helpers import make_job, train_on_cpu
from workers.checkpoints import load_training_state, save_training_state
from workers.state_format import StateFormatError, is_pickled, load_state, save_state


def _optimised_state() -> dict:
    """What a real snapshot holds: int-keyed optimiser state, tuples, None, 0-dim tensors."""
    model = torch.nn.Linear(3, 2)
    adam = torch.optim.Adam(model.parameters(), betas=(0.5, 0.999))
    model(torch.randn(4, 3)).sum().backward()
    adam.step()
    return {"step": 7, "seed": 3, "train_seconds": 1.5, "nothing": None, "flag": True, "name": "x",
            "generator": model.state_dict(), "opt_g": adam.state_dict(), "rng": torch.get_rng_state(),
            "history": torch.randn(2, 5, dtype=torch.float64), "rows": [[1, 2.5], [3, float("nan")]]}  # fmt: skip


def _same(a, b):
    assert type(a) is type(b) or isinstance(a, dict) and isinstance(b, dict), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, float) and a != a:
        assert b != b  # NaN
    else:
        assert a == b


def test_a_state_round_trips_exactly_without_pickle(tmp_path):
    state = _optimised_state()
    save_state(state, str(tmp_path / "state.pt"))
    raw = (tmp_path / "state.pt").read_bytes()
    assert not zipfile.is_zipfile(tmp_path / "state.pt") and not is_pickled(raw[:4])  # no torch.save archive
    with pytest.raises(Exception):
        torch.load(tmp_path / "state.pt", weights_only=True)  # nothing a pickle reader knows
    loaded = load_state(str(tmp_path / "state.pt"))
    _same(state, loaded)
    assert list(loaded["opt_g"]["state"]) == [0, 1] and loaded["opt_g"]["param_groups"][0]["betas"] == (0.5, 0.999)
    model = torch.nn.Linear(3, 2)
    adam = torch.optim.Adam(model.parameters())
    model.load_state_dict(loaded["generator"])
    adam.load_state_dict(loaded["opt_g"])  # what resume does with it


def test_header_only_reads_no_tensor_data_and_a_torn_file_is_refused(tmp_path):
    path = tmp_path / "state.pt"
    save_state(_optimised_state(), str(path))
    header = load_state(str(path), header_only=True)
    assert header["step"] == 7 and header["generator"]["weight"] is None
    path.write_bytes(path.read_bytes()[:-40])
    for header_only in (True, False):
        with pytest.raises(StateFormatError, match="not a whole safetensors file"):
            load_state(str(path), header_only=header_only)


def test_a_foreign_safetensors_file_is_not_taken_for_a_state(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "state.pt"))
    with pytest.raises(StateFormatError, match="not an acgan-ensemble training state"):
        load_state(str(tmp_path / "state.pt"))
    with pytest.raises(TypeError, match="cannot hold a object"):
        save_state({"step": 1, "bad": object()}, str(tmp_path / "other.pt"))


def test_a_state_pickled_by_an_earlier_version_still_resumes(tmp_path):
    train_on_cpu(make_job(tmp_path, 10))
    split_dir = tmp_path / "splits" / "041"
    state = load_training_state(split_dir).state
    torch.save(state, split_dir / "state.pt")  # how versions before the safetensors format wrote it
    assert is_pickled((split_dir / "state.pt").read_bytes()[:4])
    resumed = train_on_cpu(make_job(tmp_path, 20))
    assert resumed.resumed_from_step == 10 and resumed.step == 20
    assert not is_pickled((split_dir / "state.pt").read_bytes()[:4])  # its next checkpoint is pickle-free


def test_save_training_state_writes_the_pickle_free_format(tmp_path):
    save_training_state(tmp_path, {"step": 1, "generator": {"w": torch.ones(2)}})
    assert load_state(str(tmp_path / "state.pt"))["generator"]["w"].tolist() == [1.0, 1.0]


def test_a_tensor_keeps_its_memory_layout(tmp_path):
    """A channels_last weight's Adam moments come back channels_last: the fused Adam step
    updates a weight and its moments as flat arrays, so a resume that changed the layout
    would pair the wrong elements (caught by the exact-resume tests)."""
    weight = torch.randn(4, 3, 2, 5).contiguous(memory_format=torch.channels_last)
    save_state({"step": 1, "w": weight, "plain": torch.randn(2, 3), "t": torch.randn(3, 2).t()}, str(tmp_path / "s"))
    loaded = load_state(str(tmp_path / "s"))
    for name in ("w", "plain", "t"):
        assert loaded[name].stride() == {"w": weight, "plain": torch.randn(2, 3), "t": torch.randn(3, 2).t()}[name].stride()
    assert torch.equal(loaded["w"], weight) and loaded["w"].is_contiguous(memory_format=torch.channels_last)
