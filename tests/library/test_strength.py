"""restore(..., strength): 0 is the input bit for bit, 1 the full restore, between a linear mix; bad values refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import make_image
from denoise_core.restoration import restore


@pytest.fixture
def noisy() -> Image.Image:
    clean = make_image(np.random.default_rng(0), 40, 48).astype(np.float64)
    noise = np.random.default_rng(1).normal(0, 20, clean.shape)
    return Image.fromarray(np.clip(clean + noise, 0, 255).round().astype(np.uint8))


def test_strength_zero_is_the_input_bit_for_bit(noisy, tiny_checkpoint):
    for image in (noisy, noisy.convert("RGBA"), noisy.convert("L"), np.asarray(noisy)):
        out = restore(image, tiny_checkpoint, device="cpu", strength=0)
        assert np.array_equal(np.asarray(out), np.asarray(image))
        assert out is not image  # a copy: the caller may change one without the other


def test_strength_mixes_linearly_between_input_and_full_restore(noisy, tiny_checkpoint):
    x = np.asarray(noisy, dtype=np.float64)
    full = np.asarray(restore(noisy, tiny_checkpoint, device="cpu"), dtype=np.float64)
    assert np.abs(full - x).mean() > 2  # the model does change this photo, so the mix is not trivial
    assert np.array_equal(np.asarray(restore(noisy, tiny_checkpoint, device="cpu", strength=1.0)), full.astype(np.uint8))
    for s in (0.25, 0.5, 0.8):
        out = np.asarray(restore(noisy, tiny_checkpoint, device="cpu", strength=s), dtype=np.float64)
        assert np.abs(out - (x + s * (full - x))).max() <= 1.0  # rounding of the two 8-bit images only
    # Monotone: a stronger restore moves further from the input.
    moved = [np.abs(np.asarray(restore(noisy, tiny_checkpoint, device="cpu", strength=s), float) - x).mean()
             for s in (0.2, 0.6, 1.0)]
    assert moved[0] < moved[1] < moved[2]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "strong", None])
def test_bad_strength_is_one_clear_error(noisy, tiny_checkpoint, bad):
    with pytest.raises(ValueError, match="strength must be"):
        restore(noisy, tiny_checkpoint, device="cpu", strength=bad)
