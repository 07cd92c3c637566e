"""Real noisy photos without ground truth: how much noise each method leaves, and how evenly (`denoise_core.noref`).

    .venv/bin/python bench/real_photos.py --data ../shared/data/real [--checkpoint CKPT] [--crops docs/results/real-photos]
        [--csv docs/results/real-photos.csv]

Methods: ``model`` (restore's defaults: the level estimated), FFDNet and CBM3D told the level the model's estimator
reads (`denoise_core.bench.estimated_sigma`), and with ``--old CKPT`` an earlier model as ``model_old``. Prints, per
photo and method, the noise left (output's noise over the input's, `skimage.restoration.estimate_sigma`), the share
of 64-px tiles that keep more than half their noise, and the spread of the tiles' ratios; then the targets: the
model's noise left at most FFDNet's + 0.10, its share of noisy tiles at most 15 points above FFDNet's (fewer is
better, so "within 15 points" is read one-sided), and never above 1.
With ``--crops``, a side-by-side crop per photo (input | model | FFDNet | CBM3D) from its noisiest 192-px square.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from denoise_core import baselines  # noqa: E402
from denoise_core.bench import estimated_sigma  # noqa: E402
from denoise_core.data import find_images  # noqa: E402
from denoise_core.images import open_image  # noqa: E402
from denoise_core.noref import noise_left, sigma  # noqa: E402
from denoise_core.restoration import restore  # noqa: E402

CROP = 192
NOISE_MARGIN, SHARE_MARGIN = 0.10, 0.15  # the targets: noise left <= FFDNet's + 0.10; noisy tiles within 15 points


def noisiest_box(photo: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """Top-left corner of the ``size`` square (on a half-size grid) whose input noise is largest."""
    h, w = photo.shape[:2]
    best, corner = -1.0, (0, 0)
    for top in range(0, max(1, h - size + 1), size // 2):
        for left in range(0, max(1, w - size + 1), size // 2):
            s = sigma(photo[top : top + size, left : left + size])
            if s > best:
                best, corner = s, (top, left)
    return corner


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--old", default=None, help="an earlier checkpoint, scored as model_old")
    p.add_argument("--crops", type=Path, default=None)
    p.add_argument("--csv", type=Path, default=None)
    args = p.parse_args()
    rows = []
    for path in find_images(args.data):
        photo = np.asarray(open_image(path).convert("RGB"), dtype=np.float32) / 255
        level = estimated_sigma(photo.transpose(2, 0, 1))
        outputs = {"model": restore(photo, args.checkpoint)}
        if args.old:
            outputs["model_old"] = restore(photo, args.old)
        outputs["ffdnet"] = baselines.ffdnet(photo, level)
        outputs["cbm3d"] = baselines.cbm3d(photo, level)
        for method, out in outputs.items():
            left = noise_left(photo, out)
            rows.append(dict(photo=path.name, method=method, level=level * 255, noise_left=left.overall,
                             noisy_tiles=left.noisy_share, tile_iqr=left.tile_iqr))
        if args.crops:
            args.crops.mkdir(parents=True, exist_ok=True)
            top, left = noisiest_box(photo)
            panels = [photo] + [outputs[m] for m in ("model", "ffdnet", "cbm3d")]
            strip = np.concatenate([a[top : top + CROP, left : left + CROP] for a in panels], axis=1)
            Image.fromarray((np.clip(strip, 0, 1) * 255).round().astype(np.uint8)).save(args.crops / f"{path.stem}.png")
    table = pd.DataFrame(rows)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False, float_format="%.4f")
    print("| photo | estimated level | method | noise left | tiles left noisy | tile spread (IQR) |")
    print("|---|---:|---|---:|---:|---:|")
    for r in table.itertuples():
        print(f"| {r.photo} | {r.level:.1f} | {r.method} | {r.noise_left:.2f} | {r.noisy_tiles:.0%} | {r.tile_iqr:.2f} |")
    print()
    met_all = True
    for photo, t in table.groupby("photo", sort=False):
        m, f = t.set_index("method").loc["model"], t.set_index("method").loc["ffdnet"]
        ok = (m.noise_left <= f.noise_left + NOISE_MARGIN, m.noisy_tiles <= f.noisy_tiles + SHARE_MARGIN,
              m.noise_left <= 1.0)
        met_all &= all(ok)
        print(f"- {photo}: noise left {m.noise_left:.2f} vs FFDNet {f.noise_left:.2f} + {NOISE_MARGIN:.2f} "
              f"({'met' if ok[0] else 'missed'}); noisy tiles {m.noisy_tiles:.0%} vs FFDNet {f.noisy_tiles:.0%} "
              f"+ {SHARE_MARGIN:.0%} ({'met' if ok[1] else 'missed'}); adds no noise ({'met' if ok[2] else 'missed'})")
    print(f"- all photos: {'met' if met_all else 'missed'}")


if __name__ == "__main__":
    main()
