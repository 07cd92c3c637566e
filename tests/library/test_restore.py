from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from denoise_core import restore, train
from denoise_core.checkpoint import CheckpointError, save_checkpoint
from denoise_core.model import ModelConfig, build_model
from denoise_core.restoration import load_model, restore_file


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny trained checkpoint (best.pt of a 1-epoch run)."""
    import conftest

    root = tmp_path_factory.mktemp("ckpt")
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    for i in range(4):
        Image.fromarray(conftest.make_image(rng, 40, 44)).save(root / "img" / f"{i}.png")
    train(root / "img", epochs=1, val_ratio=0.25, save_path=root / "run", **dict(TINY, degradations=["gaussian_noise"]))
    return root / "run" / "best.pt"


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "CMYK", "I;16", "I", "F"])
def test_pil_same_size_and_mode(checkpoint, mode):
    rng = np.random.default_rng(1)
    img = Image.fromarray((rng.random((21, 35, 3)) * 255).astype(np.uint8)).convert(mode if mode not in ("I;16", "I", "F") else "L")
    if mode in ("I;16", "I", "F"):
        img = img.convert(mode) if mode != "I;16" else Image.fromarray((np.asarray(img).astype(np.uint16) * 257))
    out = restore(img, checkpoint, device="cpu")
    assert out.size == img.size
    assert out.mode == (img.mode if img.mode != "P" else "RGB")


@pytest.mark.parametrize("dtype,shape", [(np.uint8, (19, 23, 3)), (np.uint16, (19, 23)), (np.float32, (19, 23, 1)), (np.uint8, (19, 23, 4))])
def test_array_same_dtype_and_shape(checkpoint, dtype, shape):
    rng = np.random.default_rng(2)
    arr = rng.random(shape)
    arr = (arr * np.iinfo(dtype).max).astype(dtype) if np.issubdtype(dtype, np.integer) else arr.astype(dtype)
    out = restore(arr, checkpoint, device="cpu")
    assert out.shape == arr.shape and out.dtype == arr.dtype
    if shape[-1] == 4:
        assert np.array_equal(out[..., 3], arr[..., 3])  # alpha untouched


def test_float_output_finite_and_in_range(checkpoint):
    clean = np.full((32, 32, 3), 0.5, np.float32)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    out = restore(noisy, checkpoint, device="cpu")
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_bad_checkpoints_are_clear_errors(tmp_path, checkpoint):
    with pytest.raises(CheckpointError, match="does not exist"):
        restore(np.zeros((8, 8, 3), np.uint8), tmp_path / "nope.pt")
    other = build_model(ModelConfig(width=8, depth=2))
    save_checkpoint(tmp_path / "mismatch.pt", {"model": other.state_dict(), "model_config": ModelConfig(width=16, depth=2).to_dict()})
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(tmp_path / "mismatch.pt")


def test_restore_file_writes_png(tmp_path, checkpoint):
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "in.jpg")
    out = restore_file(tmp_path / "in.jpg", tmp_path / "out.png", checkpoint, device="cpu")
    assert Image.open(out).size == (12, 10)


def test_grey_model_restores_each_colour_channel_of_a_batch():
    from denoise_core.inference import TorchRunner
    from denoise_core.restoration import restore_rgb, restore_tensor
    from denoise_core.tone import keep_tone

    torch.manual_seed(0)
    run = TorchRunner(build_model(ModelConfig(channels=1, width=8, depth=2)).eval())
    x = torch.rand(2, 3, 20, 18)
    y = restore_rgb(run, x, tile=None)
    assert y.shape == x.shape
    raw = torch.zeros_like(x)
    for b in range(2):
        for c in range(3):
            raw[b, c] = restore_tensor(run, x[b : b + 1, c : c + 1], tile=None)[0, 0]
    assert torch.allclose(y, keep_tone(x, raw), atol=1e-6)


def _brightening_checkpoint(path: Path, offset: float = 0.08) -> Path:
    """A model whose output is its input plus ``offset``: a pure global brightening, the drift a blind restorer can have."""
    model = build_model(ModelConfig(width=8, depth=2, block="res"))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.ending.bias.fill_(offset)
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config.to_dict()})
    return path


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_restore_keeps_the_tone_unless_told_to_correct_it(tmp_path, backend):
    from conftest import make_image

    ckpt = _brightening_checkpoint(tmp_path / "bright.pt")
    # Kept clear of black and white, so the brightened output does not clip and lose what the lock needs.
    photo = Image.fromarray((40 + 0.7 * make_image(np.random.default_rng(4), 90, 120)).astype(np.uint8))
    arr = np.asarray(photo, np.float64)
    kept = np.asarray(restore(photo, ckpt, device="cpu", backend=backend), np.float64)
    corrected = np.asarray(restore(photo, ckpt, device="cpu", backend=backend, correct_tone=True), np.float64)
    shift = lambda a: np.abs(a.mean((0, 1)) - arr.mean((0, 1))).mean()  # noqa: E731
    assert shift(kept) < 0.5 and np.abs(kept - arr).mean() < 1.0
    # The exposure head, not the model's drift (+20 levels), decides the tone: a well-exposed photo moves little.
    assert shift(corrected) < 8


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_correct_tone_brightens_an_under_exposed_photo(tmp_path, backend):
    from denoise_core.samples import sample_image_dir

    ckpt = _brightening_checkpoint(tmp_path / "id.pt", offset=0.0)  # the identity: only the tone path acts
    clean = np.asarray(Image.open(sample_image_dir() / "coffee.png").convert("RGB"), np.float64) / 255
    dark = Image.fromarray((255 * 0.525 * clean ** 1.5).round().astype(np.uint8))  # the benchmark's low light
    psnr = lambda a: 10 * np.log10(1 / np.mean((np.asarray(a, np.float64) / 255 - clean) ** 2))  # noqa: E731
    kept = restore(dark, ckpt, device="cpu", backend=backend)
    fixed = restore(dark, ckpt, device="cpu", backend=backend, correct_tone=True)
    assert psnr(kept) < 15 and psnr(fixed) > psnr(kept) + 6


def test_correct_tone_without_exposure_weights_falls_back_to_the_model(tmp_path, monkeypatch):
    import denoise_core.restoration as restoration

    monkeypatch.setattr(restoration, "load_exposure", lambda: None)
    ckpt = _brightening_checkpoint(tmp_path / "bright.pt")
    photo = Image.fromarray(np.full((20, 24, 3), 100, np.uint8))
    fixed = np.asarray(restore(photo, ckpt, device="cpu", correct_tone=True), np.float64)
    assert fixed.mean() == pytest.approx(100 + 0.08 * 255, abs=1)


def test_restore_command_has_correct_tone(tmp_path):
    from denoise_core.cli import main
    from denoise_core.samples import sample_image_dir

    ckpt = _brightening_checkpoint(tmp_path / "bright.pt")
    clean = np.asarray(Image.open(sample_image_dir() / "chelsea.png").convert("RGB"), np.float64) / 255
    Image.fromarray((255 * 0.4 * clean ** 1.7).round().astype(np.uint8)).save(tmp_path / "in.png")
    dark_mean = np.asarray(Image.open(tmp_path / "in.png")).mean()
    assert main(["restore", str(tmp_path / "in.png"), str(tmp_path / "kept.png"), "--checkpoint", str(ckpt)]) == 0
    assert main(["restore", str(tmp_path / "in.png"), str(tmp_path / "fixed.png"), "--checkpoint", str(ckpt),
                 "--correct-tone"]) == 0
    assert np.asarray(Image.open(tmp_path / "kept.png")).mean() == pytest.approx(dark_mean, abs=0.5)
    assert np.asarray(Image.open(tmp_path / "fixed.png")).mean() > dark_mean + 30
