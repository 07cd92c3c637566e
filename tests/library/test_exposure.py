"""The exposure head: a global curve kept apart from local restoration (correct_tone=True)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from denoise_core.degradations import param
from denoise_core.exposure import (
    DEFAULT_WEIGHTS, N_FEATURES, ExposureHead, apply_curve, evaluate_exposure, features, load_exposure, pixel_sample,
    train_exposure,
)
from denoise_core.samples import sample_image_dir

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(sample_image_dir() / name).convert("RGB"), np.float32).transpose(2, 0, 1) / 255


def _dark(x: np.ndarray, severity: float = 0.5) -> np.ndarray:
    """The benchmark's under-exposure (noise-free): gain * x ** gamma."""
    return param("low_light", "gain", severity) * x ** param("low_light", "gamma", severity)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def _identity_head() -> ExposureHead:
    rng = np.random.default_rng(0)
    w = {"mean": np.zeros(N_FEATURES), "std": np.ones(N_FEATURES), "w0": rng.normal(size=(N_FEATURES, 64)),
         "b0": np.zeros(64), "w1": rng.normal(size=(64, 64)), "b1": np.zeros(64), "w2": np.zeros((64, 4)),
         "b2": np.zeros(4)}
    return ExposureHead(w)


def test_curve_inverts_the_under_exposure_model_and_zero_output_is_the_identity():
    x = _photo("coffee.png")
    gain, gamma = param("low_light", "gain", 0.5), param("low_light", "gamma", 0.5)
    assert np.allclose(apply_curve(_dark(x), np.full(3, gain), gamma), x, atol=1e-5)
    head = _identity_head()
    gains, g = head.params(features(pixel_sample(x)))
    assert np.allclose(gains, 1) and g == pytest.approx(1)
    assert np.allclose(head.correct(x[None]), x[None], atol=1e-6)


def test_pixel_sample_is_bounded_and_features_are_finite():
    x = np.random.default_rng(0).random((3, 1000, 700), dtype=np.float32)
    p = pixel_sample(x)
    assert p.shape[0] == 3 and 40_000 < p.shape[1] <= 70_000
    f = features(p)
    assert f.shape == (N_FEATURES,) and np.isfinite(f).all()


def test_train_exposure_learns_to_brighten_and_writes_a_loadable_head(tmp_path):
    data = tmp_path / "photos"
    data.mkdir()
    for name in PHOTOS + ("motorcycle_left.png", "horse.png", "color.png"):
        Image.open(sample_image_dir() / name).convert("RGB").save(data / (name.split(".")[0] + ".png"))
    out = tmp_path / "head.npz"
    scores = train_exposure(data, out, steps=300, batch=32, val_ratio=0.3, pixels=2048)
    head = load_exposure(out)
    assert head is not None
    # Against doing nothing on the same held-out images (the identity curve on the dark pixels).
    clean = [pixel_sample(_photo(n), 4096) for n in PHOTOS[:2]]
    before = evaluate_exposure(_identity_head(), clean)
    after = evaluate_exposure(head, clean)
    assert after["low_light"] > before["low_light"] + 3, (before, after)
    assert set(scores) == {"low_light", "clean"}
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically


def test_shipped_head_fixes_under_exposure_and_nearly_leaves_good_exposure_alone():
    head = load_exposure()
    assert head is not None, f"{DEFAULT_WEIGHTS} is missing"
    for name in PHOTOS:
        x = _photo(name)
        dark = _dark(x)
        fixed = head.correct(dark[None])[0]
        assert _psnr(fixed, x) > _psnr(dark, x) + 6, name
        same = head.correct(x[None])[0]
        shift = np.abs(same.mean((1, 2)) - x.mean((1, 2))).mean() * 255
        assert shift < 8, (name, shift)


def test_broken_head_weights_warn_and_give_none(tmp_path, caplog):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with caplog.at_level(logging.WARNING):
        assert load_exposure(bad) is None
    assert "exposure weights" in caplog.text


def test_train_exposure_command(tmp_path, capsys):
    from denoise_core.cli import main

    data = tmp_path / "photos"
    data.mkdir()
    for name in PHOTOS:
        Image.open(sample_image_dir() / name).convert("RGB").save(data / (name.split(".")[0] + ".png"))
    assert main(["train-exposure", "--data", str(data), "--out", str(tmp_path / "h.npz"), "--steps", "20",
                 "--val-ratio", "0.25"]) == 0
    assert "held-out curve PSNR" in capsys.readouterr().out and load_exposure(tmp_path / "h.npz") is not None
    assert main(["train-exposure", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "x.npz")]) == 2
