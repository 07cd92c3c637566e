"""The two passes of a tiled restore as modules, shared by eager PyTorch and the ONNX export.

The NAF blocks' channel attention takes a global mean over the whole input
(`UNet.attention_pools`), so a tile on its own sees different means than the whole
image does. `StatsGraph` returns, per tile, every attention input summed with the
tile's blending weights; `SharedStatsGraph` restores a tile with the whole image's
means in place of its own (`denoise_core.restoration.restore_tensor` drives both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .model import UNet, pad_to_multiple


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
