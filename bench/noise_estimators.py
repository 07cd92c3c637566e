"""Which noise-level estimator tells the model the level its training measured (`denoise_core.noise_level`).

The truth of a sample is `residual_level` of (degraded - clean), what training tells the model; each estimator sees
only the degraded photo. Photos: training images (never the benchmark's), each degraded once per setting with a seeded
generator; PolyU-dev's real pairs are scored too when ``--real`` names the folder (report only, nothing is tuned on
them). Prints, per estimator and setting, the median ratio estimate / truth and the median |log2 ratio|, and on clean
photos the median estimate on the 0-255 scale (what an undamaged photo would be told).

    python bench/noise_estimators.py --data ../shared/data/train/CBSD432 --limit 40 --real ../shared/data/bench/PolyU-dev
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.restoration import estimate_sigma

from denoise_core import degradations, noise_level
from denoise_core.data import find_images, load_images

SETTINGS = [("gaussian_noise", 0.3), ("gaussian_noise", 0.6), ("poisson_noise", 0.5), ("camera_noise", 0.4),
            ("camera_noise", 0.8), ("camera_jpeg", 0.6), ("channel_noise", 0.4)]


def estimators() -> dict:
    return {
        "skimage (1 scale, whole)": lambda a: float(estimate_sigma(a.transpose(1, 2, 0), channel_axis=-1, average_sigmas=True)),
        "haar 1 scale, tiles q.25": lambda a: float(np.quantile(noise_level.tile_levels(a, levels=1), 0.25)),
        "haar 2 scales, whole": lambda a: float(np.sqrt(np.mean([noise_level.multiscale_std(c) ** 2 for c in a]))),
        "haar 2 scales, tiles q.25": lambda a: noise_level.estimate(a, 0.25),
        "haar 2 scales, tiles q.50": lambda a: noise_level.estimate(a, 0.5),
        "haar 3 scales, tiles q.25": lambda a: float(np.quantile(noise_level.tile_levels(a, levels=3), 0.25)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--real", help="a folder of *_real / *_mean pairs")
    args = ap.parse_args()
    images, _, _ = load_images(find_images(args.data)[: args.limit])
    est = estimators()
    rows: dict[tuple[str, str], list[float]] = {}
    clean: dict[str, list[float]] = {k: [] for k in est}
    for i, img in enumerate(images):
        x = img.float() / 255
        a = x.numpy()
        for k, f in est.items():
            clean[k].append(f(a) * 255)
        for name, sev in SETTINGS:
            y = degradations.apply(name, x, sev, torch.Generator().manual_seed(1000 * i + int(sev * 100)))
            truth = noise_level.residual_level((y - x).numpy())
            for k, f in est.items():
                rows.setdefault((k, f"{name}@{sev}"), []).append(f(y.numpy()) / max(truth, 1e-6))
    if args.real:
        for real in sorted(Path(args.real).glob("*_real.*")):
            mean = real.with_name(real.name.replace("_real", "_mean"))
            r, m = (np.asarray(Image.open(p).convert("RGB"), np.float32).transpose(2, 0, 1) / 255 for p in (real, mean))
            truth = noise_level.residual_level(r - m)
            for k, f in est.items():
                rows.setdefault((k, "PolyU-dev (real)"), []).append(f(r) / max(truth, 1e-6))
    settings = list(dict.fromkeys(s for _, s in rows))
    print("median estimate / truth (median |log2 ratio|)")
    print("| estimator | " + " | ".join(settings) + " | clean photo (0-255) |")
    print("|---" * (len(settings) + 2) + "|")
    for k in est:
        cells = []
        for s in settings:
            v = np.array(rows[(k, s)])
            cells.append(f"{np.median(v):.2f} ({np.median(np.abs(np.log2(v))):.2f})")
        print(f"| {k} | " + " | ".join(cells) + f" | {np.median(clean[k]):.2f} |")


if __name__ == "__main__":
    main()
