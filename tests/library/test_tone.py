"""denoise_core.tone: putting the input's tone back under a restore, without undoing what noise did to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_image
from denoise_core.tone import clipped_mean, keep_tone, lowpass, noise_level


def _photo(h: int = 96, w: int = 120, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(make_image(np.random.default_rng(seed), h, w)).permute(2, 0, 1)[None].float() / 255


def _levels(a: torch.Tensor, b: torch.Tensor) -> float:
    """Tone shift in levels (0-255): mean over channels of |difference of channel means|."""
    return float((a.mean((-2, -1)) - b.mean((-2, -1))).abs().mean() * 255)


@pytest.mark.parametrize("shape", [(1, 3, 37, 31), (2, 3, 96, 120), (1, 1, 9, 200)])
def test_lowpass_keeps_shape_and_constants(shape):
    x = torch.full(shape, 0.3)
    y = lowpass(x, 8.0)
    assert y.shape == x.shape and torch.allclose(y, x, atol=1e-6)


@pytest.mark.parametrize("aware", [False, True])
@pytest.mark.parametrize("sigma", [None, 8.0])
def test_a_brightened_and_tinted_restore_gets_the_input_tone_back(aware, sigma):
    clean = _photo()
    drifted = (clean * 0.95 + torch.tensor([0.04, 0.02, -0.01]).view(1, 3, 1, 1)).clamp(0, 1)
    assert _levels(drifted, clean) > 1.5
    kept = keep_tone(clean, drifted, sigma, aware)
    assert _levels(kept, clean) < 0.3
    # The detail (high frequencies) the restore made is untouched: only a smooth correction was added.
    correction = kept - drifted
    assert (correction - lowpass(correction, 8.0)).abs().max() < 0.02


def test_an_unchanged_restore_stays_unchanged():
    x = _photo()
    assert torch.allclose(keep_tone(x, x.clone()), x, atol=1e-5)


def test_clipped_mean_matches_monte_carlo():
    mu = torch.linspace(0, 1, 11)
    sigma = torch.tensor(50 / 255)
    g = torch.Generator().manual_seed(0)
    samples = (mu[:, None] + sigma * torch.randn(11, 200_000, generator=g)).clamp(0, 1).mean(1)
    assert torch.allclose(clipped_mean(mu, sigma), samples, atol=2e-3)
    assert torch.allclose(clipped_mean(mu, torch.tensor(0.0)), mu, atol=1e-5)


@pytest.mark.parametrize("sigma", [1e-6, 1e-4, 2 / 255, 25 / 255, 0.5])
def test_clipped_mean_table_matches_the_formula(sigma):
    """Big arrays go through a lookup table (`tone._clipped_mean_table`); it must agree with the formula
    everywhere, values outside [0, 1] included, for one sigma and for one sigma per image."""
    from denoise_core.tone import _TABLE_FROM, _clipped_mean_exact

    rng = np.random.default_rng(0)
    mu = rng.uniform(-0.2, 1.2, (2, 3, 128, 200)).astype(np.float32)
    mu[0, 0, 0, :4] = [0.0, 1.0, 1 - 1e-7, 0.5]
    assert mu[0].size >= _TABLE_FROM  # the table path runs
    exact = _clipped_mean_exact(mu.astype(np.float64), sigma)
    assert np.abs(clipped_mean(mu, np.float32(sigma)) - exact).max() < 1e-4
    per_image = np.array([sigma, 2 * sigma], np.float32).reshape(2, 1, 1, 1)
    exact_each = _clipped_mean_exact(mu.astype(np.float64), per_image.astype(np.float64))
    got = clipped_mean(mu, per_image)
    assert got.shape == mu.shape and got.dtype == np.float32 and np.abs(got - exact_each).max() < 1e-4


def test_noise_level_ignores_impulses():
    g = torch.Generator().manual_seed(1)
    r = 0.1 * torch.randn(1, 3, 64, 64, generator=g)
    r[..., ::10, ::3] = 0.9  # about 3 % impulses
    assert noise_level(r).item() == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("sigma_255", [25, 50])
def test_the_noise_aware_lock_does_not_put_the_clipping_bias_back(sigma_255):
    """Noise clipped to [0, 1] brightens a dark photo's mean; a perfect denoiser removes that
    bias, and the noise-aware lock keeps it removed where the plain one brings it back."""
    clean = _photo() * 0.5  # dark, so clipping at 0 matters
    g = torch.Generator().manual_seed(2)
    noisy = (clean + sigma_255 / 255 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    assert _levels(noisy, clean) > 1.5
    plain, aware = keep_tone(noisy, clean, 8.0, False), keep_tone(noisy, clean, 8.0, True)
    assert _levels(aware, clean) < 0.5 < _levels(plain, clean)


def test_impulses_do_not_move_the_lock():
    clean = _photo()
    g = torch.Generator().manual_seed(3)
    u = torch.rand(1, 1, *clean.shape[-2:], generator=g)
    sp = torch.where(u < 0.05, torch.ones_like(clean), clean)  # 5 % white impulses: the input's mean rises
    assert _levels(sp, clean) > 4
    assert _levels(keep_tone(sp, clean, 8.0, True), clean) < 0.3
