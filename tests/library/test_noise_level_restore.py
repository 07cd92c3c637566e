"""Restoring with a noise level: the shipped model told more removes more, "auto" is the estimate, and real-looking
(correlated, signal-dependent) noise is removed evenly across a tiled photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from conftest import TINY
from denoise_core import degradations, loading, restore, train
from denoise_core.noref import noise_left
from denoise_core.restoration import estimate_noise_level


def photo(h: int = 192, w: int = 256, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float32: smooth regions of several brightnesses, edges and a little texture."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((h // 16, w // 16, 3)), (1, 1, 0))
    img = np.kron(base, np.ones((16, 16, 1)))
    img = gaussian_filter(img, (3, 3, 0))
    img = (img - img.min()) / np.ptp(img)
    yy, xx = np.mgrid[0:h, 0:w]
    img += 0.05 * np.sin(xx / 3.0)[..., None] * (yy > h // 2)[..., None]  # fine stripes in the lower half
    return np.clip(0.1 + 0.8 * img, 0, 1).astype(np.float32)


def high_freq(img: np.ndarray) -> float:
    return float(np.std(img - gaussian_filter(img, (1.5, 1.5, 0))))


def test_the_shipped_model_takes_a_noise_map():
    assert loading.load_model().config.noise_map


def test_auto_tells_the_model_the_estimated_level():
    rng = np.random.default_rng(1)
    noisy = (np.clip(photo() + 12 / 255 * rng.standard_normal((192, 256, 3)), 0, 1) * 255).round().astype(np.uint8)
    level = estimate_noise_level(noisy)
    assert 8 < level < 16
    auto = restore(noisy, device="cpu")
    assert np.array_equal(auto, restore(noisy, device="cpu", noise_level=level))
    assert not np.array_equal(auto, restore(noisy, device="cpu", noise_level=level + 10))


def test_a_higher_level_removes_more():
    rng = np.random.default_rng(2)
    noisy = np.clip(photo() + 15 / 255 * rng.standard_normal((192, 256, 3)), 0, 1).astype(np.float32)
    grain = {lv: high_freq(restore(noisy, device="cpu", noise_level=lv)) for lv in (0, 5, 15, 40)}
    # Told 0 the model keeps the grain, told less than the noise it removes less, told the noise it removes it...
    assert grain[0] > 0.8 * high_freq(noisy) and grain[0] > grain[5] > grain[15]
    assert grain[15] < 0.2 * grain[0]
    assert grain[40] < 0.2 * grain[0]  # ...and told more, it does not put any back


def test_more_than_the_estimate_removes_more_camera_noise():
    """Where the estimate reads correlated camera noise low, a higher level takes more of it out."""
    clean = torch.from_numpy(photo(192, 256, seed=6)).permute(2, 0, 1)
    noisy = degradations.apply("camera_noise", clean, 0.75, torch.Generator().manual_seed(4)).permute(1, 2, 0).numpy()
    auto = estimate_noise_level(noisy)
    left = {k: noise_left(noisy, restore(noisy, device="cpu", noise_level=k * auto)).overall for k in (0.2, 1.0, 2.0)}
    assert left[0.2] > left[1.0] + 0.1 and left[2.0] <= left[1.0] + 0.01, left


def test_a_blind_model_ignores_the_level(tmp_path, image_dir):
    train(image_dir, epochs=1, save_path=tmp_path / "run", noise_map=False, **TINY)
    x = np.random.default_rng(3).random((40, 48, 3)).astype(np.float32)
    ckpt = tmp_path / "run" / "best.pt"
    assert np.array_equal(restore(x, ckpt, device="cpu", noise_level=0), restore(x, ckpt, device="cpu", noise_level=50))


def test_real_looking_noise_is_removed_evenly_across_tiles():
    """Camera noise (unprocessed, Bayer shot + read noise, demosaicked, processed) on a photo restored in 128-px
    tiles: every 64-px tile keeps little of its noise, and no tile is left behind its neighbours."""
    clean = torch.from_numpy(photo(256, 384, seed=4)).permute(2, 0, 1)
    noisy = degradations.apply("camera_noise", clean, 0.65, torch.Generator().manual_seed(2))
    inp = noisy.permute(1, 2, 0).numpy()
    out = restore(inp, device="cpu", tile=128, overlap=16)
    left = noise_left(inp, out)
    judged = left.tiles[np.isfinite(left.tiles)]
    assert judged.size >= 20
    assert left.overall < 0.35, left.overall
    assert judged.max() < 0.5, np.round(left.tiles, 2)  # no tile keeps most of its noise
    assert left.tile_iqr < 0.15, np.round(left.tiles, 2)  # and the tiles agree


def test_the_evenness_check_can_fail():
    """The same measure on a restore that cleans only the left half: half the tiles are left noisy."""
    clean = photo(256, 384, seed=4)
    noisy = np.clip(clean + 10 / 255 * np.random.default_rng(5).standard_normal(clean.shape), 0, 1)
    patchy = noisy.copy()
    patchy[:, :192] = clean[:, :192]
    left = noise_left(noisy, patchy)
    assert left.noisy_share == pytest.approx(0.5, abs=0.1) and left.tile_iqr > 0.5
