"""Milliseconds per training crop of every degradation, and of the noise-level estimate a noise-map model adds.

    OMP_NUM_THREADS=1 .venv/bin/python bench/degradation_speed.py [--patch 64] [--repeats 200]

Each degradation runs on crops of a training-sized photo (scikit-image's astronaut), one crop per call, with a new
seeded generator each time, as `denoise_core.data.TrainCrops` calls it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage import data  # noqa: E402

from denoise_core import degradations, noise_level  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    photo = torch.from_numpy(data.astronaut().astype(np.float32) / 255).permute(2, 0, 1)
    crops = [photo[:, (i * 37) % 400 : (i * 37) % 400 + args.patch, (i * 53) % 400 : (i * 53) % 400 + args.patch]
             for i in range(args.repeats)]
    print(f"| degradation | ms per {args.patch}-px crop |")
    print("|---|---:|")
    for name in degradations.NAMES:
        start = time.perf_counter()
        for i, c in enumerate(crops):
            degradations.apply(name, c, (i % 10) / 9, torch.Generator().manual_seed(i))
        print(f"| {name} | {(time.perf_counter() - start) / len(crops) * 1e3:.2f} |")
    start = time.perf_counter()
    for c in crops:
        noise_level.estimate(c.numpy())
    print(f"| noise-level estimate (noise-map models) | {(time.perf_counter() - start) / len(crops) * 1e3:.2f} |")


if __name__ == "__main__":
    main()
