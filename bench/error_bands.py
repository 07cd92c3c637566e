"""Where the error left on real pairs lies, by spatial frequency: what a denoiser removes and what it cannot.

    .venv/bin/python bench/error_bands.py --data ../shared/data/bench/PolyU-dev [--checkpoint CKPT]

Pairs: ``*_real.*`` (noisy) beside ``*_mean.*`` (the ground truth), as `denoise_core.bench` reads them. The error
(image − ground truth) of the input and of ``restore`` at "auto" is split with the FFT into the per-channel mean (a
tone offset between the shot and the mean of many shots) and radial frequency bands given as periods in pixels; by
Parseval the bands add up to the whole MSE. Prints each band's mean MSE (× 1e5) and the share the model removes,
then the mean PSNR of the input and of the model, as they are and with their per-channel offset to the ground truth
taken away: how much of the score the offset holds, which a restore that keeps the photo's tone leaves in place.
Last, how the input's error and the training's ``camera_noise`` (drawn as training draws it, on the ground truths,
at a like level) share their power among the bands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from denoise_core.bench import find_pairs  # noqa: E402
from denoise_core.degradations import apply  # noqa: E402
from denoise_core.images import open_image  # noqa: E402
from denoise_core.restoration import restore  # noqa: E402

# Band edges as periods in pixels, longest first; the last band runs to the Nyquist corner.
PERIODS = (16.0, 4.0, 2.0)


def band_powers(err: np.ndarray, periods: tuple[float, ...] = PERIODS) -> np.ndarray:
    """Mean squared error of ``err`` (H, W, C) split into [offset, > periods[0], periods[0]-periods[1], …, < periods[-1]];
    the parts sum to ``(err ** 2).mean()``."""
    h, w, _ = err.shape
    spec = np.abs(np.fft.fft2(err, axes=(0, 1))) ** 2 / (h * w) ** 2  # Parseval: sum over frequencies = mean(err²)
    power = spec.sum(-1) / err.shape[-1]
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
    edges = [0.0, *(1.0 / p for p in periods), np.inf]
    parts = [power[0, 0]]
    for lo, hi in zip(edges[:-1], edges[1:]):
        parts.append(power[(f > lo) & (f <= hi)].sum())
    return np.asarray(parts)


def _psnr(mse: float) -> float:
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def _read(path: Path) -> np.ndarray:
    return np.asarray(open_image(path).convert("RGB"), dtype=np.float64) / 255


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--severity", type=float, default=0.25, help="camera_noise severity (0.25: σ ≈ 4, as PolyU)")
    p.add_argument("--draws", type=int, default=4, help="camera_noise draws per ground truth")
    args = p.parse_args()
    generator = torch.Generator().manual_seed(0)
    rows: dict[str, list] = {"input": [], "model": [], "camera_noise": []}
    psnr: dict[str, list[float]] = {"input": [], "model": [], "input, offset removed": [], "model, offset removed": []}
    for noisy_path, clean_path in find_pairs(args.data):
        noisy, clean = _read(noisy_path), _read(clean_path)
        out = np.clip(restore(noisy.astype(np.float32), args.checkpoint), 0, 1).astype(np.float64)
        for name, img in (("input", noisy), ("model", out)):
            err = img - clean
            rows[name].append(band_powers(err))
            psnr[name].append(_psnr(float((err**2).mean())))
            psnr[f"{name}, offset removed"].append(_psnr(float(((err - err.mean((0, 1))) ** 2).mean())))
        x = torch.from_numpy(clean).permute(2, 0, 1).float()
        for _ in range(args.draws):
            noise = apply("camera_noise", x, args.severity, generator) - x
            rows["camera_noise"].append(band_powers(noise.permute(1, 2, 0).double().numpy()))
    n = len(psnr["input"])
    labels = ["per-channel offset", f"> {PERIODS[0]:g} px"]
    labels += [f"{a:g}-{b:g} px" for a, b in zip(PERIODS[:-1], PERIODS[1:])] + [f"< {PERIODS[-1]:g} px"]
    a, b = np.mean(rows["input"], 0), np.mean(rows["model"], 0)
    print(f"{n} pairs of {args.data.name}, checkpoint: {args.checkpoint or 'shipped default'}\n")
    print("| error band (period) | input MSE ×1e5 | model MSE ×1e5 | removed |\n|---|---:|---:|---:|")
    for label, x, y in zip(labels, a, b):
        print(f"| {label} | {x * 1e5:.2f} | {y * 1e5:.2f} | {1 - y / x:.0%} |")
    print(f"| all | {a.sum() * 1e5:.2f} | {b.sum() * 1e5:.2f} | {1 - b.sum() / a.sum():.0%} |\n")
    print("| restore | PSNR (dB) | − input |\n|---|---:|---:|")
    for name, values in psnr.items():
        gain = np.mean(values) - np.mean(psnr["input" if name == "model" else "input, offset removed"])
        print(f"| {name} | {np.mean(values):.2f} | {'–' if name.startswith('input') else f'{gain:+.2f}'} |")
    c = np.mean(rows["camera_noise"], 0)
    print(f"\n| share of the power, by band (offset left out) | {' | '.join(labels[1:])} | σ (0-255) |")
    print("|---|" + "---:|" * len(labels))
    for name, v in ((f"{args.data.name} input error", a), (f"training's camera_noise, severity {args.severity:g}", c)):
        shares = " | ".join(f"{x / v[1:].sum():.0%}" for x in v[1:])
        print(f"| {name} | {shares} | {255 * np.sqrt(v[1:].sum()):.1f} |")


if __name__ == "__main__":
    main()
