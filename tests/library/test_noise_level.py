import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from denoise_core import noise_level as nl
from denoise_core.restoration import estimate_noise_level


def smooth_photo(h=256, w=320, seed=0) -> np.ndarray:
    """(3, H, W) in [0.15, 0.85]: smooth shapes and edges, no noise."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((3, h // 8, w // 8)), (0, 1.5, 1.5))
    img = np.kron(base, np.ones((8, 8)))
    img = gaussian_filter(img, (0, 2, 2))
    img = (img - img.min()) / (img.max() - img.min())
    img[:, h // 3 : h // 2, :] = 0.8  # a hard edge
    return (0.15 + 0.7 * img).astype(np.float32)


def test_robust_std_reads_gaussian_sigma_and_ignores_impulses():
    rng = np.random.default_rng(0)
    assert nl.robust_std(0.1 * rng.standard_normal(100_000)) == pytest.approx(0.1, rel=0.02)
    impulses = np.zeros((3, 64, 64), np.float32)
    impulses.reshape(-1)[rng.choice(impulses.size, 400, replace=False)] = 0.9  # 3 % of values
    assert nl.residual_level(impulses) == 0.0


def test_two_scales_read_correlated_noise_where_one_reads_it_low():
    rng = np.random.default_rng(1)
    white = 0.08 * rng.standard_normal((512, 512))
    assert nl.multiscale_std(white) == pytest.approx(0.08, rel=0.05)
    corr = gaussian_filter(rng.standard_normal((512, 512)), 1.0)
    corr *= 0.08 / corr.std()  # noise correlated over a couple of pixels, as a demosaicked camera's
    one, two = nl.multiscale_std(corr, levels=1), nl.multiscale_std(corr)
    assert one < 0.55 * 0.08  # the single-scale wavelet estimator's failure
    assert two > 0.75 * 0.08 and two > 1.4 * one


def test_tile_levels_match_tile_by_tile_and_big_photos_are_sampled():
    rng = np.random.default_rng(2)
    a = np.clip(0.5 + 0.1 * rng.standard_normal((3, 128, 200)), 0, 1).astype(np.float32)
    got = nl.tile_levels(a)
    assert got.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            block = a[:, i * 64 : (i + 1) * 64, j * 64 : (j + 1) * 64]
            assert got[i, j] == pytest.approx(math.sqrt(np.mean([nl.multiscale_std(c) ** 2 for c in block])), rel=1e-5)
    big = np.clip(smooth_photo(1024, 1280) + 0.05 * rng.standard_normal((3, 1024, 1280)), 0, 1).astype(np.float32)
    every = float(np.quantile(nl.tile_levels(big), nl.QUANTILE))
    assert nl.tile_levels(big, max_tiles=80).size <= 100
    assert nl.estimate(big) == pytest.approx(every, rel=0.05)


def test_estimate_reads_noise_on_a_photo_and_almost_nothing_on_a_clean_one():
    photo = smooth_photo()
    rng = np.random.default_rng(3)
    for sigma in (5 / 255, 15 / 255, 40 / 255):
        noisy = photo + sigma * rng.standard_normal(photo.shape).astype(np.float32)
        assert nl.estimate(noisy) == pytest.approx(sigma, rel=0.12)
    assert nl.estimate(photo) < 2 / 255  # the smooth gradients' own fine detail
    assert nl.estimate(np.zeros((3, 5, 7), np.float32)) == 0.0  # smaller than the Haar pyramid: no detail


def test_estimate_noise_level_of_an_image_is_on_the_255_scale():
    photo = smooth_photo()
    noisy = np.clip(photo + 20 / 255 * np.random.default_rng(4).standard_normal(photo.shape), 0, 1)
    u8 = (noisy.transpose(1, 2, 0) * 255).round().astype(np.uint8)
    assert estimate_noise_level(u8) == pytest.approx(20, rel=0.12)


@pytest.mark.parametrize("value, expected", [("auto", None), (None, None), (" AUTO ", None), ("12", 12 / 255),
                                             (0, 0.0), (75, 75 / 255)])
def test_parse_level(value, expected):
    assert nl.parse_level(value) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("value", ["-1", 76, "loud", float("nan"), [3]])
def test_parse_level_refuses_with_one_line(value):
    with pytest.raises(ValueError, match="noise level") as err:
        nl.parse_level(value)
    assert "\n" not in str(err.value)


def test_noise_maps_carry_each_images_level():
    x = np.stack([smooth_photo(64, 96), smooth_photo(64, 96, seed=1) + 0.1 * np.random.default_rng(5).standard_normal((3, 64, 96))])
    withmap, levels = nl.with_noise_map(x.astype(np.float32))
    assert withmap.shape == (2, 4, 64, 96) and np.array_equal(withmap[:, :3], x.astype(np.float32))
    assert levels[0] < 3 / 255 and levels[1] > 20 / 255
    assert np.allclose(withmap[1, 3], levels[1] * nl.MAP_SCALE) and np.ptp(withmap[1, 3]) == 0
    told, levels = nl.with_noise_map(x.astype(np.float32), 25 / 255)
    assert levels == [25 / 255] * 2 and np.allclose(told[:, 3], 1.0)  # sigma 25 reads 1


def test_training_crops_are_told_the_estimate_and_some_noise_samples_less():
    from denoise_core.data import CLEAN, FULL_REMOVAL, TrainCrops

    img = torch.from_numpy((smooth_photo(96, 96) * 255).round().astype(np.uint8))
    names = ["gaussian_noise", "jpeg"]
    crops = TrainCrops([img], names, 64, noise_map=True)
    plain = TrainCrops([img], names, 64)
    full, under = [], []
    for seed in range(60):
        for d in (0, 1):
            x, y, _ = crops[(0, d, seed)]
            assert x.shape == (4, 64, 64) and y.shape == (3, 64, 64) and np.ptp(x[3].numpy()) == 0
            blind, clean, _ = plain[(0, d, seed)]
            assert torch.equal(blind, x[:3])  # the same sample, with and without its map
            ratio = float(x[3, 0, 0]) / nl.MAP_SCALE / nl.estimate(blind.numpy())
            if torch.equal(y, clean):
                full.append(ratio)
            else:  # under-told: the target keeps the share of the noise that was not asked for
                assert names[d] == "gaussian_noise"  # only pure noise; JPEG blocking is always removed
                kept = float(((y - clean) / (blind - clean)).nan_to_num().median())
                assert ratio < FULL_REMOVAL and kept == pytest.approx(1 - ratio / FULL_REMOVAL, abs=0.02)
                under.append(ratio)
    full = np.array(full)
    assert 0.5 < full.min() and full.max() < 2.0 and 0.08 < full.std() < 0.25  # the estimate, jittered
    assert 3 <= len(under) <= 20
    x, y, idx = crops[(0, CLEAN, 3)]
    assert idx == CLEAN and torch.equal(x[:3], y)
