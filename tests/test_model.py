import pytest
import torch

from denoise_core.model import ModelConfig, build_model, count_parameters


@pytest.mark.parametrize("block", ["naf", "res"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("hw", [(37, 31), (16, 16), (5, 7), (1, 1)])
def test_any_size_and_channels(block, channels, hw):
    model = build_model(ModelConfig(channels=channels, width=8, depth=3, block=block)).eval()
    x = torch.rand(2, channels, *hw)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_starts_as_identity_with_naf_blocks_and_config_round_trip():
    cfg = ModelConfig(width=8, depth=2)
    model = build_model(cfg)
    clone = build_model(cfg.to_dict())
    clone.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
    assert count_parameters(model) > 0


def test_gradients_reach_every_parameter():
    model = build_model(ModelConfig(width=8, depth=2, block="res"))
    model(torch.rand(2, 3, 16, 16)).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_config():
    with pytest.raises(ValueError, match="channels"):
        ModelConfig(channels=2)
    with pytest.raises(ValueError, match="block"):
        ModelConfig(block="transformer")
