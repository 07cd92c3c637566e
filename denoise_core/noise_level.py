"""Noise level: what the model is told, how it is measured in training, and how it is estimated from a photo.

The level is a noise standard deviation on the 0-1 scale, robustly measured: 1.4826 x the median absolute
deviation, so edges, impulses and blocking barely count and Gaussian noise of sigma s reads s.

- On a photo, `estimate` reads it without the clean image; training tells the model the same estimate of each
  degraded crop (`denoise_core.data.training_level`), so "auto" tells it what it learned from. `residual_level`
  is the true level of a known residual (degraded - clean), for measuring the estimator. One scale of wavelet detail
  (`skimage.restoration.estimate_sigma`) reads real noise low: demosaicking, colour processing and JPEG move its
  energy to coarser scales, where a single-scale estimator does not look. `estimate` sums the robust energy of the
  Haar details of the two finest scales (all of white noise's but 1/16, most of a camera's), per 64-px tile, and
  takes a low quantile of the tiles, so that texture, which inflates the estimate where it is, hardly counts.
  `bench/noise_estimators.py` measures it against the alternatives.

NumPy only: the restore path that runs without torch uses it.
"""

from __future__ import annotations

import numpy as np

MAD_SCALE = 1.4826  # MAD -> standard deviation for a Gaussian
TILE = 64
QUANTILE = 0.25
LEVELS = 2
MAX_LEVEL = 75.0 / 255.0  # the largest level the model is told (estimates and user values are clipped to it)


def robust_std(x: np.ndarray) -> float:
    """1.4826 x MAD of ``x``'s values."""
    v = np.asarray(x, dtype=np.float32).ravel()
    if v.size == 0:
        return 0.0
    return float(MAD_SCALE * np.median(np.abs(v - np.median(v))))


def residual_level(residual: np.ndarray) -> float:
    """The noise level of a known residual (degraded - clean), (C, H, W) or (H, W): per channel `robust_std`, RMS over channels."""
    r = np.asarray(residual, dtype=np.float32)
    if r.ndim == 2:
        r = r[None]
    return float(np.sqrt(np.mean([robust_std(c) ** 2 for c in r])))


def multiscale_std(x: np.ndarray, levels: int = LEVELS) -> float:
    """The noise standard deviation of a 2-D array from the robust energy of its Haar details over ``levels`` scales
    (the array as one tile of `tile_levels`, cut to a multiple of 2**levels).

    Pixel variance is the sum over scales j of 4^-j times the variance of each of the three detail subbands
    (orthonormal Haar); white noise puts 1 - 4^-levels of its variance in the first ``levels`` scales, so the sum is
    divided by that and white noise reads its sigma exactly; noise correlated over a few pixels reads close to it.
    """
    a = np.asarray(x, dtype=np.float32)
    return float(tile_levels(a, tile=max(a.shape), levels=levels)[0, 0])


def _tile_mad2(band: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) robust variance (MAD-based) of each tile's part of a (C, h, w) subband, RMS over channels."""
    c, h, w = band.shape
    t = band.reshape(c, rows, h // rows, cols, w // cols).transpose(0, 1, 3, 2, 4).reshape(c, rows, cols, -1)
    return ((MAD_SCALE * np.median(np.abs(t), axis=-1)) ** 2).mean(0)


MAX_TILES = 512  # a bigger photo is read on an even grid of about this many of its tiles (12 MP: 1.2 -> 0.2 s)


def tile_levels(image: np.ndarray, tile: int = TILE, levels: int = LEVELS, max_tiles: int | None = None) -> np.ndarray:
    """`multiscale_std` (RMS over channels) of every full ``tile`` x ``tile`` tile of a (C, H, W) or (H, W) image,
    as a (rows, cols) array; a side shorter than a tile is one tile (cut to a multiple of 2**levels). With
    ``max_tiles``, only every k-th tile row and column, so that at most about that many are read.
    Vectorised: the Haar details are taken once over the image, then split by tile."""
    a = np.asarray(image, dtype=np.float32)
    a = a[None] if a.ndim == 2 else a
    _, h, w = a.shape
    unit = 2**levels
    th, tw = min(tile, h) // unit * unit, min(tile, w) // unit * unit
    if th == 0 or tw == 0:
        return np.zeros((1, 1), dtype=np.float32)
    rows, cols = h // th, w // tw
    x = a[:, : rows * th, : cols * tw]
    if max_tiles and rows * cols > max_tiles:
        step = int(np.ceil(np.sqrt(rows * cols / max_tiles)))
        x = x.reshape(-1, rows, th, cols, tw)[:, ::step, :, ::step, :]
        rows, cols = x.shape[1], x.shape[3]
        x = x.reshape(-1, rows * th, cols * tw)
    total = np.zeros((rows, cols), dtype=np.float64)
    for j in range(levels):
        p, q, r, t = x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]
        for band in ((p - q + r - t) / 2, (p + q - r - t) / 2, (p - q - r + t) / 2):
            total += 4.0 ** -(j + 1) * _tile_mad2(band, rows, cols)
        x = (p + q + r + t) / 2
    return np.sqrt(total / (1.0 - 4.0**-levels)).astype(np.float32)


def estimate(image: np.ndarray, quantile: float = QUANTILE) -> float:
    """The noise level of a photo, (C, H, W) or (H, W) float in [0, 1]: the ``quantile`` of its tiles'
    `multiscale_std`, clipped to `MAX_LEVEL` (see the module docstring)."""
    levels = tile_levels(image, max_tiles=MAX_TILES)
    return float(min(MAX_LEVEL, np.quantile(levels, quantile)))


def parse_level(value: float | str | None) -> float | None:
    """A user's noise level: ``None`` or ``"auto"`` -> None (estimate it), else a number on the 0-255 scale
    returned on the 0-1 scale; ValueError with one line for anything else."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        level = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"noise level must be 'auto' or a number from 0 to {MAX_LEVEL * 255:.0f}, got {value!r}") from None
    if not 0.0 <= level <= MAX_LEVEL * 255:  # also refuses NaN
        raise ValueError(f"noise level must be from 0 to {MAX_LEVEL * 255:.0f} (on the 0-255 scale), got {value!r}")
    return level / 255.0


MAP_SCALE = 255.0 / 25.0  # the map's value per unit of level: sigma 25/255 reads 1, a scale convolutions learn at


def noise_map(levels: np.ndarray | list[float], height: int, width: int) -> np.ndarray:
    """(B, 1, H, W) float32 maps, each constant at its level (0-1 scale) times `MAP_SCALE`."""
    v = np.asarray(levels, dtype=np.float32).reshape(-1, 1, 1, 1) * np.float32(MAP_SCALE)
    return np.ascontiguousarray(np.broadcast_to(v, (v.shape[0], 1, height, width)))


def with_noise_map(x: np.ndarray, level: float | None = None) -> tuple[np.ndarray, list[float]]:
    """(B, C, H, W) images with their noise maps appended as channel C: ``level`` (0-1 scale) for all, or each
    image's `estimate` when None. Returns the input and the levels used."""
    a = np.asarray(x, dtype=np.float32)
    levels = [float(min(MAX_LEVEL, level)) if level is not None else estimate(img) for img in a]
    return np.concatenate([a, noise_map(levels, *a.shape[-2:])], axis=1), levels
