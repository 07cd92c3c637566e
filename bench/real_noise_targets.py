"""The real-noise targets, read from benchmark outputs: each target, its figures, and met or missed.

    .venv/bin/python bench/real_noise_targets.py --polyu bench/out/polyu/results.csv \\
        --cbsd68 bench/out/cbsd68/results.csv --mcmaster bench/out/mcmaster/results.csv \\
        --previous-cbsd68 OLD/cbsd68.csv --previous-mcmaster OLD/mcmaster.csv --real docs/results/real-photos.csv \\
        --speed bench/out/speed/results.csv --previous-speed bench/out/speed-old/results.csv

``--polyu``: a run on PolyU-dev's real pairs (`bench --data ../shared/data/bench/PolyU-dev`); ``--cbsd68`` and
``--mcmaster``: full runs with ``model`` and ``model_sigma``; ``--previous-*``: the previous model's rows on the same
sets (its ``model`` rows are what "against today's model" compares with); ``--real``: `bench/real_photos.py --csv`;
``--speed`` / ``--previous-speed``: one-thread runs of ``gaussian_25`` with ``model`` and ``ffdnet`` on the same images,
new and previous model, made one after the other. Nothing here measures anything: it reads the CSVs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

GAUSSIAN = ("gaussian_15", "gaussian_25", "gaussian_50")
NOT_COMPARED = ("clean", "real")  # do-no-harm has its own target; real noise is not synthetic


def _means(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    return pd.read_csv(path).groupby(["setting", "method"])[["psnr", "ssim", "tone", "seconds"]].mean()


def _line(ok: bool, text: str) -> str:
    return f"- {text}: **{'met' if ok else 'missed'}**"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("polyu", "cbsd68", "mcmaster", "previous-cbsd68", "previous-mcmaster", "real", "speed", "previous-speed"):
        p.add_argument(f"--{name}", type=Path)
    args = p.parse_args(argv)
    out = []
    polyu = _means(args.polyu)
    if polyu is not None:
        m, i = polyu.loc[("real", "model"), "psnr"], polyu.loc[("real", "identity"), "psnr"]
        out.append(_line(m - i >= 2.0, f"real pairs: model {m:.2f} dB, input {i:.2f} (+{m - i:.2f}; target +2.0)"))
        if ("real", "cbm3d") in polyu.index:
            c = polyu.loc[("real", "cbm3d"), "psnr"]
            out.append(_line(m > c, f"real pairs: above CBM3D told the estimated level ({m:.2f} vs {c:.2f})"))
        if ("real", "ffdnet") in polyu.index:
            f = polyu.loc[("real", "ffdnet"), "psnr"]
            out.append(f"- real pairs: FFDNet told the estimated level {f:.2f} dB (model {m - f:+.2f})")
        out.append(_line(m >= 38.0, f"moonshot: 38.0 dB on the real pairs ({m:.2f})"))
    if args.real is not None:
        real = pd.read_csv(args.real)
        for photo, t in real.groupby("photo", sort=False):
            t = t.set_index("method")
            mo, ff = t.loc["model"], t.loc["ffdnet"]
            ok = (mo.noise_left <= ff.noise_left + 0.10 and mo.noisy_tiles <= ff.noisy_tiles + 0.15 and mo.noise_left <= 1.0)
            out.append(_line(ok, f"{photo}: noise left {mo.noise_left:.2f} (FFDNet {ff.noise_left:.2f}, target <= +0.10), "
                                 f"tiles left noisy {mo.noisy_tiles:.0%} (FFDNet {ff.noisy_tiles:.0%}, target <= +15 points), "
                                 f"adds no noise"))
    for label, new_path, old_path in (("CBSD68", args.cbsd68, args.previous_cbsd68), ("McMaster", args.mcmaster, args.previous_mcmaster)):
        new, old = _means(new_path), _means(old_path)
        if new is None:
            continue
        for s in GAUSSIAN:
            if (s, "model") not in new.index:
                continue
            m = new.loc[(s, "model"), "psnr"]
            if (s, "ffdnet") in new.index:
                f = new.loc[(s, "ffdnet"), "psnr"]
                out.append(_line(m >= f, f"{label} {s}: blind model {m:.2f} vs FFDNet told sigma {f:.2f} ({m - f:+.2f})"))
                if s == "gaussian_25":
                    out.append(_line(m >= f + 0.3, f"moonshot {label} {s}: FFDNet + 0.3 ({m - f:+.2f})"))
            if (s, "model_sigma") in new.index:
                t = new.loc[(s, "model_sigma"), "psnr"]
                out.append(_line(t >= m - 0.005, f"{label} {s}: told sigma {t:.2f} vs blind {m:.2f} ({t - m:+.2f})"))
        if label == "CBSD68" and ("jpeg_10", "model") in new.index:
            m, i = new.loc[("jpeg_10", "model"), "psnr"], new.loc[("jpeg_10", "identity"), "psnr"]
            out.append(_line(m - i >= 1.5, f"{label} jpeg_10: +{m - i:.2f} dB over the input (target +1.5)"))
        if ("clean", "model") in new.index:
            c = new.loc[("clean", "model")]
            out.append(_line(c.psnr >= 45 and c.tone <= 0.5, f"{label} clean: {c.psnr:.2f} dB, tone shift {c.tone:.2f}"))
        if old is not None:
            drops = []
            for s in sorted({s for s, meth in new.index if meth == "model"} - set(NOT_COMPARED)):
                if (s, "model") in old.index:
                    d = new.loc[(s, "model"), "psnr"] - old.loc[(s, "model"), "psnr"]
                    drops.append((s, d))
            worst = [f"{s} {d:+.2f}" for s, d in drops if d < -0.2]
            out.append(_line(not worst, f"{label}: no setting more than 0.2 dB under the previous model "
                                        f"(changes: {', '.join(f'{s} {d:+.2f}' for s, d in drops)})"))
    speed, old_speed = _means(args.speed), _means(args.previous_speed)
    if speed is not None and old_speed is not None:
        t, t0 = speed.loc[("gaussian_25", "model"), "seconds"], old_speed.loc[("gaussian_25", "model"), "seconds"]
        f = speed.loc[("gaussian_25", "ffdnet"), "seconds"]
        out.append(_line(t <= 1.1 * t0 and t < f, f"speed: {t:.3f} s/image vs previous {t0:.3f} ({t / t0 - 1:+.0%}, "
                                                  f"target within 10 %), FFDNet {f:.3f}"))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
