"""The shipped model on photos that need nothing: scikit-image's sample photos, restored with the defaults."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from denoise_core import bench
from denoise_core.images import open_image
from denoise_core.restoration import restore
from denoise_core.samples import sample_image_dir

CLEAN_PSNR, CLEAN_TONE = 45.0, 0.5  # the do-no-harm targets (bench/targets.py)


def _crop(name: str, size: int = 192) -> Image.Image:
    img = open_image(sample_image_dir() / name).convert("RGB")
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


@pytest.mark.parametrize("name", ["astronaut.png", "chelsea.png"])
def test_the_shipped_model_keeps_a_clean_photos_tone(name):
    photo = _crop(name)
    a = np.asarray(photo, np.float32) / 255
    out = np.asarray(restore(photo, device="cpu"), np.float32) / 255
    assert bench.tone_shift(a, out) <= CLEAN_TONE


@pytest.mark.parametrize("name", ["astronaut.png", "chelsea.png"])
def test_the_shipped_model_changes_a_clean_photo_little(name):
    photo = _crop(name)
    a = np.asarray(photo, np.float32) / 255
    psnr = bench.score(a, np.asarray(restore(photo, device="cpu"), np.float32) / 255)[0]
    assert psnr >= CLEAN_PSNR  # stage 6: 48.1 (astronaut), 61.4 (chelsea)
