"""Restoring images with a trained checkpoint, whole or in overlapping tiles.

`restore` takes a PIL image or a numpy array and gives back the same type,
size and mode. Images larger than ``tile`` are processed in overlapping tiles
cross-faded with linear ramps, so memory stays bounded and no seams show; the
tiles share the whole image's channel-attention statistics (`restore_tensor`),
so the result matches a whole-image restore. Inference runs on the fastest
installed backend (`denoise_core.inference`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .images import JPEG_QUALITY, has_alpha, metadata, rgb_to_cmyk, save_image, to_float_rgb
from .inference import Runner, TorchRunner, load_runner
from .loading import DEFAULT_CHECKPOINT, load_model
from .model import pad_to_multiple
from .tone import keep_tone

log = logging.getLogger(__name__)

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32


def _ramp(n: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    """Blend weights along one side of a tile: linear ramps over ``overlap`` pixels on the
    ends that overlap a neighbour (never reaching 0), 1 elsewhere."""
    w = torch.ones(n, dtype=torch.float64)
    r = torch.arange(1, overlap + 1, dtype=torch.float64) / (overlap + 1)
    if rise and overlap:
        w[:overlap] = r
    if fall and overlap:
        w[-overlap:] = torch.minimum(w[-overlap:], r.flip(0))
    return w


def _starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _axis_weights(size: int, tile: int, overlap: int) -> tuple[list[int], list[torch.Tensor]]:
    """Tile starts along one axis, and each tile's blending weights (length ``tile``),
    normalised so the weights of all tiles covering a pixel sum to 1."""
    starts = _starts(size, tile, tile - overlap)
    full = torch.zeros(len(starts), size, dtype=torch.float64)
    for i, s in enumerate(starts):
        full[i, s : s + tile] = _ramp(tile, overlap, s > 0, s + tile < size)
    full /= full.sum(0)
    return starts, [full[i, s : s + tile].float() for i, s in enumerate(starts)]


def _shared_stats(run: Runner, x: torch.Tensor, tiles: list, tops, wys, lefts, wxs, size: tuple[int, int]) -> torch.Tensor:
    """Whole-image means of every attention input, (B, S), pooled from all tiles with their blending weights.

    All tiles, not a sample: the model is sensitive to these means, and with an evenly
    spread quarter of the tiles a tiled restore already drifts 0.2 dB from the whole one.
    """
    th, tw = size
    layout = run.stat_layout
    total = torch.zeros(x.shape[0], sum(c for _, c in layout), dtype=torch.float64)
    weight = torch.zeros(total.shape[1], dtype=torch.float64)
    for i, j in tiles:
        top, left = tops[i], lefts[j]
        total += run.tile_stats(x[..., top : top + th, left : left + tw], wys[i], wxs[j])
        # Weights averaged down to level l keep their sum divided by 2**l per axis.
        area = wys[i].double().sum() * wxs[j].double().sum()
        weight += torch.cat([torch.full((c,), float(area) / 4**level, dtype=torch.float64) for level, c in layout])
    return (total / weight).float()


def dihedral(x: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
    """View ``k`` (0-7) of the 8 flips and 90-degree rotations of (..., H, W); ``inverse`` undoes it."""
    turns, flip = k % 4, k >= 4
    if inverse:
        x = torch.rot90(x, -turns, (-2, -1))
        return x.flip(-1) if flip else x
    return torch.rot90(x.flip(-1) if flip else x, turns, (-2, -1))


@torch.inference_mode()
def restore_tensor(
    model: torch.nn.Module | Runner,
    x: torch.Tensor,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    share_stats: bool = True,
    ensemble: bool = False,
) -> torch.Tensor:
    """Restore ``x`` (B, C, H, W) float in [0, 1] with a model or a runner (`load_runner`); output clipped to [0, 1].

    Images with a side above ``tile`` are restored in ``tile``-sized tiles overlapping by
    ``overlap`` pixels (both rounded to the model's multiple of 8, below) and cross-faded
    with linear ramps, so memory stays bounded. Tiles
    share the whole image's channel-attention means (see `denoise_core.inference`) when
    ``share_stats`` (the default): a first pass over the tiles pools those means, the
    second restores every tile with them, so the result matches a whole-image restore
    to a few hundredths of a dB even with small tiles (independent tiles: 1 dB and more
    off with small tiles). Sharing doubles the work; ``share_stats=False`` skips it.

    ``ensemble``: the mean of the restores of all 8 flips and 90-degree rotations (the
    geometric self-ensemble): 8x the time, +0.16 dB on average over the benchmark's
    settings (its ``model_x8`` method).
    """
    run = model if hasattr(model, "tile_stats") else TorchRunner(model)
    m = run.multiple
    h, w = x.shape[-2:]
    # Padded once like the model pads a whole image, with tiles and their overlaps on the
    # model's 2**depth grid: every tile and every flipped or rotated view then meets the
    # image's 8x8 JPEG blocks where training did (crops are compressed from their corner),
    # which is worth about 1 dB on JPEG input against a misaligned tile.
    x = pad_to_multiple(x, m)
    if tile is not None:
        if overlap * 2 >= tile:
            raise ValueError(f"overlap {overlap} must be less than half the tile size {tile}")
        tile, overlap = max(m, tile // m * m), -(-overlap // m) * m
        overlap = min(overlap, (tile // 2 - 1) // m * m)
    views = range(8) if ensemble else range(1)
    out = sum(dihedral(_restore_padded(run, dihedral(x, k), tile, overlap, share_stats), k, inverse=True) for k in views)
    return (out / len(views))[..., :h, :w].clamp_(0, 1)


def _restore_padded(run: Runner, x: torch.Tensor, tile: int | None, overlap: int, share_stats: bool) -> torch.Tensor:
    b, c, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return run(x).clamp_(0, 1)
    th, tw = min(tile, h), min(tile, w)
    tops, wys = _axis_weights(h, th, overlap)
    lefts, wxs = _axis_weights(w, tw, overlap)
    tiles = [(i, j) for i in range(len(tops)) for j in range(len(lefts))]
    stats = _shared_stats(run, x, tiles, tops, wys, lefts, wxs, (th, tw)) if share_stats and run.stat_layout else None
    out = torch.zeros(b, c, h, w)
    for i, j in tiles:
        top, left = tops[i], lefts[j]
        patch = x[..., top : top + th, left : left + tw]
        y = run(patch) if stats is None else run.tile(patch, stats)
        out[..., top : top + th, left : left + tw] += y.clamp_(0, 1) * (wys[i][:, None] * wxs[j][None, :])
    return out.clamp_(0, 1)  # the blend weights sum to 1 only up to rounding


def restore_rgb(
    run: Runner, x: torch.Tensor, tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, share_stats: bool = True,
    ensemble: bool = False, correct_tone: bool = False,
) -> torch.Tensor:
    """`restore_tensor` for colour input (B, 3, H, W) with a 1- or 3-channel runner; a grey model
    restores each colour channel as its own image. Unless ``correct_tone``, the result keeps the
    input's tone and colour (`denoise_core.tone.keep_tone`)."""
    if run.channels == 1:
        b, c, h, w = x.shape
        y = restore_tensor(run, x.reshape(b * c, 1, h, w), tile, overlap, share_stats, ensemble).reshape(b, c, h, w)
    else:
        y = restore_tensor(run, x, tile, overlap, share_stats, ensemble)
    return y if correct_tone else keep_tone(x, y)


def _to_float(image: Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) float32 colour and optional alpha."""
    if isinstance(image, Image.Image):
        return to_float_rgb(image)
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        f = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        f = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        f = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported array dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    if f.ndim == 2:
        f = f[..., None]
    alpha = f[..., 3] if f.shape[2] == 4 else None
    rgb = f[..., :3] if f.shape[2] >= 3 else np.repeat(f, 3, axis=2)
    return np.ascontiguousarray(rgb), alpha


def _from_float(rgb: np.ndarray, alpha: np.ndarray | None, original: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
    if isinstance(original, Image.Image):
        mode = original.mode
        u8 = (rgb * 255.0).round().astype(np.uint8)
        out = Image.fromarray(u8, "RGB")
        if mode.startswith("I;16") or mode == "I":
            gray = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) * 65535.0
            # uint16 arrays become mode I;16, int32 arrays mode I.
            return Image.fromarray(gray.round().astype(np.uint16 if mode.startswith("I;16") else np.int32))
        if mode == "F":
            return Image.fromarray((rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32), "F")
        if alpha is not None:
            a = Image.fromarray((alpha * 255.0).round().astype(np.uint8), "L")
            if mode == "LA":
                return Image.merge("LA", (out.convert("L"), a))
            out.putalpha(a)
            return out  # RGBA; a palette image comes back as RGBA, since restored colours leave its palette
        if mode == "CMYK":  # back through the profile it was read with (`images.cmyk_to_rgb`)
            return rgb_to_cmyk(out, original.info.get("icc_profile"))
        if mode in ("L", "1", "YCbCr", "LAB", "HSV"):
            return out.convert(mode)
        return out
    arr = np.asarray(original)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    f = rgb
    if channels == 1:
        f = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        f = f if arr.ndim == 2 else f[..., None]
    elif channels == 4:
        f = np.concatenate([rgb, alpha[..., None]], axis=2)
    if arr.dtype == np.uint8:
        return (f * 255.0).round().astype(np.uint8)
    if arr.dtype == np.uint16:
        return (f * 65535.0).round().astype(np.uint16)
    return f.astype(arr.dtype)


def restore(
    image: Image.Image | np.ndarray,
    checkpoint: str | Path | None = None,
    *,
    device: str = "auto",
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    backend: str = "auto",
    share_stats: bool = True,
    ensemble: bool = False,
    correct_tone: bool = False,
    strength: float = 1.0,
) -> Image.Image | np.ndarray:
    """Restore a degraded image: PIL image or array in, same type, size and mode out.

    By default the photo keeps its global tone and colour and only the damage (noise, blur,
    blocking) is removed; ``correct_tone=True`` also lets the model fix exposure and colour
    (under-exposed photos are where it helps). ``strength`` in [0, 1] mixes the input and the
    full restore linearly (0: the input unchanged, bit for bit). A PIL result carries the
    input's EXIF (orientation reset to 1), ICC profile and DPI in ``.info`` for `save_image`.

    ``checkpoint`` defaults to the shipped model. Transparency is kept as it is;
    greyscale images come back greyscale. ``backend``: ``auto`` (onnxruntime on the
    CPU when installed, else PyTorch), ``torch`` or ``onnxruntime``; see `denoise_core.inference`.
    ``share_stats=False`` halves the time of a tiled restore at some fidelity to the
    whole-image result; ``ensemble=True`` averages 8 flipped/rotated restores, slower and a
    little better (see `restore_tensor`).
    """
    strength = check_strength(strength)
    if not isinstance(image, (Image.Image, np.ndarray)):
        raise TypeError(f"restore takes a PIL image or a numpy array, not {type(image).__name__}")
    rgb, alpha = _to_float(image)  # validates the input even when nothing is to be done
    if strength == 0.0:
        return image.copy()
    run = load_runner(checkpoint, device, backend)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    y = restore_rgb(run, x, tile, overlap, share_stats, ensemble, correct_tone)
    if strength < 1.0:
        y = torch.lerp(x, y, strength)
    out = _from_float(y[0].permute(1, 2, 0).numpy(), alpha, image)
    if isinstance(image, Image.Image):
        out.info.update(metadata(image))
    return out


def check_strength(strength: float) -> float:
    """``strength`` as a float in [0, 1]; ValueError with one line otherwise."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise ValueError(f"strength must be a number from 0 to 1, got {strength!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"strength must be from 0 to 1, got {strength!r}")
    return value


def restore_file(src: str | Path, dst: str | Path, checkpoint: str | Path | None = None, *,
                 quality: int = JPEG_QUALITY, **kwargs) -> Path:
    """Restore an image file into ``dst`` (format from its suffix), keeping its EXIF, ICC profile and DPI.

    The output is written atomically (nothing is left at ``dst`` on failure); its folder is created.
    ``kwargs`` go to `restore`.
    """
    from .images import image_format, open_image

    dst = Path(dst)
    image_format(dst)  # refuse an unknown suffix before the work
    if dst.is_dir():
        raise ValueError(f"{dst}: is a folder; give an output file name, or an input folder to restore a folder")
    img = open_image(src)
    out = restore(img, checkpoint, **kwargs)
    return save_image(out, dst, quality)


__all__ = ["DEFAULT_CHECKPOINT", "check_strength", "load_model", "load_runner", "restore", "restore_file", "restore_rgb",
           "restore_tensor", "has_alpha"]
