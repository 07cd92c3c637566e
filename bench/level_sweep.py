"""Real pairs restored at multiples of the estimated noise level, and with the self-ensemble: whether telling the
model more (or averaging eight flips) is what a real-noise benchmark lacks.

    .venv/bin/python bench/level_sweep.py --data ../shared/data/bench/PolyU-dev [--checkpoint CKPT] [--scales 1,1.5,2,3] [--no-ensemble]

Pairs: ``*_real.*`` (noisy) beside ``*_mean.*`` (the ground truth), as `denoise_core.bench` reads them. Prints the
mean PSNR (RGB, 0-255 peak) of the input, of ``restore`` told each scale × the level "auto" estimates, and of the
self-ensemble ("Best quality") at "auto".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio  # noqa: E402

from denoise_core.bench import find_pairs  # noqa: E402
from denoise_core.images import open_image  # noqa: E402
from denoise_core.restoration import estimate_noise_level, restore  # noqa: E402


def _read(path: Path) -> np.ndarray:
    return np.asarray(open_image(path).convert("RGB"), dtype=np.float32) / 255


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--scales", default="1,1.5,2,3")
    p.add_argument("--no-ensemble", action="store_true", help="skip the self-ensemble (eight restores per pair)")
    args = p.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    scores: dict[str, list[float]] = {"input": [], **{f"{s:g} × auto": [] for s in scales}}
    if not args.no_ensemble:
        scores["self-ensemble"] = []
    for noisy_path, clean_path in find_pairs(args.data):
        noisy, clean = _read(noisy_path), _read(clean_path)
        level = estimate_noise_level(noisy)
        scores["input"].append(peak_signal_noise_ratio(clean, noisy, data_range=1))
        for s in scales:
            out = restore(noisy, args.checkpoint, noise_level=level * s)
            scores[f"{s:g} × auto"].append(peak_signal_noise_ratio(clean, np.clip(out, 0, 1), data_range=1))
        if args.no_ensemble:
            continue
        out = restore(noisy, args.checkpoint, ensemble=True)
        scores["self-ensemble"].append(peak_signal_noise_ratio(clean, np.clip(out, 0, 1), data_range=1))
    print(f"{len(scores['input'])} pairs of {args.data.name}, checkpoint: {args.checkpoint or 'shipped default'}\n")
    print("| restore | PSNR (dB) | − input |\n|---|---:|---:|")
    base = float(np.mean(scores["input"]))
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.2f} | {'–' if name == 'input' else f'{np.mean(values) - base:+.2f}'} |")


if __name__ == "__main__":
    main()
