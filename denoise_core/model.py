"""U-Net autoencoder with skip connections.

The encoder halves the resolution ``depth`` times down to a low-resolution
latent; the decoder doubles it back, adding the matching encoder features at
each level (skip connections). The network predicts a residual that is added
to the input. Any H x W works: the input is padded to a multiple of
``2 ** depth`` and the output cropped back.

Blocks: ``"naf"`` (NAFNet-style: LayerNorm, depthwise conv, SimpleGate,
simplified channel attention; more quality per FLOP) or ``"res"`` (two 3x3
convs with ReLU and a skip; dense convolutions, about twice the training steps
per second in bf16 on a CPU with AVX-512 BF16).

Stem: ``"conv"`` (a 3x3 conv at full resolution) or ``"unshuffle"`` (FFDNet's
pixel-unshuffle: each 2x2 block of pixels becomes 4C channels, so every level
runs at half the resolution; the ending convolution predicts 4C channels that
a pixel shuffle puts back).

Noise map (``noise_map=True``): the input has one more channel than the image, a map of the noise level the model
is told (FFDNet's and DRUNet's conditioning; `denoise_core.noise_level` builds it). The residual is added to the
image channels only, so the output has ``channels`` channels. A model without the map grows one (`load_grown`) with
the map's weights at zero, computing exactly what it did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .arrays import pad_plan


@dataclass
class ModelConfig:
    """Constructor arguments of `UNet`; stored in every checkpoint."""

    channels: int = 3
    width: int = 32
    depth: int = 3
    enc_blocks: list[int] = field(default_factory=lambda: [1, 1, 2])
    middle_blocks: int = 2
    dec_blocks: list[int] = field(default_factory=lambda: [1, 1, 1])
    block: str = "naf"
    stem: str = "conv"
    noise_map: bool = False

    @property
    def in_channels(self) -> int:
        """Input channels: the image's, and the noise map's when the model takes one."""
        return self.channels + int(self.noise_map)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.depth < 1 or self.width < 4:
            raise ValueError(f"need depth >= 1 and width >= 4, got depth={self.depth}, width={self.width}")
        if self.block not in ("naf", "res"):
            raise ValueError(f"block must be 'naf' or 'res', got {self.block!r}")
        if self.stem not in ("conv", "unshuffle"):
            raise ValueError(f"stem must be 'conv' or 'unshuffle', got {self.stem!r}")
        self.enc_blocks = _per_level(self.enc_blocks, self.depth, "enc_blocks")
        self.dec_blocks = _per_level(self.dec_blocks, self.depth, "dec_blocks")

    def to_dict(self) -> dict:
        return asdict(self)


def _per_level(blocks: list[int] | int, depth: int, name: str) -> list[int]:
    if isinstance(blocks, int):
        return [blocks] * depth
    blocks = list(blocks)
    if len(blocks) < depth:  # a deeper net repeats the last level's count
        blocks = blocks + [blocks[-1] if blocks else 1] * (depth - len(blocks))
    if len(blocks) != depth:
        blocks = blocks[:depth]
    if any(b < 0 for b in blocks):
        raise ValueError(f"{name} must be non-negative, got {blocks}")
    return blocks


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) tensor, as in NAFNet."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same maths as normalising by hand over dim 1, but one fused kernel (and one
        # ONNX LayerNormalization node) instead of eight elementwise passes; on a
        # channels_last tensor the permute is free.
        shape = tuple(self.weight.shape)  # static, so ONNX export does not read it from x
        return F.layer_norm(x.permute(0, 2, 3, 1), shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """NAFNet block: gated depthwise-conv mixer then gated feed-forward, both residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.dw = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.conv2 = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.ffn1 = nn.Conv2d(c, 2 * c, 1)
        self.ffn2 = nn.Conv2d(c, c, 1)
        # Zero-initialised residual scales: each block starts as the identity.
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.dw(self.conv1(self.norm1(x))))
        y = self.conv2(y * self.sca(y))
        x = x + self.beta * y
        y = self.ffn2(self.gate(self.ffn1(self.norm2(x))))
        return x + self.gamma * y


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a ReLU between them and an identity skip."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UNet(nn.Module):
    """Residual U-Net: ``(B, C, H, W)`` float in [0, 1] -> same shape (not clipped)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        cfg = self.config
        block = NAFBlock if cfg.block == "naf" else ResBlock
        self.scale = 2 if cfg.stem == "unshuffle" else 1  # resolution of level 0 is 1 / scale
        c_io = cfg.channels * self.scale**2
        self.unshuffle = nn.PixelUnshuffle(self.scale) if self.scale > 1 else nn.Identity()
        self.shuffle = nn.PixelShuffle(self.scale) if self.scale > 1 else nn.Identity()
        self.intro = nn.Conv2d(cfg.in_channels * self.scale**2, cfg.width, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        c = cfg.width
        for n in cfg.enc_blocks:
            self.encoders.append(nn.Sequential(*[block(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[block(c) for _ in range(cfg.middle_blocks)])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for n in reversed(cfg.dec_blocks):
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[block(c) for _ in range(n)]))
        self.ending = nn.Conv2d(cfg.width, c_io, 3, padding=1)

    @property
    def multiple(self) -> int:
        return 2**self.config.depth * self.scale

    def attention_pools(self) -> list[tuple[nn.Module, int, int]]:
        """(pool module, level, channels) of every NAF block's channel attention, in execution order.

        Level ``l`` runs at ``1 / 2**l`` of the input resolution (the stem's halving included). These global means make the
        output depend on the whole input; tiled inference shares them across tiles
        (`denoise_core.inference`). Empty for ``"res"`` blocks.
        """
        shift = self.scale.bit_length() - 1
        return [(blk.sca[0], level + shift, blk.sca[1].in_channels)
                for _, level, stage in self.stage_blocks() for blk in stage if isinstance(blk, NAFBlock)]

    def stage_blocks(self) -> list[tuple[str, int, nn.Sequential]]:
        """(kind, level, blocks) of every stage: ``"enc"``/``"dec"`` per level and ``"middle"`` at level ``depth``."""
        d = self.config.depth
        return [*(("enc", i, enc) for i, enc in enumerate(self.encoders)), ("middle", d, self.middle),
                *(("dec", d - 1 - k, dec) for k, dec in enumerate(self.decoders))]

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        return self.forward_padded(pad_to_multiple(inp, self.multiple))[..., :h, :w]

    def forward_padded(self, inp: torch.Tensor) -> torch.Tensor:
        """The network on an input whose H and W are multiples of `multiple` (no shape logic: exportable)."""
        x = self.intro(self.unshuffle(inp))
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(up(x) + skip)
        return self.shuffle(self.ending(x)) + self.image_of(inp)

    def image_of(self, inp: torch.Tensor) -> torch.Tensor:
        """The image channels of an input (all of it without a noise map)."""
        return inp[:, : self.config.channels] if self.config.noise_map else inp


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (..., H, W) at the bottom/right so H and W are multiples of ``multiple`` (`arrays.pad_plan`)."""
    ph, pw, reflect = pad_plan(*x.shape[-2:], multiple)
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if reflect else "replicate")


def build_model(config: ModelConfig | dict | None = None) -> UNet:
    """Build a `UNet` from a `ModelConfig` or its dict form (as stored in checkpoints)."""
    if isinstance(config, dict):
        config = ModelConfig(**config)
    return UNet(config)


def _block_counts(cfg: ModelConfig) -> list[int]:
    """Blocks per stage in `UNet.stage_blocks` order."""
    return [*cfg.enc_blocks, cfg.middle_blocks, *reversed(cfg.dec_blocks)]


def check_growth(old: ModelConfig, new: ModelConfig) -> None:
    """Raise ValueError unless ``new`` is ``old`` with the same or more blocks in every stage."""
    same = ("channels", "width", "depth", "block", "stem")
    differing = [f"{k} {getattr(old, k)} -> {getattr(new, k)}" for k in same if getattr(old, k) != getattr(new, k)]
    if old.noise_map and not new.noise_map:
        differing.append("noise_map True -> False")
    if differing:
        raise ValueError("a model can only grow by blocks; " + ", ".join(differing))
    fewer = [(a, b) for a, b in zip(_block_counts(old), _block_counts(new)) if b < a]
    if fewer:
        raise ValueError(f"a model can only grow: blocks per stage {_block_counts(old)} -> {_block_counts(new)}")


def load_grown(model: UNet, state: dict[str, torch.Tensor], old: ModelConfig | dict) -> None:
    """Load the weights of a smaller model ``old`` into ``model``, which has at least as many blocks per stage,
    and a noise map if ``old`` has one.

    The extra blocks (appended to each stage) get their residual branch zeroed, so each
    starts as the identity; a new noise map gets zero weights in the first convolution. So ``model`` computes
    exactly what the smaller one did, and training grows them from there.
    """
    old = ModelConfig(**old) if isinstance(old, dict) else old
    check_growth(old, model.config)
    if model.config.noise_map and not old.noise_map:
        state = dict(state)
        w = state["intro.weight"]
        grown = torch.zeros_like(model.intro.weight, dtype=w.dtype, device=w.device)
        per = model.scale**2  # a pixel-unshuffled input holds each input channel's 4 phases together
        grown[:, : old.channels * per] = w
        state["intro.weight"] = grown
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"weights not in the grown model: {result.unexpected_keys[:5]}")
    new_blocks = [blk for (_, _, stage), n in zip(model.stage_blocks(), _block_counts(old)) for blk in list(stage)[n:]]
    own = {id(p) for blk in new_blocks for p in blk.parameters()}
    missing = [k for k, p in model.named_parameters() if k in result.missing_keys and id(p) not in own]
    if missing:
        raise ValueError(f"weights missing for existing layers: {missing[:5]}")
    with torch.no_grad():
        for blk in new_blocks:
            if isinstance(blk, NAFBlock):
                blk.beta.zero_()
                blk.gamma.zero_()
            else:
                last = blk.body[-1]
                last.weight.zero_()
                last.bias.zero_()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
