"""Do no harm on real photos with no ground truth: scikit-image's colour sample photos restored as they are.

    .venv/bin/python bench/do_no_harm.py [--checkpoint CKPT] [--crops docs/results/do-no-harm]

For each photo, restored by `restore` with its defaults (tones kept) and with
``correct_tone=True``: the tone shift (mean over channels of |channel mean after -
channel mean before|, levels on 0-255), the mean absolute change per pixel (levels)
and PSNR(restored, photo). Prints a Markdown table; with ``--crops``, writes a
before/after crop of each photo there (PNG, left: the photo, right: the default restore,
then the restore with tone correction).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from denoise_core import bench  # noqa: E402
from denoise_core.images import open_image  # noqa: E402
from denoise_core.restoration import restore  # noqa: E402
from denoise_core.samples import sample_image_dir  # noqa: E402

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg", "ihc.png",
          "hubble_deep_field.jpg")
CROP = 160


def measure(photo: np.ndarray, restored: np.ndarray) -> tuple[float, float, float]:
    """(tone shift, mean absolute change, PSNR) of ``restored`` against ``photo``, both uint8 (H, W, 3)."""
    a, b = photo.astype(np.float32) / 255, restored.astype(np.float32) / 255
    with np.errstate(divide="ignore"):
        psnr = bench.score(a, b)[0]
    return bench.tone_shift(a, b), float(np.abs(a - b).mean() * 255), psnr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--crops", type=Path, default=None, help="folder for before/after crops")
    args = p.parse_args()
    folder = sample_image_dir()
    rows = []
    for name in PHOTOS:
        img = open_image(folder / name).convert("RGB")
        photo = np.asarray(img)
        kept = np.asarray(restore(img, args.checkpoint))
        fixed = np.asarray(restore(img, args.checkpoint, correct_tone=True))
        rows.append([name, f"{img.width}x{img.height}", *(f"{v:.2f}" for v in (*measure(photo, kept), *measure(photo, fixed)))])
        if args.crops:
            args.crops.mkdir(parents=True, exist_ok=True)
            h, w = photo.shape[:2]
            top, left = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
            strip = np.concatenate([a[top : top + CROP, left : left + CROP] for a in (photo, kept, fixed)], axis=1)
            Image.fromarray(strip).save(args.crops / f"{Path(name).stem}.png", optimize=True)
    header = ["photo", "size", "tone shift", "mean change", "PSNR vs photo", "tone shift (correct_tone)",
              "mean change (correct_tone)", "PSNR vs photo (correct_tone)"]
    print(f"checkpoint: {args.checkpoint or 'shipped default'}; levels on 0-255\n")
    print(bench._md_table(header, rows))


if __name__ == "__main__":
    main()
