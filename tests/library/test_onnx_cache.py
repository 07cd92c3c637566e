"""The exported ONNX graphs are cached on disk by checkpoint SHA-256 and exporter version; corrupt entries rebuilt."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from denoise_core import export, inference
from denoise_core.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from denoise_core.loading import load_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DENOISE_CACHE_DIR", str(tmp_path / "cache"))
    _new_process()
    yield tmp_path / "cache" / "onnx"
    _new_process()


def _new_process() -> None:
    """Forget the runners this process built, as a new process would start."""
    inference._load_runner_cached.cache_clear()
    inference._fast_runner_cached.cache_clear()


def _count_exports(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = export.onnx_model_bytes

    def counting(model, exporter="torchscript", graph="plain"):
        calls.append(graph)
        return real(model, exporter, graph)

    monkeypatch.setattr(export, "onnx_model_bytes", counting)
    return calls


def test_second_process_reuses_the_export(cache, monkeypatch, tiny_checkpoint):
    calls = _count_exports(monkeypatch)
    x = torch.rand(1, 4, 24, 40)  # the image and its noise map
    first = inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
    y1 = first(x)
    assert calls == ["plain", "stats", "shared"]  # a NAF model: the two tiled-restore graphs too
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 3 and all(file_sha256(tiny_checkpoint)[:32] in f for f in files)
    assert all(export.exporter_version() in f for f in files)
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    _new_process()
    again = inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
    assert again is not first and calls == ["plain", "stats", "shared"]  # nothing exported the second time
    assert torch.equal(again(x), y1)


def test_another_checkpoint_gets_its_own_entry(cache, monkeypatch, tiny_checkpoint, tmp_path):
    inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
    other = tmp_path / "other.pt"
    save_checkpoint(other, {**load_checkpoint(tiny_checkpoint), "note": "same weights, other file"})
    calls = _count_exports(monkeypatch)
    inference.load_runner(other, "cpu", "onnxruntime")
    assert calls == ["plain", "stats", "shared"]  # keyed by the file's content, not by the weights or the name
    keys = {p.name.split("-")[0] for p in cache.iterdir()}
    assert keys == {file_sha256(tiny_checkpoint)[:32], file_sha256(other)[:32]}


def test_corrupt_entry_is_rebuilt_with_a_warning(cache, monkeypatch, tiny_checkpoint, caplog):
    inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
    plain = next(p for p in cache.iterdir() if p.name.endswith("-plain.onnx"))
    plain.write_bytes(plain.read_bytes()[:1000])  # truncated, as by a full disk
    _new_process()
    calls = _count_exports(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="denoise_core"):
        run = inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
    assert "do not load" in caplog.text and "exporting them again" in caplog.text
    assert calls  # rebuilt
    reference = inference.TorchRunner(load_model(tiny_checkpoint))
    x = torch.rand(1, 4, 16, 16)  # the image and its noise map
    assert np.allclose(run(x).numpy(), reference(x).numpy(), atol=1e-4)
    assert plain.stat().st_size > 1000  # the entry on disk is whole again


def test_unwritable_cache_still_restores(monkeypatch, tmp_path, tiny_checkpoint):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    monkeypatch.setenv("DENOISE_CACHE_DIR", str(blocker))
    _new_process()
    try:
        run = inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
        assert run(torch.rand(1, 4, 16, 16)).shape == (1, 3, 16, 16)
    finally:
        _new_process()


def test_a_cached_restore_never_imports_torch(cache, tiny_checkpoint, tmp_path):
    """With the graphs cached, the command line restores one photo with a torch that cannot be imported (the 2 s it
    saves): for one photo ``auto`` means onnxruntime even on a CPU where it otherwise means bf16."""
    from PIL import Image

    photo = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(photo)
    poison = tmp_path / "poison" / "torch"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    root = Path(__file__).parents[2]
    env = {**os.environ, "DENOISE_CACHE_DIR": str(cache.parent), "PYTHONPATH": f"{poison.parent}{os.pathsep}{root}"}
    cmd = [sys.executable, "-m", "denoise_core", "restore", str(photo), str(tmp_path / "out.png"), "--checkpoint",
           str(tiny_checkpoint), "--no-progress"]

    cold = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert cold.returncode == 2 and "torch was imported" in cold.stderr  # nothing cached: the checkpoint needs torch
    assert not (tmp_path / "out.png").exists()
    inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")  # exports the graphs into the cache
    warm = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert warm.returncode == 0, warm.stderr[-2000:]
    # The same pixels as a restore through PyTorch's loading path in this process.
    from denoise_core.restoration import restore

    expected = np.asarray(restore(Image.open(photo), tiny_checkpoint, backend="torch"), dtype=np.int16)
    assert np.abs(np.asarray(Image.open(tmp_path / "out.png"), dtype=np.int16) - expected).max() <= 1


@pytest.mark.parametrize("native_bf16", [False, True])
def test_auto_takes_the_cached_graphs_only_where_it_means_onnxruntime(cache, monkeypatch, tiny_checkpoint, native_bf16):
    inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")  # the graphs are now cached
    _new_process()
    monkeypatch.setattr(inference, "cpu_bf16_flag", lambda: native_bf16)
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: native_bf16)
    run = inference.load_runner(tiny_checkpoint, "cpu", "auto")
    assert run.backend == ("bf16" if native_bf16 else "onnxruntime")


def test_one_photo_on_the_command_line_means_onnxruntime_only_for_auto(monkeypatch):
    monkeypatch.delenv("DENOISE_BACKEND", raising=False)
    assert inference.startup_backend("auto", "cpu") == "onnxruntime"
    assert inference.startup_backend("bf16", "cpu") == "bf16"  # asked for: kept
    monkeypatch.setenv("DENOISE_BACKEND", "torch")
    assert inference.startup_backend("auto", "cpu") == "auto"  # the environment's choice stands
    monkeypatch.delenv("DENOISE_BACKEND")
    monkeypatch.setattr(inference, "onnxruntime_available", lambda: False)
    assert inference.startup_backend("auto", "cpu") == "auto"


@pytest.mark.parametrize("native_bf16", [True, False, None])
def test_a_big_photo_on_the_command_line_keeps_bf16(monkeypatch, native_bf16):
    """From `STARTUP_BF16_PIXELS` up bf16 wins back torch's import, where the CPU has it (None: unknown, torch decides)."""
    monkeypatch.delenv("DENOISE_BACKEND", raising=False)
    monkeypatch.setattr(inference, "onnxruntime_available", lambda: True)
    monkeypatch.setattr(inference, "cpu_bf16_flag", lambda: native_bf16)
    big, small = inference.STARTUP_BF16_PIXELS, inference.STARTUP_BF16_PIXELS - 1
    assert inference.startup_backend("auto", "cpu", small) == "onnxruntime"
    assert inference.startup_backend("auto", "cpu", None) == "onnxruntime"
    assert inference.startup_backend("auto", "cpu", big) == ("onnxruntime" if native_bf16 is False else "auto")
    assert inference.startup_backend("onnxruntime", "cpu", big) == "onnxruntime"  # asked for: kept
