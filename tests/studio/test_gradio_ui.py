"""The Gradio UI's functions in-process: checkpoint choices confined to the data root, the no-model
message, a factory that loads nothing, and decode errors turned into messages."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from conftest import TINY, make_image
from denoise_core import train
from studio import gradio_app as gradio_ui
from denoise_core.checkpoint import load_checkpoint

# The module, not the `restore` function the package re-exports under the same name.
import denoise_core.restoration as restore  # noqa: E402
from denoise_core import loading  # noqa: E402


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """best.pt of a one-epoch width-8 run (outside any data root; tests copy or link it)."""
    from conftest import make_image

    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(make_image(rng, 40 + 4 * i, 44)).save(folder / f"{i}.png")
    out = tmp_path_factory.mktemp("run") / "run"
    train(folder, epochs=1, val_ratio=0.3, save_path=out, device="cpu", **TINY)
    return out / "best.pt"


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "root"
    monkeypatch.setenv("DENOISE_DATA_ROOT", str(root))
    return root


@pytest.fixture
def no_default(monkeypatch, tmp_path):
    missing = tmp_path / "absent" / "default.pt"
    monkeypatch.setattr(loading, "DEFAULT_CHECKPOINT", missing)
    monkeypatch.setattr(gradio_ui, "DEFAULT_CHECKPOINT", missing)


def _run(root: Path, name: str, ckpt: Path) -> Path:
    run = root / "runs" / name
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(ckpt.read_bytes())
    return run


def test_build_demo_loads_no_model(root):
    loading._load_model_cached.cache_clear()
    demo = gradio_ui.build_demo()
    assert isinstance(demo, gr.Blocks)
    assert loading._load_model_cached.cache_info().currsize == 0
    assert {d.api_name for d in demo.fns.values()} >= {"restore", "degrade_and_restore"}


def test_no_model_gives_the_train_page_message(root, no_default, tmp_path):
    assert gradio_ui.checkpoint_choices() == []
    assert "No model yet: train one on the Train page" in gradio_ui._model_status([])
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    with pytest.raises(gr.Error, match="No model yet: train one on the Train page"):
        gradio_ui.restore_upload(str(tmp_path / "x.png"), None)
    with pytest.raises(gr.Error, match="not installed"):
        gradio_ui.resolve_checkpoint("default")


def test_default_comes_first_when_shipped(root, tiny_ckpt, monkeypatch):
    monkeypatch.setattr(loading, "DEFAULT_CHECKPOINT", tiny_ckpt)
    monkeypatch.setattr(gradio_ui, "DEFAULT_CHECKPOINT", tiny_ckpt)
    _run(root, "a", tiny_ckpt)
    ids = [v for _, v in gradio_ui.checkpoint_choices()]
    assert ids == ["default", "a"]
    assert gradio_ui.resolve_checkpoint("default") == tiny_ckpt


def test_runs_listed_newest_first_and_links_out_refused(root, no_default, tiny_ckpt, tmp_path):
    import os
    import time

    old = _run(root, "old", tiny_ckpt)
    os.utime(old / "best.pt", (time.time() - 100, time.time() - 100))
    _run(root, "new", tiny_ckpt)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "best.pt").write_bytes(tiny_ckpt.read_bytes())
    (root / "runs" / "linked-dir").symlink_to(outside, target_is_directory=True)
    (root / "runs" / "linked-file").mkdir()
    (root / "runs" / "linked-file" / "best.pt").symlink_to(outside / "best.pt")
    assert [v for _, v in gradio_ui.checkpoint_choices()] == ["new", "old"]
    assert gradio_ui.resolve_checkpoint("new") == (root / "runs" / "new" / "best.pt").resolve()
    for bad in ["linked-dir", "linked-file", "../outside", str(outside), "..", "", "new/../old"]:
        with pytest.raises(gr.Error):
            gradio_ui.resolve_checkpoint(bad)


def test_restore_upload_and_decode_errors(root, no_default, tiny_ckpt, tmp_path):
    _run(root, "r", tiny_ckpt)
    src = tmp_path / "la.png"
    Image.new("LA", (23, 17), (120, 200)).save(src)
    (before, after), png, note = gradio_ui.restore_upload(str(src), "r")
    assert Image.open(before).size == Image.open(after).size == (23, 17) and Image.open(after).mode == "RGBA"
    saved = Image.open(png)
    assert saved.mode == "LA" and saved.size == (23, 17) and Path(png).parent.parent.name == "denoise-studio-downloads"
    _, png2, _ = gradio_ui.restore_upload(str(src), "r")
    assert Path(png2).parent != Path(png).parent  # a fresh folder per request, never a shared path
    rgb = tmp_path / "rgb.png"
    Image.fromarray(make_image(np.random.default_rng(5), 29, 41)).save(rgb)
    _, png8, note8 = gradio_ui.restore_upload(str(rgb), "r", True)
    expected = restore.restore(Image.open(rgb), root / "runs" / "r" / "best.pt", device="cpu", ensemble=True)
    assert np.array_equal(np.asarray(Image.open(png8)), np.asarray(expected)) and "8 flipped" in note8
    with pytest.raises(gr.Error, match="Upload a degraded photo"):
        gradio_ui.restore_upload(None, "r")
    # PNGs whose headers claim huge sizes: refused from the header, before anything is decoded.
    for side, message in ((9000, "16 megapixels.*DENOISE_UI_MAX_PIXELS"), (20000, "decompression bomb")):
        huge = tmp_path / f"huge{side}.png"
        huge.write_bytes(_png_header(side, side))
        with pytest.raises(gr.Error, match=message):
            gradio_ui.restore_upload(str(huge), "r")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(w: int, h: int) -> bytes:
    """A PNG signature, an IHDR claiming w x h RGB and a tiny IDAT: enough for Pillow to read the size."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def test_degrade_and_restore_shrinks_big_images(root, no_default, tiny_ckpt, tmp_path):
    _run(root, "r", tiny_ckpt)
    big = tmp_path / "big.png"
    Image.new("RGB", (1600, 1000), (90, 140, 200)).save(big)
    clean, degraded, restored_img, table, note = gradio_ui.degrade_and_restore(str(big), None, "jpeg", 0.5, 1, "r")
    assert clean.size == degraded.size == restored_img.size
    assert clean.width * clean.height <= gradio_ui.MAX_TRY_PIXELS and "Resized from 1600x1000" in note
    with pytest.raises(gr.Error, match="Unknown degradation"):
        gradio_ui.degrade_and_restore(None, "astronaut.png", "nope", 0.5, 1, "r")
    with pytest.raises(gr.Error, match="pick one of the samples"):
        gradio_ui.degrade_and_restore(None, "../../etc/passwd", "jpeg", 0.5, 1, "r")


def test_model_status_says_what_the_model_was_trained_for(root, tiny_ckpt):
    _run(root, "mine", tiny_ckpt)
    choices = gradio_ui.checkpoint_choices()
    shipped = load_checkpoint(gradio_ui.DEFAULT_CHECKPOINT)
    text = gradio_ui._model_status(choices, gradio_ui.DEFAULT_ID)
    assert f"(epoch {shipped['epoch']})" in text
    assert all(name.replace("_", " ") in text for name in shipped["degradations"])
    run_text = gradio_ui._model_status(choices, "mine")
    assert "**mine**" in run_text and "Trained for: gaussian noise" in run_text and "(epoch 1)" in run_text


def test_the_denoise_level_is_estimated_on_upload_and_can_be_set(root, no_default, tiny_ckpt, tmp_path):
    _run(root, "r", tiny_ckpt)
    ckpt = root / "runs" / "r" / "best.pt"
    rng = np.random.default_rng(6)
    noisy = np.clip(make_image(rng, 48, 64).astype(np.float32) + 15 * rng.standard_normal((48, 64, 3)), 0, 255)
    src = tmp_path / "noisy.png"
    Image.fromarray(noisy.round().astype(np.uint8)).save(src)
    estimated = restore.estimate_noise_level(Image.open(src))
    slider, text = gradio_ui.estimate_upload(str(src))
    assert slider.value == round(estimated, 1) and f"**{estimated:.1f}**" in text
    _, auto_png, auto_note = gradio_ui.restore_upload(str(src), "r")
    assert f"noise level {estimated:.1f} estimated" in auto_note
    assert np.array_equal(np.asarray(Image.open(auto_png)),
                          np.asarray(restore.restore(Image.open(src), ckpt, device="cpu", noise_level=estimated)))
    _, set_png, set_note = gradio_ui.restore_upload(str(src), "r", False, False, 1.0, "png", False, 40.0)
    assert "noise level 40 as set" in set_note
    assert np.array_equal(np.asarray(Image.open(set_png)),
                          np.asarray(restore.restore(Image.open(src), ckpt, device="cpu", noise_level=40.0)))
    with pytest.raises(gr.Error, match="Noise level must be from 0 to 75"):
        gradio_ui.restore_upload(str(src), "r", False, False, 1.0, "png", False, 99.0)
