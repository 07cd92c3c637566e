"""Inference backends: one object per checkpoint that restores a batch, whole or as one tile of a larger image.

A runner maps (B, C, H, W) float32 in [0, 1] on the CPU (any H, W) to the same
shape on the CPU, not clipped:

- ``runner(x)``: the model on ``x`` as it is.
- ``runner.tile(x, wy, wx, stats)``: the model on one tile of a larger image,
  for `denoise_core.restore.restore_tensor`. The NAF blocks' channel attention
  takes a global mean over the whole input (`UNet.attention_pools`), so a tile
  on its own sees different means than the whole image does, and tiles
  restored independently differ from the whole-image result by 1 dB or more
  with small tiles. Tiling therefore shares the means: it returns, next to the
  output, the attention inputs summed with the tile's blending weights
  ``wy[:, None] * wx[None, :]`` (``sums``, (B, S)), and given ``stats``
  (B, S) it uses them in place of the tile's own means.

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
    stat_layout: list[tuple[int, int]]  # (level, channels) per attention pool; empty: nothing to share

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def tile(
        self, x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor, stats: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


class TileGraph(nn.Module):
    """`UNet.forward_padded` with its attention means exposed: ``(x, wy, wx, stats, mix) -> (y, sums)``.

    ``x`` (B, C, H, W) with H, W multiples of ``model.multiple``; ``wy`` (H,), ``wx`` (W,)
    per-pixel weights; ``stats`` (B, S) means to use where ``mix`` (1,) is 1 (0: the
    input's own means, i.e. the plain model). ``sums`` (B, S): each attention input
    summed over H, W with weights ``wy`` x ``wx`` averaged down to its resolution.
    One implementation for eager PyTorch and for the ONNX export, so both agree.
    """

    def __init__(self, model: UNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor, stats: torch.Tensor, mix: torch.Tensor):
        pools = self.model.attention_pools()
        sums: list[torch.Tensor | None] = [None] * len(pools)
        handles, offset = [], 0
        for j, (pool, level, c) in enumerate(pools):
            s = 2**level
            wyl, wxl = wy.reshape(-1, s).mean(1), wx.reshape(-1, s).mean(1)
            fixed = stats[:, offset : offset + c, None, None]
            offset += c

            def hook(module, args, mean, j=j, wyl=wyl, wxl=wxl, fixed=fixed):
                sums[j] = torch.einsum("bchw,h,w->bc", args[0], wyl, wxl)
                return mean + mix * (fixed - mean)

            handles.append(pool.register_forward_hook(hook))
        try:
            y = self.model.forward_padded(x)
        finally:
            for handle in handles:
                handle.remove()
        return y, torch.cat(sums, 1)


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
        self.graph = TileGraph(model)
        first = model.intro.weight
        self.device = first.device
        self.channels = model.config.channels
        self.stat_layout = stat_layout(model)
        self.channels_last = first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous()

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._in(x)).float().cpu()

    @torch.inference_mode()
    def tile(self, x, wy, wx, stats):
        h, w = x.shape[-2:]
        xp, wyp, wxp = pad_tile_inputs(x, wy, wx, self.model.multiple)
        s = sum(c for _, c in self.stat_layout)
        mix = torch.ones(1) if stats is not None else torch.zeros(1)
        stats = stats if stats is not None else torch.zeros(x.shape[0], s)
        dev = self.device
        y, sums = self.graph(self._in(xp), wyp.to(dev), wxp.to(dev), stats.float().to(dev), mix.to(dev))
        return y[..., :h, :w].float().cpu(), sums.double().cpu()


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
        from .export import OnnxRunner, onnx_model_bytes

        try:
            return OnnxRunner(onnx_model_bytes(model, tiling=True))
        except Exception as exc:  # noqa: BLE001 -- whatever broke the export or the session, PyTorch still works
            if not fallback:
                raise
            log.warning("onnxruntime backend unavailable for %s (%s: %s); using PyTorch", Path(path).name, type(exc).__name__, exc)
    # channels_last is faster for these convolutions on CPU and GPU; it changes only the
    # memory layout of the cached model, not its results.
    model.to(memory_format=torch.channels_last)
    return TorchRunner(model)
