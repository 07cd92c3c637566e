"""Inference backends: one object per checkpoint that restores a batch, whole or as one tile of a larger image.

A runner maps (B, C, H, W) float32 in [0, 1] on the CPU (any H, W) to the same
shape on the CPU, not clipped:

- ``runner(x)``: the model on ``x`` as it is.
- ``runner.tile_stats(x, wy, wx)`` and ``runner.tile(x, stats)``: the two passes of
  a tiled restore (`denoise_core.restore.restore_tensor`). The NAF blocks'
  channel attention takes a global mean over the whole input
  (`UNet.attention_pools`), so a tile on its own sees different means than the
  whole image does, and tiles restored independently differ from the
  whole-image result by 1 dB or more with small tiles. So the first pass
  returns, per tile, every attention input summed with the tile's blending
  weights ``wy[:, None] * wx[None, :]`` ((B, S) "sums"); the second restores each
  tile with the whole image's means ``stats`` (B, S) in place of its own.

Backends:

- ``"onnxruntime"``: the model exported to ONNX (`denoise_core.export`) run by
  onnxruntime on the CPU; about twice the speed of PyTorch here (see
  ``bench/perf.py``), so it is the default on the CPU whenever onnxruntime is
  installed. The export takes about a second, once per checkpoint and process.
- ``"torch"``: the PyTorch model under ``inference_mode`` with channels_last
  weights and inputs; the default on CUDA/MPS, and the fallback on the CPU
  when onnxruntime is missing or the export fails.

``"auto"`` picks as above; the ``DENOISE_BACKEND`` environment variable
(``torch`` or ``onnxruntime``) overrides it.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .device import pick_device
from .model import UNet, pad_to_multiple

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")


class Runner(Protocol):
    backend: str
    channels: int
    multiple: int  # H and W are padded to a multiple of this (2 ** depth)
    stat_layout: list[tuple[int, int]]  # (level, channels) per attention pool; empty: nothing to share

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def tile_stats(self, x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor: ...

    def tile(self, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor: ...


def _hook_attention(model: UNet, hook) -> list:
    """Install ``hook(j, level, input, mean) -> mean`` on every attention pool; returns the handles."""
    return [pool.register_forward_hook(lambda module, args, mean, j=j, level=level: hook(j, level, args[0], mean))
            for j, (pool, level, _) in enumerate(model.attention_pools())]


class StatsGraph(nn.Module):
    """First pass of a tiled restore: ``(x, wy, wx) -> sums`` (B, S).

    ``x`` (B, C, H, W) with H, W multiples of ``model.multiple``; ``wy`` (H,), ``wx`` (W,)
    per-pixel weights. ``sums``: each attention input summed over H, W with the weights
    averaged down to its resolution, concatenated over the pools. One implementation
    for eager PyTorch and for the ONNX export, so both agree.
    """

    def __init__(self, model: UNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
        sums: dict[int, torch.Tensor] = {}

        def record(j, level, f, mean):
            s = 2**level
            # Two matrix-vector products: no full-size temporary.
            sums[j] = (f @ wx.reshape(-1, s).mean(1)) @ wy.reshape(-1, s).mean(1)
            return mean

        handles = _hook_attention(self.model, record)
        try:
            self.model.forward_padded(x)  # the output is not needed (the ONNX export drops what leads only to it)
        finally:
            for handle in handles:
                handle.remove()
        return torch.cat([sums[j] for j in sorted(sums)], 1)


class SharedStatsGraph(nn.Module):
    """Second pass of a tiled restore: ``(x, stats) -> y``, the model with every attention
    mean taken from ``stats`` (B, S) instead of from ``x``."""

    def __init__(self, model: UNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        offsets = [0]
        for _, c in stat_layout(self.model):
            offsets.append(offsets[-1] + c)

        def replace(j, level, f, mean):
            return stats[:, offsets[j] : offsets[j + 1], None, None].to(mean.dtype)

        handles = _hook_attention(self.model, replace)
        try:
            return self.model.forward_padded(x)
        finally:
            for handle in handles:
                handle.remove()


def stat_layout(model: UNet) -> list[tuple[int, int]]:
    return [(level, c) for _, level, c in model.attention_pools()]


def pad_tile_inputs(x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor, multiple: int):
    """Pad a tile like the model pads its input, with zero weight on the padding."""
    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, multiple)
    hp, wp = xp.shape[-2:]
    return xp, F.pad(wy.float(), (0, hp - h)), F.pad(wx.float(), (0, wp - w))


class TorchRunner:
    """A PyTorch model as a runner; feeds channels_last inputs when its weights are channels_last."""

    backend = "torch"

    def __init__(self, model: UNet) -> None:
        self.model = model
        self.stats_graph, self.shared_graph = StatsGraph(model), SharedStatsGraph(model)
        first = model.intro.weight
        self.device = first.device
        self.channels = model.config.channels
        self.multiple = model.multiple
        self.stat_layout = stat_layout(model)
        self.channels_last = first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous()

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._in(x)).float().cpu()

    @torch.inference_mode()
    def tile_stats(self, x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
        xp, wyp, wxp = pad_tile_inputs(x, wy, wx, self.model.multiple)
        return self.stats_graph(self._in(xp), wyp.to(self.device), wxp.to(self.device)).double().cpu()

    @torch.inference_mode()
    def tile(self, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = pad_to_multiple(x, self.model.multiple)
        return self.shared_graph(self._in(xp), stats.float().to(self.device))[..., :h, :w].float().cpu()


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend ``"auto"`` stands for on ``device``; validates explicit choices."""
    from .export import onnxruntime_available

    if backend == "auto":
        backend = os.environ.get("DENOISE_BACKEND", "auto") or "auto"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "onnxruntime" if device.type == "cpu" and onnxruntime_available() else "torch"
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU, not on {device}")
        if not onnxruntime_available():
            raise ValueError("backend 'onnxruntime' was requested but onnxruntime (or onnx) is not installed")
    return backend


def load_runner(checkpoint: str | Path | None = None, device: str | torch.device = "auto", backend: str = "auto") -> Runner:
    """A cached runner for a checkpoint (default: the shipped one); see the module docstring for backends."""
    from .restore import DEFAULT_CHECKPOINT

    dev = pick_device(device) if isinstance(device, str) else torch.device(device)
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    stat = path.stat() if path.is_file() else None
    concrete = resolve_backend(backend, dev)
    return _load_runner_cached(str(path.resolve()), stat.st_mtime_ns if stat else 0, str(dev), concrete, backend == "auto")


@functools.lru_cache(maxsize=4)
def _load_runner_cached(path: str, mtime_ns: int, device: str, backend: str, fallback: bool) -> Runner:
    from .restore import load_model

    model = load_model(path, device)
    if backend == "onnxruntime":
        from .export import OnnxRunner

        try:
            return OnnxRunner.from_model(model)
        except Exception as exc:  # noqa: BLE001 -- whatever broke the export or the session, PyTorch still works
            if not fallback:
                raise
            log.warning("onnxruntime backend unavailable for %s (%s: %s); using PyTorch", Path(path).name, type(exc).__name__, exc)
    # channels_last is faster for these convolutions on CPU and GPU; it changes only the
    # memory layout of the cached model, not its results.
    model.to(memory_format=torch.channels_last)
    return TorchRunner(model)
