"""Keeping a photo's tone and colour through a restore.

A blind restoration model may shift the global brightness or colour of what it
restores: it was trained to brighten under-exposed photos, and a little of that
leaks onto photos that only needed denoising. `keep_tone` puts back the input's
low frequencies (its tone and colour at the scale of ``sigma`` pixels and above)
under the model's high frequencies (the detail it restored):

    out + G_sigma(input - out)

``G_sigma`` is a Gaussian low-pass, computed on a 4x area-downsampled copy (a
sigma of 8 px at full resolution is a sigma of 2 px there, so the cost does not
grow with sigma and stays small on 12-megapixel photos). ``sigma=None`` keeps only
the global per-channel means: ``out + mean(input - out)``.

NumPy throughout, so a restore needs no torch (`denoise_core.arrays`); the functions also take torch tensors
and then return tensors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .arrays import as_numpy

DEFAULT_SIGMA = 8.0
_POOL = 4


def _area_downsample(x: np.ndarray, p: int) -> np.ndarray:
    """Mean over p x p blocks of (..., H, W); blocks cut by the border average what they hold (ceil mode)."""
    h, w = x.shape[-2:]
    hh, ww = -(-h // p), -(-w // p)
    padded = np.zeros(x.shape[:-2] + (hh * p, ww * p), np.float32)
    padded[..., :h, :w] = x
    sums = padded.reshape(*x.shape[:-2], hh, p, ww, p).sum((-3, -1))
    rows = np.minimum(p, h - np.arange(hh) * p).astype(np.float32)
    cols = np.minimum(p, w - np.arange(ww) * p).astype(np.float32)
    return sums / (rows[:, None] * cols[None, :])


def _blur_axis(x: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    """1-D convolution with the symmetric kernel ``k`` along ``axis``, replicate-padded."""
    r = len(k) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    padded = np.pad(x, pad, mode="edge")
    n = x.shape[axis]
    out = np.zeros_like(x)
    for i, weight in enumerate(k):
        out += weight * np.take(padded, np.arange(i, i + n), axis=axis)
    return out


def _bilinear_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Linear resampling along ``axis`` to ``size`` samples, pixel centres aligned (align_corners=False)."""
    n = x.shape[axis]
    src = np.maximum((np.arange(size, dtype=np.float64) + 0.5) * (n / size) - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    frac = (src - i0).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = size
    frac = frac.reshape(shape)
    # In place: two full-size arrays instead of five (this runs at full resolution on 12-MP photos).
    out, step = np.take(x, i0, axis=axis), np.take(x, i1, axis=axis)
    step -= out
    step *= frac
    out += step
    return out


def lowpass(x: Any, sigma: float) -> Any:
    """Gaussian low-pass of ``x`` (B, C, H, W) at ``sigma`` px, via a 4x area-downsampled copy; same shape."""
    a, back = as_numpy(x, np.float32)
    h, w = a.shape[-2:]
    pool = _POOL if min(h, w) >= 4 * _POOL else 1
    small = _area_downsample(a, pool) if pool > 1 else a
    s = sigma / pool
    radius = max(1, math.ceil(3 * s))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / s) ** 2)
    k = (k / k.sum()).astype(np.float32)
    # Separable, replicate-padded so the border keeps its own tone rather than a reflection's.
    small = _blur_axis(_blur_axis(small, k, -1), k, -2)
    if pool == 1:
        return back(small)
    return back(_bilinear_axis(_bilinear_axis(small, h, -2), w, -1).astype(np.float32))


_TABLE = 4096  # intervals of the lookup table over [0, 1]: linear interpolation is within 1e-4 of the formula
_TABLE_FROM = 1 << 16  # values per image from which the table is cheaper than the formula


def _clipped_mean_exact(m: np.ndarray, s: np.ndarray | float) -> np.ndarray:
    from scipy.special import ndtr

    def relu_mean(v: np.ndarray) -> np.ndarray:  # E[max(0, v + n)]
        z = v / s
        return v * ndtr(z) + s * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    return relu_mean(m) - relu_mean(m - 1)


def _clipped_mean_table(m: np.ndarray, s: float) -> np.ndarray:
    """`clipped_mean` for one sigma by linear interpolation in a table over [0, 1] (values outside: the formula).

    The formula (two normal CDFs and two exponentials per value) took 2.4 s of a 12-MP restore; this, about
    0.2 s. In chunks of a million values, so the temporaries stay in cache instead of faulting in 300 MB.
    """
    table = _clipped_mean_exact(np.linspace(0.0, 1.0, _TABLE + 1), s).astype(np.float32)
    upper = table[1:]
    flat = np.ascontiguousarray(m, dtype=np.float32).reshape(-1)
    out = np.empty_like(flat)
    for start in range(0, flat.size, 1 << 20):
        v = flat[start : start + (1 << 20)]
        t = v * np.float32(_TABLE)
        i = t.astype(np.intp)
        np.clip(i, 0, _TABLE - 1, out=i)
        t -= i
        lo, step = table.take(i), upper.take(i)
        step -= lo
        step *= t
        lo += step
        outside = (v < 0) | (v > 1)
        if outside.any():
            lo[outside] = _clipped_mean_exact(v[outside].astype(np.float64), s)
        out[start : start + v.size] = lo
    return out.reshape(m.shape)


def clipped_mean(mu: Any, sigma: Any) -> Any:
    """E[clip(mu + n, 0, 1)] for n ~ N(0, sigma**2): what a clean value ``mu`` becomes on average
    once noise is added and the result clipped, as the benchmark's and a camera's noisy images are.

    ``sigma``: a scalar, one per image ((B, 1, 1, 1) for ``mu`` (B, C, H, W)), or anything that broadcasts.
    """
    m, back = as_numpy(mu, np.float32)
    s = np.maximum(as_numpy(sigma, np.float32)[0], 1e-6)
    if s.size == 1 and m.size >= _TABLE_FROM:
        return back(_clipped_mean_table(m, float(s.reshape(()))))
    per_image = m.ndim >= 1 and s.ndim == m.ndim and s.shape[0] == m.shape[0] and s.size == m.shape[0]
    if per_image and m[0].size >= _TABLE_FROM:
        return back(np.stack([_clipped_mean_table(m[i], float(s.flat[i])) for i in range(m.shape[0])]))
    return back(_clipped_mean_exact(m, s).astype(np.float32))


def _mad_sigma(r: np.ndarray) -> float:
    if r.size > 1 << 18:  # a strided subsample is plenty for a median and keeps big photos fast
        r = r[:: r.size // (1 << 18)]
    return 1.4826 * float(np.median(np.abs(r - np.median(r))))


def noise_level(residual: Any, reference: Any = None) -> Any:
    """Robust per-image standard deviation of ``residual`` (B, C, H, W): 1.4826 x its median absolute
    deviation, so impulses and restored edges barely move it; shape (B, 1, 1, 1).

    With ``reference`` (the restored image), only values at least 2.5 of those deviations away from
    black and white count, where clipping has not narrowed the noise (when enough of them exist).
    """
    res, back = as_numpy(residual, np.float32)
    ref_all = None if reference is None else as_numpy(reference, np.float32)[0]
    levels = []
    for i in range(res.shape[0]):
        r = res[i].ravel()
        sigma = _mad_sigma(r)
        if ref_all is not None:
            ref = ref_all[i].ravel()
            margin = min(0.45, 2.5 * sigma)
            mid = (ref > margin) & (ref < 1 - margin)
            if int(mid.sum()) >= 1000:
                sigma = _mad_sigma(r[mid])
        levels.append(sigma)
    return back(np.asarray(levels, np.float32).reshape(-1, 1, 1, 1))


def keep_tone(inp: Any, out: Any, sigma: float | None = DEFAULT_SIGMA, noise_aware: bool = True) -> Any:
    """``out`` (B, C, H, W) in [0, 1] with the low frequencies (or, for ``sigma=None``, the channel means)
    of ``inp`` (same shape); clipped to [0, 1].

    ``noise_aware``: the comparison allows for what noise does to the input's low frequencies.
    Clipped noise brightens the shadows and darkens the highlights of the input (by up to 20
    levels at sigma 50), so the reference is ``E[clip(out + noise)]`` at the noise level left in
    ``inp - out`` (`noise_level`), not ``out`` itself; and pixels the model changed by far more
    than that (impulses) are left out of the low-pass (a normalised convolution).
    """
    x, _ = as_numpy(inp, np.float32)
    y, back = as_numpy(out, np.float32)
    diff, weight = x - y, None
    if noise_aware:
        # What the model removed, less its smooth part (a drift is smooth; noise and impulses are not).
        detail = diff - (diff.mean((-2, -1), keepdims=True) if sigma is None else lowpass(diff, sigma))
        level = noise_level(detail, y)
        diff = x - clipped_mean(y, level)
        weight = (~(np.abs(detail) > 4 * level + 2 / 255).any(1, keepdims=True)).astype(np.float32)
    if sigma is None:
        if weight is None:
            return back(np.clip(y + diff.mean((-2, -1), keepdims=True), 0, 1))
        total = (diff * weight).sum((-2, -1), keepdims=True) / np.maximum(weight.sum((-2, -1), keepdims=True), 1)
        return back(np.clip(y + total, 0, 1).astype(np.float32))
    if weight is None:
        return back(np.clip(y + lowpass(diff, sigma), 0, 1))
    correction = lowpass(diff * weight, sigma) / np.maximum(lowpass(weight, sigma), 1e-3)
    return back(np.clip(y + correction, 0, 1).astype(np.float32))
