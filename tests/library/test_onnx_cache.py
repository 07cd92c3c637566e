"""The exported ONNX graphs are cached on disk by checkpoint SHA-256 and exporter version; corrupt entries rebuilt."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from denoise_core import export, inference
from denoise_core.checkpoint import load_checkpoint, save_checkpoint
from denoise_core.loading import load_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DENOISE_CACHE_DIR", str(tmp_path / "cache"))
    inference._load_runner_cached.cache_clear()
    yield tmp_path / "cache" / "onnx"
    inference._load_runner_cached.cache_clear()


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
    x = torch.rand(1, 3, 24, 40)
    first = inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
    y1 = first(x)
    assert calls == ["plain", "stats", "shared"]  # a NAF model: the two tiled-restore graphs too
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 3 and all(export.file_sha256(tiny_checkpoint)[:32] in f for f in files)
    assert all(export.exporter_version() in f for f in files)
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    inference._load_runner_cached.cache_clear()  # as a new process would start
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
    assert keys == {export.file_sha256(tiny_checkpoint)[:32], export.file_sha256(other)[:32]}


def test_corrupt_entry_is_rebuilt_with_a_warning(cache, monkeypatch, tiny_checkpoint, caplog):
    inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
    plain = next(p for p in cache.iterdir() if p.name.endswith("-plain.onnx"))
    plain.write_bytes(plain.read_bytes()[:1000])  # truncated, as by a full disk
    inference._load_runner_cached.cache_clear()
    calls = _count_exports(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="denoise_core"):
        run = inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
    assert "do not load" in caplog.text and "exporting them again" in caplog.text
    assert calls  # rebuilt
    reference = inference.TorchRunner(load_model(tiny_checkpoint))
    x = torch.rand(1, 3, 16, 16)
    assert np.allclose(run(x).numpy(), reference(x).numpy(), atol=1e-4)
    assert plain.stat().st_size > 1000  # the entry on disk is whole again


def test_unwritable_cache_still_restores(monkeypatch, tmp_path, tiny_checkpoint):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    monkeypatch.setenv("DENOISE_CACHE_DIR", str(blocker))
    inference._load_runner_cached.cache_clear()
    try:
        run = inference.load_runner(tiny_checkpoint, "cpu", "onnxruntime")
        assert run(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    finally:
        inference._load_runner_cached.cache_clear()
