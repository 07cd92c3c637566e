"""The recipe options: pixel-unshuffle stem, undegraded samples, degradation prior, EMA, log loss, late patches, CPU bf16."""

from __future__ import annotations

import logging

import pytest
import torch

from conftest import TINY
from denoise_core import train
from denoise_core.checkpoint import load_checkpoint
from denoise_core.data import CLEAN, EpochSampler, TrainCrops
from denoise_core.model import ModelConfig, build_model, check_growth
from denoise_core.sampler import AdaptiveSampler
from denoise_core.training import TrainConfig, amp_dtype
from test_train import _stop_after_first_epoch, strip

NAMES = ["gaussian_noise", "jpeg", "gaussian_blur"]
OPTS = dict(TINY, degradations=NAMES, val_ratio=0.3, learning_rate=1e-3)


@pytest.mark.parametrize("block", ["naf", "res"])
@pytest.mark.parametrize("hw", [(37, 31), (16, 48), (5, 7)])
def test_unshuffle_stem_keeps_any_size_and_halves_every_level(block, hw):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8, depth=2, block=block, stem="unshuffle")).eval()
    assert model.multiple == 8
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    if block == "naf":  # level 0 runs at half resolution, so its attention pools sit at level 1
        assert [level for _, level, _ in model.attention_pools()][0] == 1
    # The residual design holds with the stem too: zeroing the ending leaves the input unchanged.
    with torch.no_grad():
        model.ending.weight.zero_()
        model.ending.bias.zero_()
        assert torch.equal(model(x), x)


def test_a_model_cannot_grow_into_another_stem():
    with pytest.raises(ValueError, match="stem"):
        check_growth(ModelConfig(), ModelConfig(stem="unshuffle"))
    with pytest.raises(ValueError, match="stem"):
        ModelConfig(stem="pixel")


def test_clean_samples_are_their_own_target_and_no_degradation_counts_them():
    sampler = AdaptiveSampler(NAMES)
    keys = list(EpochSampler(4, 400, sampler, seed=0, batch_size=8, clean_fraction=0.25))
    share = sum(k[1] == CLEAN for k in keys) / len(keys)
    assert 0.18 < share < 0.32
    # fraction 0 draws nothing more: the keys are those of a run from before the option
    assert list(EpochSampler(4, 64, sampler, seed=0, batch_size=8)) == [
        k for k in EpochSampler(4, 64, sampler, seed=0, batch_size=8, clean_fraction=0.0)]
    img = (torch.rand(3, 40, 40) * 255).to(torch.uint8)
    x, y, idx = TrainCrops([img], NAMES, 24, sensor_noise=3.0)[(0, CLEAN, 5)]
    assert idx == CLEAN and torch.equal(x, y) and x.shape == (3, 24, 24)
    sampler.record(torch.tensor([CLEAN, 0, CLEAN]), torch.tensor([5.0, 1.0, 5.0]), torch.tensor([0.0, 2.0, 0.0]))
    assert sampler.count.tolist() == [1.0, 0.0, 0.0] and sampler.loss_sum.tolist() == [1.0, 0.0, 0.0]


def test_prior_scales_the_shares():
    fixed = AdaptiveSampler(NAMES, adaptive=False, prior={"gaussian_noise": 2.0})
    assert fixed.weights.tolist() == pytest.approx([0.5, 0.25, 0.25])
    adaptive = AdaptiveSampler(NAMES, prior={"gaussian_noise": 3.0}, floor=0.0)
    plain = AdaptiveSampler(NAMES, floor=0.0)
    difficulty = {"gaussian_noise": 1.0, "jpeg": 1.0, "gaussian_blur": 2.0}
    w, p = adaptive.update(difficulty), plain.update(difficulty)
    assert (w[0] / w[1]).item() == pytest.approx(3.0 * (p[0] / p[1]).item())
    with pytest.raises(ValueError, match="not in this run"):
        AdaptiveSampler(NAMES, prior={"salt_pepper": 2.0})


def test_late_patches_travel_in_the_keys():
    sampler = EpochSampler(2, 8, AdaptiveSampler(NAMES), seed=0, batch_size=4)
    sampler.patch_size = 32
    keys = list(sampler)
    assert all(len(k) == 4 and k[3] == 32 for k in keys)
    img = (torch.rand(3, 40, 40) * 255).to(torch.uint8)
    assert TrainCrops([img], NAMES, 16)[keys[0]][0].shape == (3, 32, 32)


def test_ema_run_saves_the_average_as_its_model_and_resumes_exactly(image_dir, tmp_path, monkeypatch):
    opts = dict(OPTS, ema=0.9, clean_fraction=0.2, loss_norm="log", late_patch_size=32, late_epochs=1,
                prior={"gaussian_noise": 2.0}, sensor_noise=2.0)
    straight = train(image_dir, epochs=3, save_path=tmp_path / "a", **opts)
    with monkeypatch.context() as m:
        _stop_after_first_epoch(m)
        assert train(image_dir, epochs=3, save_path=tmp_path / "b", **opts)["state"] == "stopped"
    resumed = train(image_dir, epochs=3, save_path=tmp_path / "b", resume=True, **opts)
    assert strip(resumed["history"]) == strip(straight["history"])
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a["ema_model"][k], b["ema_model"][k]) for k in a["ema_model"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # best.pt and the epoch files hold the average, which differs from the trained weights
    epoch3 = load_checkpoint(tmp_path / "a" / "checkpoints" / "epoch_0003.pt")
    assert all(torch.equal(epoch3["model"][k], a["ema_model"][k]) for k in epoch3["model"])
    assert any(not torch.equal(a["model"][k], a["ema_model"][k]) for k in a["model"])
    # validation reports the undegraded crops on their own
    assert "clean" in straight["history"][-1]["per_degradation"]


def test_the_log_floor_reaches_the_objective(image_dir, tmp_path):
    """--log-floor changes what is optimised under loss_norm="log" (and nothing without it)."""
    def weights(**kw):
        out = tmp_path / "-".join(f"{k}{v}" for k, v in kw.items())
        train(image_dir, epochs=1, save_path=out, **dict(OPTS, **kw))
        return load_checkpoint(out / "last.pt")["model"]

    low, high = weights(loss_norm="log", log_floor=1e-4), weights(loss_norm="log", log_floor=1.0)
    assert any(not torch.equal(low[k], high[k]) for k in low)
    plain_a, plain_b = weights(loss_norm="none", log_floor=1e-4), weights(loss_norm="none", log_floor=1.0)
    assert all(torch.equal(plain_a[k], plain_b[k]) for k in plain_a)


def test_options_are_checked_and_bf16_falls_back_on_a_cpu_without_it(monkeypatch, caplog):
    for bad in (dict(clean_fraction=1.0), dict(ema=1.0), dict(loss_norm="psnr"), dict(late_patch_size=4), dict(stem="x"),
                dict(log_floor=0.0)):
        with pytest.raises(ValueError, match="invalid training option"):
            TrainConfig(**bad)
    import denoise_core.training as train_module

    monkeypatch.setattr(train_module, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert amp_dtype("bf16", "cpu") is None
    assert "no native bf16" in caplog.text
    assert amp_dtype("auto", "cpu") is None  # auto falls back silently
    monkeypatch.setattr(train_module, "cpu_has_bf16", lambda: True)
    assert amp_dtype("bf16", "cpu") == torch.bfloat16
    assert amp_dtype("auto", "cpu") == torch.bfloat16 and amp_dtype("off", "cpu") is None
    assert amp_dtype("auto", "mps") is None and amp_dtype("fp16", "cuda") == torch.float16


def test_ema_decay_warms_up_so_the_random_start_fades():
    from denoise_core.training import _ema_warmup_fn

    update = _ema_warmup_fn(0.999)
    ema, new = [torch.zeros(3)], [torch.ones(3)]
    update(ema, new, torch.tensor(1))  # decay (1 + 1) / (10 + 1): mostly the new weights
    assert ema[0].tolist() == pytest.approx([1 - 2 / 11] * 3)
    late = [torch.zeros(3)]
    update(late, new, torch.tensor(100_000))  # the cap: 0.999
    assert late[0].tolist() == pytest.approx([0.001] * 3)
