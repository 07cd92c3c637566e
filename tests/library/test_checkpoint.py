import pytest
import torch

from denoise_core.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from denoise_core.model import ModelConfig, build_model


def _state():
    model = build_model(ModelConfig(width=8, depth=2))
    return {"model": model.state_dict(), "model_config": model.config.to_dict(), "rng": rng_state(), "history": [{"epoch": 1}]}


def test_round_trip_with_weights_only(tmp_path):
    save_checkpoint(tmp_path / "c.pt", _state())
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["format_version"] == 1 and state["history"] == [{"epoch": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp files left


def test_rng_state_round_trip():
    state = rng_state()
    a = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    set_rng_state(state)
    b = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "c.pt", _state())
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a Denoise Studio checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path):
    torch.save({"model": _Evil(), "model_config": {}}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "c.pt", _state())
    before = (tmp_path / "c.pt").read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("denoise_core.checkpoint.os.replace", boom)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(tmp_path / "c.pt", {**_state(), "history": [{"epoch": 2}]})
    assert (tmp_path / "c.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
