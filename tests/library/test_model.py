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


@pytest.mark.parametrize("block", ["naf", "res"])
def test_a_grown_model_computes_what_the_smaller_one_did_and_then_trains(block):
    from denoise_core.model import load_grown

    torch.manual_seed(0)
    small = build_model(ModelConfig(width=8, depth=2, block=block, enc_blocks=[1, 1], middle_blocks=1, dec_blocks=[1, 1]))
    with torch.no_grad():  # trained-looking weights: NAF residual scales start at zero, which would hide mistakes
        for p in small.parameters():
            p.add_(0.1 * torch.randn_like(p))
    big_cfg = ModelConfig(width=8, depth=2, block=block, enc_blocks=[1, 2], middle_blocks=3, dec_blocks=[2, 1])
    big = build_model(big_cfg)
    load_grown(big, small.state_dict(), small.config.to_dict())
    assert count_parameters(big) > count_parameters(small)
    x = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(big(x), small(x), atol=1e-6, rtol=0)
    (big(x) - x).square().mean().backward()
    new_scale = big.middle[2].beta if block == "naf" else big.middle[2].body[-1].weight
    assert new_scale.grad is not None and new_scale.grad.abs().sum() > 0


def test_growth_refuses_fewer_blocks_or_another_width():
    from denoise_core.model import check_growth, load_grown

    base = ModelConfig(width=8, depth=2, enc_blocks=[1, 2], middle_blocks=2)
    with pytest.raises(ValueError, match="only grow"):
        check_growth(base, ModelConfig(width=8, depth=2, enc_blocks=[1, 1], middle_blocks=2))
    with pytest.raises(ValueError, match="width 8 -> 16"):
        check_growth(base, ModelConfig(width=16, depth=2, enc_blocks=[1, 2], middle_blocks=2))
    with pytest.raises(ValueError, match="only grow"):
        load_grown(build_model(ModelConfig(width=8, depth=2)), build_model(base).state_dict(), base)


@pytest.mark.parametrize("stem", ["conv", "unshuffle"])
def test_a_noise_map_grows_with_zero_weights_and_then_learns(stem):
    from denoise_core.model import load_grown

    torch.manual_seed(0)
    blind = build_model(ModelConfig(width=8, depth=2, block="res", stem=stem))
    with torch.no_grad():
        for p in blind.parameters():
            p.add_(0.1 * torch.randn_like(p))
    mapped = build_model(ModelConfig(width=8, depth=2, block="res", stem=stem, noise_map=True))
    load_grown(mapped, blind.state_dict(), blind.config.to_dict())
    x = torch.rand(2, 3, 20, 28)
    level = torch.full((2, 1, 20, 28), 1.7)
    with torch.no_grad():
        out = mapped(torch.cat([x, level], 1))
        torch.testing.assert_close(out, blind(x), atol=1e-6, rtol=0)  # exactly the blind model, whatever the map says
    assert out.shape == x.shape  # the residual goes to the image channels only
    (mapped(torch.cat([x, level], 1)) - x).square().mean().backward()
    per = mapped.scale**2
    assert mapped.intro.weight.grad[:, 3 * per :].abs().sum() > 0  # the map's weights train from zero


def test_a_noise_map_cannot_be_dropped():
    from denoise_core.model import check_growth

    with pytest.raises(ValueError, match="noise_map True -> False"):
        check_growth(ModelConfig(width=8, depth=2, noise_map=True), ModelConfig(width=8, depth=2))
