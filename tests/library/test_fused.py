"""`denoise_core.fused`: oneDNN's fused bf16 convolutions compute what bf16 autocast computes, and the runner
uses them only where they apply, falling back to autocast when they misbehave."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from denoise_core import fused as fused_mod
from denoise_core.inference import TorchRunner
from denoise_core.model import ModelConfig, build_model

needs_ops = pytest.mark.skipif(fused_mod._ops() is None or not torch.backends.mkldnn.is_available(),
                               reason="this PyTorch lacks oneDNN's fused convolutions")


def _res_model(stem: str = "conv", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(width=8, depth=2, enc_blocks=[2, 1], middle_blocks=1, dec_blocks=[1, 2],
                                    block="res", stem=stem)).eval()
    with torch.no_grad():  # non-trivial residual branches (growth zeroes them; these must count)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _autocast(model, x):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return model(x).float()


@needs_ops
@pytest.mark.parametrize("stem", ["conv", "unshuffle"])
def test_fused_matches_autocast_and_fp32(stem):
    model = _res_model(stem)
    x = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(1))  # not a multiple of 4 or 8
    before = x.clone()
    got = fused_mod.FusedUNet(model)(x)
    with torch.inference_mode():
        fp32 = model(x)
    assert got.shape == x.shape and got.dtype == torch.float32
    assert torch.equal(x, before)  # the in-place sums never touch the caller's input
    assert (got - _autocast(model, x)).abs().max().item() < 0.03
    assert (got - fp32).abs().max().item() < 0.05
    # and the network matters: a broken fusion (say, the ReLU dropped) would be far off
    assert (fp32 - x).abs().max().item() > 0.1


@needs_ops
def test_fused_output_keeps_float32_precision_near_white():
    """The global skip is added in float32: the output is not rounded to bf16 (steps of 1/128 near 1)."""
    model = _res_model()
    x = torch.full((1, 3, 16, 16), 0.99) + 0.001 * torch.rand(1, 3, 16, 16)
    got = fused_mod.FusedUNet(model)(x)
    steps = torch.unique(got.flatten()).numel()
    assert steps > 50


def test_fusable_only_for_residual_models_on_cpu():
    naf = build_model(ModelConfig(width=8, depth=2, block="naf"))
    assert not fused_mod.fusable(naf)
    with pytest.raises(ValueError):
        fused_mod.FusedUNet(naf)
    run = TorchRunner(naf, bf16=True)
    assert run.fused is False and run.backend == "bf16"


@needs_ops
def test_runner_uses_fused_path_for_residual_models():
    model = _res_model()
    x = np.random.default_rng(2).random((1, 3, 45, 30), dtype=np.float32)
    run, plain = TorchRunner(model, bf16=True), TorchRunner(model, bf16=True, fused=False)
    assert run.fused and not plain.fused
    a, b = run(x), plain(x)
    assert a.shape == x.shape and np.abs(a - b).max() < 0.03
    np.testing.assert_array_equal(run.tile(x, np.zeros((1, 0), np.float32)), a)  # a tile is the plain model
    assert not TorchRunner(model).fused  # fp32 backend: no bf16 fusion


@needs_ops
def test_runner_falls_back_to_autocast_when_the_fused_path_misbehaves(monkeypatch, caplog):
    model = _res_model()
    conv, conv_add_ = fused_mod._ops()

    def wrong(*args):  # the ReLU post-op ignored: results far from autocast
        args = list(args)
        args[7] = "none"
        return conv(*args)

    monkeypatch.setattr(fused_mod, "_ops", lambda: (wrong, conv_add_))
    x = np.random.default_rng(3).random((1, 3, 24, 24), dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="denoise_core.inference"):
        run = TorchRunner(model, bf16=True)
    assert not run.fused and "differ from autocast" in caplog.text
    np.testing.assert_allclose(run(x), TorchRunner(model, bf16=True, fused=False)(x), atol=1e-6)

    def broken(*args):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(fused_mod, "_ops", lambda: (broken, conv_add_))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="denoise_core.inference"):
        assert not TorchRunner(model, bf16=True).fused
    assert "unavailable" in caplog.text


@needs_ops
@pytest.mark.parametrize("stem", ["conv", "unshuffle"])
def test_a_grown_noise_map_model_restores_alike_on_every_backend(stem):
    """A blind model grown by a noise map: the fused bf16 path, fp32 and onnxruntime restore what the blind model did
    (the map's weights are zero), and once the map's weights are not, all three follow the level alike."""
    from denoise_core.inference import OnnxRunner
    from denoise_core.model import load_grown
    from denoise_core.restoration import restore_tensor

    blind = _res_model(stem)
    mapped = build_model(ModelConfig(**{**blind.config.to_dict(), "noise_map": True})).eval()
    load_grown(mapped, blind.state_dict(), blind.config)
    x = np.random.default_rng(2).random((1, 3, 70, 90), dtype=np.float32)
    reference = restore_tensor(TorchRunner(blind), x, tile=48, overlap=8)
    runners = {"fp32": TorchRunner(mapped), "bf16": TorchRunner(mapped, bf16=True), "onnx": OnnxRunner.from_model(mapped)}
    assert runners["bf16"].fused
    for name, run in runners.items():
        got = restore_tensor(run, x, tile=48, overlap=8, noise_level=0.1)
        assert np.abs(got - reference).max() < (0.02 if name == "bf16" else 1e-5), name
    with torch.no_grad():
        mapped.intro.weight[:, -mapped.scale**2 :] += 0.02  # the map now counts
    runners = {"fp32": TorchRunner(mapped), "bf16": TorchRunner(mapped, bf16=True), "onnx": OnnxRunner.from_model(mapped)}
    outs = {name: [restore_tensor(run, x, tile=48, overlap=8, noise_level=lv) for lv in (0.02, 0.2)]
            for name, run in runners.items()}
    assert np.abs(outs["fp32"][0] - outs["fp32"][1]).mean() > 0.01  # the level changes the result
    for a, b in zip(outs["onnx"], outs["fp32"]):
        assert np.abs(a - b).max() < 1e-4
    for a, b in zip(outs["bf16"], outs["fp32"]):  # bf16 rounding, through random weights
        assert np.abs(a - b).mean() < 0.01 and np.abs(a - b).max() < 0.1
