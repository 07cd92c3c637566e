"""Adaptive vs uniform degradation weights: benchmark two training runs side by side.

    .venv/bin/python bench/ablation.py --adaptive runs/adaptive --uniform runs/uniform \
        --data ../shared/data/bench/CBSD68 --out bench/out/ablation

Both runs should share data, seed and budget and differ only in ``--uniform``.
Each run's ``best.pt`` is benchmarked (methods identity and model, every setting
unless ``--settings``) into ``OUT/<name>/``; the script prints, and writes to
``OUT/ablation.md``, the model's mean PSNR per setting for both runs, their mean
over settings, and the worst setting, in dB and as gain over the degraded input
(settings differ in how hard they are, so the worst gain is the fairer
worst case).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# Run as a script from anywhere: make the repository's package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from denoise_core.bench import SETTINGS, parse_names, run_benchmark  # noqa: E402
from denoise_core.checkpoint import atomic_write_text  # noqa: E402


def per_setting(results: pd.DataFrame) -> pd.DataFrame:
    """Columns identity, model, gain: mean PSNR per setting, in table order."""
    means = results.groupby(["setting", "method"])["psnr"].mean().unstack("method")
    means = means.reindex([s for s in SETTINGS if s in means.index])
    return means.assign(gain=means["model"] - means["identity"])[["identity", "model", "gain"]]


def compare(tables: dict[str, pd.DataFrame]) -> str:
    """Markdown: per-setting model PSNR (gain) of each run, then mean and worst setting."""
    names = list(tables)
    settings = list(next(iter(tables.values())).index)
    lines = ["| setting | identity | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for s in settings:
        cells = [f"{tables[n].loc[s, 'model']:.2f} ({tables[n].loc[s, 'gain']:+.2f})" for n in names]
        lines.append(f"| {s} | {tables[names[0]].loc[s, 'identity']:.2f} | " + " | ".join(cells) + " |")
    mean = [f"{t['model'].mean():.2f} ({t['gain'].mean():+.2f})" for t in tables.values()]
    lines.append(f"| mean | {tables[names[0]]['identity'].mean():.2f} | " + " | ".join(mean) + " |")
    worst_db = [f"{t['model'].min():.2f} ({t['model'].idxmin()})" for t in tables.values()]
    worst_gain = [f"{t['gain'].min():+.2f} ({t['gain'].idxmin()})" for t in tables.values()]
    lines.append("| worst PSNR | | " + " | ".join(worst_db) + " |")
    lines.append("| worst gain | | " + " | ".join(worst_gain) + " |")
    return "\n".join(
        ["Model PSNR in dB, mean over images (in brackets: gain over the degraded input).", "", *lines, ""]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adaptive", required=True, type=Path, help="run folder trained with adaptive weights")
    p.add_argument("--uniform", required=True, type=Path, help="run folder trained with --uniform")
    p.add_argument("--data", required=True, help="folder of clean benchmark images")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--checkpoint-name", default="best.pt", help="file inside each run folder")
    p.add_argument("--settings", default=None, help="comma-separated (default: all)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    settings = parse_names(args.settings, SETTINGS, "setting")
    tables = {}
    for name, run in (("adaptive", args.adaptive), ("uniform", args.uniform)):
        results = run_benchmark(
            args.data, args.out / name, checkpoint=run / args.checkpoint_name, settings=settings,
            methods=["identity", "model"], limit=args.limit, seed=args.seed, progress=not args.no_progress,
        )
        tables[name] = per_setting(results)
    text = "# Adaptive vs uniform degradation weights\n\n" + compare(tables)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "ablation.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
