"""Start-up cost of the command line, measured side by side in one run (figures, not a test).

    .venv/bin/python bench/startup.py [--repeats 5] [--threads 1]

Times, as the median of ``--repeats`` fresh processes each:

- ``python -c "import denoise_core"`` (the package alone; its names load on first use);
- ``python -c "import torch"`` (for comparison: a restore with cached ONNX graphs no longer imports it);
- ``python -m denoise_core restore`` of a 256x256 photo with the shipped model, its ONNX
  graphs in the disk cache (a first, uncached restore is timed once, in a fresh cache folder);
  one more cached restore runs under ``-X importtime`` to show whether torch was imported;
- the same restore of one photo at several sizes (``--sizes``) with ``--backend onnxruntime`` (cached
  graphs, no torch) and ``--backend bf16`` (imports torch), and what ``auto`` picks at each size
  (`denoise_core.inference.startup_backend`: bf16 from `STARTUP_BF16_PIXELS` up on a CPU with native bf16).

The target: the cached restore costs at most 1.5 s more than the import.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from a checkout


def _time(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default="640x480,1024x768,1280x960,2048x1536,4000x3000",
                        help="comma-separated WxH for the size sweep; empty: no sweep")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = tmp / "photo.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(photo)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "DENOISE_CACHE_DIR": str(tmp / "cache")}
        restore = [sys.executable, "-m", "denoise_core", "restore", str(photo), str(tmp / "out.png"), "--no-progress"]
        first = _time(restore, env)  # empty cache: exports the graphs
        rows = {
            "import denoise_core": [_time([sys.executable, "-c", "import denoise_core"], env) for _ in range(args.repeats)],
            "import torch": [_time([sys.executable, "-c", "import torch"], env) for _ in range(args.repeats)],
            "restore 256x256 (cached ONNX)": [_time(restore, env) for _ in range(args.repeats)],
        }
        traced = subprocess.run([sys.executable, "-X", "importtime", *restore[1:]], env=env, cwd=ROOT, capture_output=True, text=True)
        imported_torch = any(line.rstrip().endswith("| torch") for line in traced.stderr.splitlines())
        sweep = [_sweep_row(tmp, env, size, args.repeats) for size in filter(None, args.sizes.split(","))]
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"{args.threads} thread(s), median of {args.repeats} processes\n")
    print("| command | seconds |\n|---|---:|")
    for k, v in med.items():
        print(f"| {k} | {v:.2f} |")
    print(f"| restore 256x256, first (exports the ONNX graphs) | {first:.2f} |")
    extra = med["restore 256x256 (cached ONNX)"] - med["import denoise_core"]
    print(f"\nrestore - import denoise_core = {extra:.2f} s (target <= 1.5 s: {'met' if extra <= 1.5 else 'missed'}); "
          f"restore - import torch = {med['restore 256x256 (cached ONNX)'] - med['import torch']:.2f} s; "
          f"the cached restore imports torch: {'yes' if imported_torch else 'no'}")
    if sweep:
        from denoise_core.inference import STARTUP_BF16_PIXELS

        print(f"\none photo by size, median of {args.repeats} processes (auto: bf16 from {STARTUP_BF16_PIXELS:,} pixels "
              "on a CPU with native bf16)\n")
        print("| photo | megapixels | onnxruntime (cached, no torch) s | bf16 s | faster | auto picks |")
        print("|---|---:|---:|---:|---|---|")
        for row in sweep:
            print("| {size} | {mp:.2f} | {onnxruntime:.2f} | {bf16:.2f} | {faster} | {auto} |".format(**row))


def _sweep_row(tmp: Path, env: dict, size: str, repeats: int) -> dict:
    from denoise_core.inference import startup_backend

    w, h = map(int, size.lower().split("x"))
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = 127 + 60 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 53.0)[..., None]
    noisy = smooth + np.random.default_rng(0).normal(0, 20, (h, w, 3))
    photo = tmp / f"photo-{w}x{h}.png"
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(photo)
    seconds = {}
    for backend in ("onnxruntime", "bf16"):
        cmd = [sys.executable, "-m", "denoise_core", "restore", str(photo), str(tmp / "out.png"), "--no-progress",
               "--backend", backend]
        seconds[backend] = statistics.median(_time(cmd, env) for _ in range(repeats))
    chosen = startup_backend("auto", "auto", w * h)
    return {"size": f"{w}x{h}", "mp": w * h / 1e6, **seconds, "faster": min(seconds, key=seconds.get),
            "auto": "bf16" if chosen == "auto" else chosen}


if __name__ == "__main__":
    main()
