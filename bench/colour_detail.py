"""How much fine colour detail a set of photos holds, against their fine brightness detail.

    .venv/bin/python bench/colour_detail.py ../shared/data/train/CBSD432 ../shared/data/bench/McMaster [--half] [--limit 40]
    .venv/bin/python bench/colour_detail.py ../shared/data/bench/McMaster --sigma 15 [--checkpoint CKPT]

For each folder (and with ``--half`` each folder's photos halved, as `denoise_core.data.half_scale` halves training
photos), prints the mean energy of the finest-scale Haar detail (three orthonormal subbands of 2x2 blocks) of Y, Cb
and Cr (BT.601 YCbCr, 0-255), and chroma / luma: the share of fine detail that is colour. JPEG's 4:2:0 chroma
subsampling leaves a photo almost none (a model trained on such photos alone learns that fine colour detail is
noise); lossless colour photos keep it.

With ``--sigma S``, instead: where the error of a restore lies. Each photo gets seeded Gaussian noise of sigma S
(0-255, clipped), and the mean squared error (x 1e5, on [0, 1]) of Y, Cb and Cr is printed for ``restore`` told S
and for FFDNet told S.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from skimage.color import rgb2ycbcr  # noqa: E402

from denoise_core.data import find_images, half_scale  # noqa: E402
from denoise_core.images import load_rgb_uint8  # noqa: E402
from denoise_core.restoration import restore  # noqa: E402


def fine_energy(channel: np.ndarray) -> float:
    """Mean energy of the finest-scale orthonormal Haar details (horizontal, vertical, diagonal) of a 2-D array."""
    a = channel[: channel.shape[0] // 2 * 2, : channel.shape[1] // 2 * 2].astype(np.float64)
    p, q, r, s = a[0::2, 0::2], a[0::2, 1::2], a[1::2, 0::2], a[1::2, 1::2]
    return float(np.mean(((p - q + r - s) / 2) ** 2 + ((p + q - r - s) / 2) ** 2 + ((p - q - r + s) / 2) ** 2))


def colour_detail(rgb: np.ndarray) -> tuple[float, float, float]:
    """(Y, Cb, Cr) fine-detail energy of an (H, W, 3) RGB image in [0, 1]."""
    ycc = rgb2ycbcr(rgb)
    return fine_energy(ycc[..., 0]), fine_energy(ycc[..., 1]), fine_energy(ycc[..., 2])


def channel_errors(clean: np.ndarray, result: np.ndarray) -> np.ndarray:
    """Mean squared error of Y, Cb and Cr (each scaled to [0, 1]) between two (H, W, 3) RGB images in [0, 1]."""
    diff = (rgb2ycbcr(clean) - rgb2ycbcr(np.clip(result, 0, 1))) / 255.0
    return (diff**2).mean(axis=(0, 1))


def error_split(folders: list[Path], sigma: float, checkpoint: str | None, limit: int) -> None:
    from denoise_core import baselines

    print("| photos | method | Y | Cb | Cr |\n|---|---|---:|---:|---:|")
    for folder in folders:
        rng = np.random.default_rng(0)
        errors: dict[str, list[np.ndarray]] = {"model": [], "ffdnet": []}
        for f in find_images(folder)[:limit]:
            clean = load_rgb_uint8(f).permute(1, 2, 0).numpy() / 255.0
            noisy = np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1).astype(np.float32)
            errors["model"].append(channel_errors(clean, restore(noisy, checkpoint, noise_level=sigma)))
            errors["ffdnet"].append(channel_errors(clean, baselines.ffdnet(noisy, sigma / 255)))
        for method, rows in errors.items():
            y, cb, cr = np.mean(rows, axis=0) * 1e5
            print(f"| {folder.name} ({len(rows)}), σ {sigma:g} | {method} | {y:.1f} | {cb:.1f} | {cr:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--half", action="store_true", help="also each folder's photos halved (antialiased)")
    p.add_argument("--limit", type=int, default=40, help="photos per folder (the first, by name)")
    p.add_argument("--sigma", type=float, default=None, help="the error split of restores at this noise sigma instead")
    p.add_argument("--checkpoint", default=None, help="with --sigma: the model (default: the shipped one)")
    args = p.parse_args()
    if args.sigma is not None:
        error_split(args.folders, args.sigma, args.checkpoint, args.limit)
        return
    print("| photos | Y | Cb | Cr | chroma / luma |\n|---|---:|---:|---:|---:|")
    for folder in args.folders:
        images = [load_rgb_uint8(f) for f in find_images(folder)[: args.limit]]
        for halved in (False, True) if args.half else (False,):
            rows = [colour_detail((half_scale(im) if halved else im).permute(1, 2, 0).numpy() / 255.0) for im in images]
            y, cb, cr = np.mean(rows, axis=0)
            name = f"{folder.name}{', halved' if halved else ''} ({len(images)})"
            print(f"| {name} | {y:.1f} | {cb:.2f} | {cr:.2f} | {(cb + cr) / y:.3f} |")


if __name__ == "__main__":
    main()
