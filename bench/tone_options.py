"""Ways of keeping the input's tone, compared on the benchmark's settings (figures, not tests): prints a Markdown table.

    .venv/bin/python bench/tone_options.py --limit 12 [--checkpoint CKPT]

One model pass per case (`restore_tensor`: the raw model, no lock and no exposure curve), then each
option applied to that same output: ``none`` (the raw model), ``global`` (the input's
per-channel means), ``lowpass_S`` (the input's low frequencies at sigma S px), and the
``aware_*`` forms of both (`denoise_core.tone.keep_tone` with ``noise_aware``:
the clipping of noise and impulses allowed for). Same seeded inputs, PSNR and tone shift as
`denoise_core.bench`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from denoise_core import bench  # noqa: E402
from denoise_core.data import find_images  # noqa: E402
from denoise_core.images import load_rgb_tensor  # noqa: E402
from denoise_core.inference import load_runner  # noqa: E402
from denoise_core.restoration import restore_tensor  # noqa: E402
from denoise_core.tone import keep_tone  # noqa: E402

# name -> (sigma, noise_aware); sigma False: no lock, None: channel means only
OPTIONS = {"none": (False, False), "global": (None, False), "lowpass_8": (8.0, False), "lowpass_16": (16.0, False),
           "aware_global": (None, True), "aware_8": (8.0, True), "aware_16": (16.0, True),
           "aware_32": (32.0, True)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/bench/CBSD68"))
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--limit", type=int, default=12)
    p.add_argument("--settings", default=",".join(bench.SETTINGS))
    p.add_argument("--out", default=None, help="also write the rows to this CSV")
    args = p.parse_args()
    settings = bench.parse_names(args.settings, bench.SETTINGS, "setting")
    run = load_runner(args.checkpoint)
    rows = []
    for path in find_images(args.data)[: args.limit]:
        clean = load_rgb_tensor(path)
        for s in settings:
            case = bench.degrade(s, clean, 0, path.name)
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
            raw = restore_tensor(run, t(case.degraded))[0].permute(1, 2, 0).numpy()
            for name, (sigma, aware) in OPTIONS.items():
                out = raw if sigma is False else keep_tone(t(case.degraded), t(raw), sigma, aware)[0].permute(1, 2, 0).numpy()
                psnr, _ = bench.score(case.clean, out)
                rows.append(dict(option=name, setting=s, image=path.name, psnr=psnr, tone=bench.tone_shift(case.clean, out)))
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    psnr = df.pivot_table(index="option", columns="setting", values="psnr", sort=False)[settings]
    tone = df.pivot_table(index="option", columns="setting", values="tone", sort=False)[settings]
    deg = [s for s in settings if s != "clean"]
    cells = [[o, *(f"{psnr.loc[o, s]:.2f} / {tone.loc[o, s]:.2f}" for s in settings), f"{psnr.loc[o, deg].mean():.2f}"]
             for o in psnr.index]
    print(f"PSNR (dB) / tone shift (levels), first {args.limit} images of {args.data}, "
          f"checkpoint {args.checkpoint or 'shipped default'}\n")
    print(bench._md_table(["option", *settings, "mean (degraded)"], cells))


if __name__ == "__main__":
    main()
