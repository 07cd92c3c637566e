"""Exposure and colour correction kept apart from local restoration.

A restore with ``correct_tone=True`` first applies one global curve per photo,

    x' = clip(x / gain_c, 0, 1) ** (1 / gamma)

whose per-channel gains and gamma a small MLP predicts from the input's pixel
statistics (luminance quantiles, channel means), then restores ``x'`` with its tone
kept (`denoise_core.tone.keep_tone`); the curve applied after the restore would
amplify the detail the model made for a brightened image. The curve inverts the
under-exposure model of `denoise_core.degradations.low_light` (``gain * x ** gamma``)
and is the identity for a well-exposed photo. Keeping it apart means the U-Net
spends no capacity on exposure, the curve cannot add local artefacts, and it works
with any checkpoint.

Inference is NumPy only (weights in an ``.npz``); `train_exposure` uses torch.
"""

from __future__ import annotations

import io
import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import as_numpy
from .checkpoint import atomic_write_bytes

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "exposure.npz"
QUANTILES = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
N_FEATURES = len(QUANTILES) + 8
MAX_PIXELS = 65536
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def pixel_sample(x: np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """(3, N) pixels of one (3, H, W) image on a regular grid, at most about ``max_pixels``."""
    _, h, w = x.shape
    step = max(1, int(math.ceil(math.sqrt(h * w / max_pixels))))
    return np.ascontiguousarray(x[:, ::step, ::step].reshape(3, -1))


def features(pixels: np.ndarray) -> np.ndarray:
    """(N_FEATURES,) statistics of (3, N) pixels in [0, 1]: luminance quantiles, its mean
    and spread, the channel means and the channel 99th percentiles."""
    p = np.clip(pixels.astype(np.float32), 0.0, 1.0)
    luma = _LUMA @ p
    q = np.quantile(luma, QUANTILES)
    hi = np.quantile(p, 0.99, axis=1)
    return np.concatenate([q, [luma.mean(), luma.std()], p.mean(1), hi]).astype(np.float32)


def apply_curve(y: np.ndarray, gains: np.ndarray, gamma: float) -> np.ndarray:
    """``clip(y / gain_c, 0, 1) ** (1 / gamma)`` on (3, H, W) or (B, 3, H, W)."""
    g = np.asarray(gains, np.float32).reshape(3, 1, 1)
    return np.clip(y / g, 0.0, 1.0) ** np.float32(1.0 / gamma)


class ExposureHead:
    """The MLP (NumPy): features -> (log gains, log gamma)."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
        if self.w["w0"].shape[0] != N_FEATURES:
            raise ValueError(f"exposure weights expect {self.w['w0'].shape[0]} features, this code makes {N_FEATURES}")

    def params(self, feats: np.ndarray) -> tuple[np.ndarray, float]:
        """(gains (3,), gamma) for one image's features."""
        h = (feats - self.w["mean"]) / self.w["std"]
        h = np.maximum(h @ self.w["w0"] + self.w["b0"], 0.0)
        h = np.maximum(h @ self.w["w1"] + self.w["b1"], 0.0)
        o = h @ self.w["w2"] + self.w["b2"]
        return np.exp(o[:3]), float(np.exp(o[3]))

    def correct(self, x: Any) -> Any:
        """Each image of a (B, 3, H, W) batch through the curve estimated from it."""
        a, back = as_numpy(x, np.float32)
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            gains, gamma = self.params(features(pixel_sample(a[i])))
            out[i] = apply_curve(a[i], gains, gamma)
        return back(out)


@lru_cache(maxsize=4)
def load_exposure(path: str | Path | None = None) -> ExposureHead | None:
    """The exposure head from ``path`` (default: the shipped one); None with a warning if missing or broken."""
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    try:
        with np.load(p, allow_pickle=False) as z:
            return ExposureHead({k: z[k] for k in z.files})
    except (OSError, ValueError, KeyError) as e:
        log.warning("exposure weights %s unusable (%s); correct_tone falls back to the model's own tone", p, e)
        return None


def _degrade_pixels(clean, rng: np.random.Generator, low_share: float):
    """(noisy input pixels, noise-free target-domain pixels) for one sample of clean (3, P) pixels."""
    from .degradations import param

    if rng.random() < low_share:
        s = rng.random()
        gain, gamma, sigma = (param("low_light", k, s) for k in ("gain", "gamma", "noise sigma"))
        dark = gain * clean ** gamma
    else:
        dark = clean
        sigma = rng.uniform(0, 30 / 255) if rng.random() < 0.5 else rng.uniform(0, 3 / 255)
    noisy = np.clip(dark + sigma * rng.standard_normal(dark.shape).astype(np.float32), 0, 1)
    return noisy, dark


def train_exposure(image_dir: str | Path, out: str | Path, steps: int = 3000, batch: int = 128,
                   val_ratio: float = 0.05, seed: int = 0, low_share: float = 0.6,
                   pixels: int = 8192) -> dict[str, float]:
    """Train the exposure head on images in ``image_dir`` (the same image split as `train`),
    write it to ``out`` (.npz) and return validation PSNRs (curve on the noise-free dark pixels)."""
    import torch

    from .data import find_images, load_images, split_indices

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    paths = find_images(image_dir)
    images, _, _ = load_images(paths, 3)
    train_idx, val_idx = split_indices(len(images), val_ratio, seed)

    def sample(idx):
        img = images[idx].numpy().reshape(3, -1).astype(np.float32) / 255.0
        take = rng.choice(img.shape[1], size=min(pixels, img.shape[1]), replace=False)
        return np.ascontiguousarray(img[:, take])

    pools = {i: sample(i) for i in range(len(images))}

    def make(idx_list, n):
        f, d, c = [], [], []
        for i in rng.choice(idx_list, size=n):
            clean = pools[int(i)]
            noisy, dark = _degrade_pixels(clean, rng, low_share)
            f.append(features(noisy))
            keep = rng.choice(clean.shape[1], size=1024, replace=False)
            d.append(dark[:, keep])
            c.append(clean[:, keep])
        return (torch.from_numpy(np.stack(f)), torch.from_numpy(np.stack(d)).float(),
                torch.from_numpy(np.stack(c)).float())

    f0, _, _ = make(train_idx, 2048)
    mean, std = f0.mean(0), f0.std(0) + 1e-3
    net = torch.nn.Sequential(torch.nn.Linear(N_FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 4))
    torch.nn.init.zeros_(net[4].weight)
    torch.nn.init.zeros_(net[4].bias)  # starts as the identity curve
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=2e-5)

    def curve(o, dark):
        gains = torch.exp(o[:, :3]).unsqueeze(-1)
        gamma = torch.exp(o[:, 3:4]).unsqueeze(-1)
        return (dark / gains).clamp(1e-6, 1.0) ** (1.0 / gamma)

    for step in range(steps):
        f, dark, clean = make(train_idx, batch)
        o = net((f - mean) / std)
        loss = torch.mean((curve(o, dark) - clean) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            log.info("exposure step %d loss %.5f", step, loss.item())

    weights = {"mean": mean.numpy(), "std": std.numpy()}
    for k, layer in zip(("0", "1", "2"), (net[0], net[2], net[4])):
        weights["w" + k] = layer.weight.detach().numpy().T.copy()
        weights["b" + k] = layer.bias.detach().numpy().copy()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **weights)
    atomic_write_bytes(out, buf.getvalue())  # a killed run never leaves a half-written head
    load_exposure.cache_clear()
    return evaluate_exposure(ExposureHead(weights), [pools[i] for i in val_idx], seed)


def evaluate_exposure(head: ExposureHead, clean_pixels: list[np.ndarray], seed: int = 0) -> dict[str, float]:
    """Mean PSNR of the curve on held-out pixels: bench low light (severity 0.5) and well exposed (identity)."""
    from .degradations import param

    rng = np.random.default_rng(seed + 1)
    gain, gamma, sigma = (param("low_light", k, 0.5) for k in ("gain", "gamma", "noise sigma"))
    res: dict[str, list[float]] = {"low_light": [], "clean": []}
    for clean in clean_pixels:
        for name, dark, s in (("low_light", gain * clean ** gamma, sigma), ("clean", clean, 0.0)):
            noisy = np.clip(dark + s * rng.standard_normal(dark.shape).astype(np.float32), 0, 1)
            g, gm = head.params(features(noisy))
            y = apply_curve(dark[:, :, None], g, gm)[:, :, 0]
            res[name].append(10 * np.log10(1.0 / max(float(np.mean((y - clean) ** 2)), 1e-12)))
    return {k: float(np.mean(v)) for k, v in res.items()}


__all__ = ["ExposureHead", "load_exposure", "apply_curve", "features", "pixel_sample", "train_exposure",
           "evaluate_exposure", "DEFAULT_WEIGHTS"]
