"""The residual U-Net in bf16 on the CPU with oneDNN's fused convolutions.

Under bf16 autocast every ``ReLU`` and every residual ``x + body(x)`` is a separate
pass over a full-size activation, and at the finest level (32 channels at full
resolution) those passes cost as much as the convolutions. oneDNN fuses both into the
convolution that precedes them, as PyTorch's inductor does on the CPU: the first
convolution of a `ResBlock` applies its ReLU as a post-op, and the second one adds
its result into the block's input in place. Measured with the shipped model on this
project's CPU (512², 2 threads, `bench/perf.py`): 428 -> 291 ms per megapixel, with
the same bf16 rounding as autocast (largest difference from fp32 about 0.009 on noise).

The operators are ``torch.ops.mkldnn._convolution_pointwise`` (what inductor emits);
`fusable` says whether this PyTorch has them and the model has only residual blocks.
The output is float32 and the global skip ``+ input`` is taken in float32, so the
result is not quantised to bf16's 8-bit mantissa (a level near white).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .model import ResBlock, UNet, pad_to_multiple


def _ops():
    mkldnn = getattr(torch.ops, "mkldnn", None)
    try:
        return mkldnn._convolution_pointwise.default, mkldnn._convolution_pointwise_.binary
    except (AttributeError, RuntimeError):
        return None


def fusable(model: UNet) -> bool:
    """True when ``model`` is a residual U-Net on the CPU and this PyTorch has oneDNN's fused convolutions."""
    return (model.config.block == "res" and next(model.parameters()).device.type == "cpu"
            and torch.backends.mkldnn.is_available() and _ops() is not None)


class FusedUNet:
    """``(B, C, H, W)`` float32 -> float32, the model's forward in bf16 with fused convolutions; any H, W."""

    def __init__(self, model: UNet) -> None:
        if not fusable(model):
            raise ValueError("oneDNN fused convolutions need a residual U-Net on the CPU")
        self._conv, self._conv_add_ = _ops()
        # A bf16 copy: the fp32 model stays as it is for the other backends sharing it.
        self.net = copy.deepcopy(model).eval().to(torch.bfloat16).to(memory_format=torch.channels_last)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.multiple = model.multiple

    def conv(self, x: torch.Tensor, m: nn.Conv2d, post: str = "none") -> torch.Tensor:
        return self._conv(x, m.weight, m.bias, m.padding, m.stride, m.dilation, m.groups, post, [], "")

    def add_conv_(self, acc: torch.Tensor, x: torch.Tensor, m: nn.Conv2d) -> torch.Tensor:
        """``acc += conv(x)`` in place (oneDNN's sum post-op); returns ``acc``."""
        return self._conv_add_(acc, x, m.weight, m.bias, m.padding, m.stride, m.dilation, m.groups,
                               "add", 1.0, None, [], None)

    def stage(self, blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        # In place is safe: a stage's input is always a fresh tensor (a convolution's or a sum's output)
        # that nothing else reads, and the skips are the stages' outputs, which are not modified later.
        for block in blocks:
            assert isinstance(block, ResBlock)
            first, second = block.body[0], block.body[2]
            x = self.add_conv_(x, self.conv(x, first, "relu"), second)
        return x

    def forward_padded(self, inp: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = self.conv(net.unshuffle(inp).to(torch.bfloat16).contiguous(memory_format=torch.channels_last), net.intro)
        skips = []
        for encoder, down in zip(net.encoders, net.downs):
            x = self.stage(encoder, x)
            skips.append(x)
            x = self.conv(x, down)
        x = self.stage(net.middle, x)
        for up, decoder, skip in zip(net.ups, net.decoders, reversed(skips)):
            x = (F.pixel_shuffle(self.conv(x, up[0]), 2) + skip).contiguous(memory_format=torch.channels_last)
            x = self.stage(decoder, x)
        return net.shuffle(self.conv(x, net.ending).float()) + net.image_of(inp)

    def __call__(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        with torch.inference_mode():
            return self.forward_padded(pad_to_multiple(inp.float(), self.multiple))[..., :h, :w]
