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
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULT_SIGMA = 8.0
_POOL = 4


def lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian low-pass of ``x`` (B, C, H, W) at ``sigma`` px, via a 4x area-downsampled copy; same shape."""
    h, w = x.shape[-2:]
    pool = _POOL if min(h, w) >= 4 * _POOL else 1
    small = F.avg_pool2d(x, pool, ceil_mode=True) if pool > 1 else x
    s = sigma / pool
    radius = max(1, math.ceil(3 * s))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / s) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    # Separable, replicate-padded so the border keeps its own tone rather than a reflection's.
    padded = F.pad(small, (radius, radius, 0, 0), mode="replicate")
    small = F.conv2d(padded, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    padded = F.pad(small, (0, 0, radius, radius), mode="replicate")
    small = F.conv2d(padded, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    if pool == 1:
        return small
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def clipped_mean(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[clip(mu + n, 0, 1)] for n ~ N(0, sigma**2): what a clean value ``mu`` becomes on average
    once noise is added and the result clipped, as the benchmark's and a camera's noisy images are."""
    s = sigma.clamp(min=1e-6)

    def relu_mean(m: torch.Tensor) -> torch.Tensor:  # E[max(0, m + n)]
        z = m / s
        return m * torch.special.ndtr(z) + s * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    return relu_mean(mu) - relu_mean(mu - 1)


def _mad_sigma(r: torch.Tensor) -> torch.Tensor:
    if r.numel() > 1 << 18:  # a strided subsample is plenty for a median and keeps big photos fast
        r = r[:: r.numel() // (1 << 18)]
    return 1.4826 * (r - r.median()).abs().median()


def noise_level(residual: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Robust per-image standard deviation of ``residual`` (B, C, H, W): 1.4826 x its median absolute
    deviation, so impulses and restored edges barely move it; shape (B, 1, 1, 1).

    With ``reference`` (the restored image), only values at least 2.5 of those deviations away from
    black and white count, where clipping has not narrowed the noise (when enough of them exist).
    """
    levels = []
    for i in range(residual.shape[0]):
        r = residual[i].flatten()
        sigma = _mad_sigma(r)
        if reference is not None:
            ref = reference[i].flatten()
            margin = min(0.45, 2.5 * float(sigma))
            mid = (ref > margin) & (ref < 1 - margin)
            if int(mid.sum()) >= 1000:
                sigma = _mad_sigma(r[mid])
        levels.append(sigma)
    return torch.stack(levels).view(-1, 1, 1, 1)


def keep_tone(inp: torch.Tensor, out: torch.Tensor, sigma: float | None = DEFAULT_SIGMA,
              noise_aware: bool = True) -> torch.Tensor:
    """``out`` (B, C, H, W) in [0, 1] with the low frequencies (or, for ``sigma=None``, the channel means)
    of ``inp`` (same shape); clipped to [0, 1].

    ``noise_aware``: the comparison allows for what noise does to the input's low frequencies.
    Clipped noise brightens the shadows and darkens the highlights of the input (by up to 20
    levels at sigma 50), so the reference is ``E[clip(out + noise)]`` at the noise level left in
    ``inp - out`` (`noise_level`), not ``out`` itself; and pixels the model changed by far more
    than that (impulses) are left out of the low-pass (a normalised convolution).
    """
    inp, out = inp.float(), out.float()
    diff, weight = inp - out, None
    if noise_aware:
        # What the model removed, less its smooth part (a drift is smooth; noise and impulses are not).
        detail = diff - (diff.mean((-2, -1), keepdim=True) if sigma is None else lowpass(diff, sigma))
        level = noise_level(detail, out)
        diff = inp - clipped_mean(out, level)
        weight = (~(detail.abs() > 4 * level + 2 / 255).any(1, keepdim=True)).float()
    if sigma is None:
        if weight is None:
            return (out + diff.mean((-2, -1), keepdim=True)).clamp_(0, 1)
        total = (diff * weight).sum((-2, -1), keepdim=True) / weight.sum((-2, -1), keepdim=True).clamp(min=1)
        return (out + total).clamp_(0, 1)
    if weight is None:
        return (out + lowpass(diff, sigma)).clamp_(0, 1)
    correction = lowpass(diff * weight, sigma) / lowpass(weight, sigma).clamp(min=1e-3)
    return (out + correction).clamp_(0, 1)
