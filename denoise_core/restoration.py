"""Restoring images with a trained checkpoint, whole or in overlapping tiles.

`restore` takes a PIL image or a numpy array and gives back the same type,
size and mode. Images larger than ``tile`` are processed in overlapping tiles
cross-faded with linear ramps, so memory stays bounded and no seams show; the
tiles share the whole image's channel-attention statistics (`restore_tensor`),
so the result matches a whole-image restore. Inference runs on the fastest
installed backend (`denoise_core.inference`).

The work is done on NumPy arrays: with the ONNX backend and a cached graph, a restore never imports
torch (`denoise_core.arrays`). `restore_tensor` and `restore_rgb` also take torch tensors and then
return tensors.
"""

from __future__ import annotations

import logging
from pathlib import Path

from typing import Any

import numpy as np
from PIL import Image

from .allocator import release_free_memory
from .arrays import as_numpy, pad_to_multiple
from .exposure import load_exposure
from .images import JPEG_QUALITY, has_alpha, metadata, rgb_to_cmyk, save_image, to_float_rgb
from .inference import Runner, load_runner
from .noise_level import parse_level, with_noise_map
from .tone import keep_tone

log = logging.getLogger(__name__)

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
# From this size up a restore hands its freed memory back (`allocator.release_free_memory`): a 12-MP photo
# otherwise leaves about 1.9 GB mapped; below it the next photo's page faults would cost more than the memory.
RELEASE_PIXELS = 2_000_000


def _ramp(n: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    """Blend weights along one side of a tile: linear ramps over ``overlap`` pixels on the
    ends that overlap a neighbour (never reaching 0), 1 elsewhere."""
    w = np.ones(n, dtype=np.float64)
    r = np.arange(1, overlap + 1, dtype=np.float64) / (overlap + 1)
    if rise and overlap:
        w[:overlap] = r
    if fall and overlap:
        w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


def _starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _tile_length(size: int, tile: int, overlap: int, multiple: int) -> int:
    """The shortest tile length along an axis (a multiple of ``multiple``, at most ``tile``) that covers ``size``
    with as few tiles as ``tile`` needs, each overlapping the next by at least ``overlap``.

    Equal, shorter tiles instead of full ones with the last shifted back over its neighbour: across 2,000 px,
    5 tiles of 432 px (2,160 restored) instead of 5 of 512 (2,560); a 3-MP photo costs 1.5x fewer pixels.
    """
    if size <= tile:
        return size
    n = -(-(size - overlap) // (tile - overlap))
    return min(tile, -(-(size + (n - 1) * overlap) // (n * multiple)) * multiple)


def _axis_weights(size: int, tile: int, overlap: int) -> tuple[list[int], list[np.ndarray]]:
    """Tile starts along one axis, and each tile's blending weights (length ``tile``),
    normalised so the weights of all tiles covering a pixel sum to 1."""
    starts = _starts(size, tile, tile - overlap)
    full = np.zeros((len(starts), size), dtype=np.float64)
    for i, s in enumerate(starts):
        full[i, s : s + tile] = _ramp(tile, overlap, s > 0, s + tile < size)
    full /= full.sum(0)
    return starts, [full[i, s : s + tile].astype(np.float32) for i, s in enumerate(starts)]


def _shared_stats(run: Runner, x: np.ndarray, tiles: list, tops, wys, lefts, wxs, size: tuple[int, int]) -> np.ndarray:
    """Whole-image means of every attention input, (B, S), pooled from all tiles with their blending weights.

    All tiles, not a sample: the model is sensitive to these means, and with an evenly
    spread quarter of the tiles a tiled restore already drifts 0.2 dB from the whole one.
    """
    th, tw = size
    layout = run.stat_layout
    total = np.zeros((x.shape[0], sum(c for _, c in layout)), dtype=np.float64)
    weight = np.zeros(total.shape[1], dtype=np.float64)
    for i, j in tiles:
        top, left = tops[i], lefts[j]
        total += np.asarray(run.tile_stats(x[..., top : top + th, left : left + tw], wys[i], wxs[j]), dtype=np.float64)
        # Weights averaged down to level l keep their sum divided by 2**l per axis.
        area = wys[i].astype(np.float64).sum() * wxs[j].astype(np.float64).sum()
        weight += np.concatenate([np.full(c, float(area) / 4**level, dtype=np.float64) for level, c in layout])
    return (total / weight).astype(np.float32)


def dihedral(x: Any, k: int, inverse: bool = False) -> Any:
    """View ``k`` (0-7) of the 8 flips and 90-degree rotations of (..., H, W); ``inverse`` undoes it."""
    a, back = as_numpy(x)
    turns, flip = k % 4, k >= 4
    if inverse:
        a = np.rot90(a, -turns, (-2, -1))
        return back(a[..., ::-1] if flip else a)
    return back(np.rot90(a[..., ::-1] if flip else a, turns, (-2, -1)))


def _as_runner(model: Any) -> Runner:
    if hasattr(model, "tile_stats"):
        return model
    from .inference import TorchRunner

    return TorchRunner(model)


def restore_tensor(
    model: Any,
    x: Any,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    share_stats: bool = True,
    ensemble: bool = False,
    noise_level: float | None = None,
) -> Any:
    """Restore ``x`` (B, C, H, W) float in [0, 1] with a model or a runner (`load_runner`); output clipped to [0, 1].

    A model that takes a noise map is told ``noise_level`` (0-1 scale), or, when None, each image's level as
    `denoise_core.noise_level.estimate` measures it; one level per image, the same in every tile.

    ``x`` is a NumPy array or a torch tensor, and the result is of the same kind (a tensor on the CPU).
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
    run = _as_runner(model)
    a, back = as_numpy(x, np.float32)
    if getattr(run, "noise_map", False):  # a stand-in runner may not say
        a, _ = with_noise_map(a, noise_level)
    m = run.multiple
    h, w = a.shape[-2:]
    # Padded once like the model pads a whole image, with tiles and their overlaps on the
    # model's 2**depth grid: every tile and every flipped or rotated view then meets the
    # image's 8x8 JPEG blocks where training did (crops are compressed from their corner),
    # which is worth about 1 dB on JPEG input against a misaligned tile.
    a = pad_to_multiple(a, m)
    if tile is not None:
        if overlap * 2 >= tile:
            raise ValueError(f"overlap {overlap} must be less than half the tile size {tile}")
        tile, overlap = max(m, tile // m * m), -(-overlap // m) * m
        overlap = min(overlap, (tile // 2 - 1) // m * m)
    views = range(8) if ensemble else range(1)
    out = sum(dihedral(_restore_padded(run, np.ascontiguousarray(dihedral(a, k)), tile, overlap, share_stats), k, inverse=True)
              for k in views)
    return back(np.clip(out / len(views), 0, 1)[..., :h, :w].astype(np.float32))


def _restore_padded(run: Runner, x: np.ndarray, tile: int | None, overlap: int, share_stats: bool) -> np.ndarray:
    b, c, h, w = x.shape
    c -= int(getattr(run, "noise_map", False))
    if tile is None or (h <= tile and w <= tile):
        return np.clip(np.asarray(run(x)), 0, 1)
    th, tw = _tile_length(h, tile, overlap, run.multiple), _tile_length(w, tile, overlap, run.multiple)
    tops, wys = _axis_weights(h, th, overlap)
    lefts, wxs = _axis_weights(w, tw, overlap)
    tiles = [(i, j) for i in range(len(tops)) for j in range(len(lefts))]
    stats = _shared_stats(run, x, tiles, tops, wys, lefts, wxs, (th, tw)) if share_stats and run.stat_layout else None
    out = np.zeros((b, c, h, w), dtype=np.float32)
    for i, j in tiles:
        top, left = tops[i], lefts[j]
        patch = np.ascontiguousarray(x[..., top : top + th, left : left + tw])
        y = run(patch) if stats is None else run.tile(patch, stats)
        out[..., top : top + th, left : left + tw] += np.clip(np.asarray(y), 0, 1) * (wys[i][:, None] * wxs[j][None, :])
    return np.clip(out, 0, 1)  # the blend weights sum to 1 only up to rounding


def restore_rgb(
    run: Runner, x: Any, tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, share_stats: bool = True,
    ensemble: bool = False, correct_tone: bool = False, noise_level: float | None = None,
) -> Any:
    """`restore_tensor` for colour input (B, 3, H, W) with a 1- or 3-channel runner; a grey model
    restores each colour channel as its own image. The result keeps the input's tone and colour
    (`denoise_core.tone.keep_tone`); with ``correct_tone``, the exposure curve that
    `denoise_core.exposure` estimates from the input is applied to it before the model.
    NumPy or torch in, the same kind out."""
    a, back = as_numpy(x, np.float32)
    head = load_exposure() if correct_tone else None
    if head is not None:
        # Exposure first, then restoration: the U-Net sees a well-exposed (if noisier) photo, which is what it
        # restores best, and its detail is not amplified by a curve applied after it.
        a = head.correct(a)
    if run.channels == 1:
        b, c, h, w = a.shape
        y = restore_tensor(run, a.reshape(b * c, 1, h, w), tile, overlap, share_stats, ensemble,
                           noise_level).reshape(b, c, h, w)
    else:
        y = restore_tensor(run, a, tile, overlap, share_stats, ensemble, noise_level)
    if correct_tone and head is None:
        return back(y)  # no exposure weights: the model's own tone
    return back(keep_tone(a, y))


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
    noise_level: float | str = "auto",
) -> Image.Image | np.ndarray:
    """Restore a degraded image: PIL image or array in, same type, size and mode out.

    By default the photo keeps its global tone and colour and only the damage (noise, blur,
    blocking) is removed; ``correct_tone=True`` also fixes exposure and colour with a global curve
    (under-exposed photos are where it helps). ``strength`` in [0, 1] mixes the input and the
    full restore linearly (0: the input unchanged, bit for bit). A PIL result carries the
    input's EXIF (orientation reset to 1), ICC profile and DPI in ``.info`` for `save_image`.

    ``checkpoint`` defaults to the shipped model. Transparency is kept as it is;
    greyscale images come back greyscale. ``backend``: ``auto`` (onnxruntime on the
    CPU when installed, else PyTorch), ``torch`` or ``onnxruntime``; see `denoise_core.inference`.
    ``share_stats=False`` halves the time of a tiled restore at some fidelity to the
    whole-image result; ``ensemble=True`` averages 8 flipped/rotated restores, slower and a
    little better (see `restore_tensor`).

    ``noise_level``: how much noise to remove, as a noise sigma on the 0-255 scale, or ``"auto"`` (the default) for
    the level `estimate_noise_level` measures on the photo; more removes more (and smooths more), 0 asks to keep
    grain. Models without a noise map ignore it.
    """
    strength = check_strength(strength)
    level = parse_level(noise_level)
    if not isinstance(image, (Image.Image, np.ndarray)):
        raise TypeError(f"restore takes a PIL image or a numpy array, not {type(image).__name__}")
    rgb, alpha = _to_float(image)  # validates the input even when nothing is to be done
    if strength == 0.0:
        return image.copy()
    run = load_runner(checkpoint, device, backend)
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])
    y = restore_rgb(run, x, tile, overlap, share_stats, ensemble, correct_tone, level)
    if strength < 1.0:
        y = x + np.float32(strength) * (y - x)
    out = _from_float(np.ascontiguousarray(y[0].transpose(1, 2, 0)), alpha, image)
    if isinstance(image, Image.Image):
        out.info.update(metadata(image))
    pixels = rgb.shape[0] * rgb.shape[1]
    del x, y, rgb, alpha
    if pixels >= RELEASE_PIXELS:
        release_free_memory()  # the tiles reused each other's buffers; the next photo need not inherit them
    return out


def estimate_noise_level(image: Image.Image | np.ndarray) -> float:
    """The noise level ``restore(..., noise_level="auto")`` tells the model for this photo, as a sigma on the 0-255 scale."""
    from .noise_level import estimate

    rgb, _ = _to_float(image)
    return 255.0 * estimate(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


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


def __getattr__(name: str) -> Any:
    # DEFAULT_CHECKPOINT and load_model live in `loading`, which imports torch: loaded on first use.
    if name in ("DEFAULT_CHECKPOINT", "load_model"):
        from . import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_CHECKPOINT", "check_strength", "estimate_noise_level", "load_model", "load_runner", "restore", "restore_file", "restore_rgb",
           "restore_tensor", "has_alpha"]
