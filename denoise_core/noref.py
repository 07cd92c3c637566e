"""No-reference checks for photos without ground truth: how much noise a restore left, and how evenly.

The noise of an image is `skimage.restoration.estimate_sigma` (wavelet MAD, averaged over channels). The noise
left is that of the output over that of the input: over the whole photo, and per 64-px tile, where a tile "kept
most of it" when its ratio is above one half. A restore that denoises in patches shows here as a large share of
tiles left noisy beside others cleaned; one that adds noise, as a ratio above 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TILE = 64
KEPT = 0.5  # a tile whose output keeps more than this share of its input's noise counts as left noisy
MIN_SIGMA = 1.0 / 255.0  # tiles whose input reads less noise than this are too clean to judge


def sigma(image: np.ndarray) -> float:
    """Noise of an (H, W, 3) or (H, W) float image, wavelet MAD (`estimate_sigma`), mean over channels."""
    from skimage.restoration import estimate_sigma

    a = np.asarray(image, dtype=np.float64)
    return float(estimate_sigma(a, channel_axis=-1 if a.ndim == 3 else None, average_sigmas=True))


@dataclass(frozen=True)
class NoiseLeft:
    """The noise a restore left: ``overall`` ratio, ``tiles`` per-tile ratios (NaN: too clean to judge),
    ``noisy_share`` of judged tiles left noisy, and their spread (``tile_iqr``: interquartile range)."""

    overall: float
    tiles: np.ndarray
    noisy_share: float
    tile_iqr: float

    @property
    def adds_noise(self) -> bool:
        return self.overall > 1.0


def noise_left(inp: np.ndarray, out: np.ndarray, tile: int = TILE) -> NoiseLeft:
    """`NoiseLeft` of ``out`` against ``inp``, both (H, W, 3) float in [0, 1]."""
    inp, out = np.asarray(inp, dtype=np.float64), np.asarray(out, dtype=np.float64)
    if inp.shape != out.shape:
        raise ValueError(f"input {inp.shape} and output {out.shape} differ in shape")
    h, w = inp.shape[:2]
    rows, cols = max(1, h // tile), max(1, w // tile)
    ratios = np.full((rows, cols), np.nan)
    for i in range(rows):
        for j in range(cols):
            box = (slice(i * tile, (i + 1) * tile), slice(j * tile, (j + 1) * tile))
            s_in = sigma(inp[box])
            if s_in >= MIN_SIGMA:
                ratios[i, j] = sigma(out[box]) / s_in
    judged = ratios[np.isfinite(ratios)]
    share = float((judged > KEPT).mean()) if judged.size else float("nan")
    iqr = float(np.subtract(*np.percentile(judged, [75, 25]))) if judged.size else float("nan")
    s_in = sigma(inp)
    return NoiseLeft(sigma(out) / s_in if s_in > 0 else float("nan"), ratios, share, iqr)
