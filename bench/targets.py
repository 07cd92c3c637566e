"""Issue-6 targets read from a benchmark's results.csv: one row per setting, model vs input vs best classical method.

    .venv/bin/python bench/targets.py bench/out/cbsd68/results.csv

Prints a Markdown table (mean PSNR in dB over the images each method ran on; SSIM in
brackets) and the checks: the model above the input everywhere, above the best
classical baseline where one applies, above CBM3D on gaussian_25, and at least 10x
faster than CBM3D per image. Nothing here measures anything: it reads the CSV.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from denoise_core.bench import MODEL_METHODS, SETTINGS  # noqa: E402

CLASSICAL_EXCLUDED = {"identity", *MODEL_METHODS}


def target_table(results: pd.DataFrame, model: str = "model") -> tuple[str, list[str]]:
    """(Markdown table, list of check lines) for the settings present in ``results``; ``model``:
    the method that stands for the model (``model_x8``: its self-ensemble)."""
    others = [m for m in MODEL_METHODS if m != model]
    results = results[~results["method"].isin(others)].replace({"method": {model: "model"}})
    means = results.groupby(["setting", "method"])[["psnr", "ssim", "seconds"]].mean()
    counts = results.groupby(["setting", "method"])["image"].nunique()
    lines = ["| setting | input | model | best classical | model − best classical |", "|---|---:|---:|---|---:|"]
    beats_input, beats_classical = [], []
    for s in [s for s in SETTINGS if s in means.index.get_level_values(0)]:
        m = means.loc[s]
        if "model" not in m.index:
            continue
        model, ident = m.loc["model"], m.loc["identity"]
        classical = m.drop([x for x in CLASSICAL_EXCLUDED if x in m.index])
        # A method counts as a baseline here only when it ran on every image the model ran on.
        full = [x for x in classical.index if counts[(s, x)] == counts[(s, "model")]]
        classical = classical.loc[full]
        cell = f"{model.psnr:.2f} ({model.ssim:.3f})"
        if len(classical):
            best = classical["psnr"].idxmax()
            b = classical.loc[best]
            best_cell, diff = f"{best} {b.psnr:.2f} ({b.ssim:.3f})", f"{model.psnr - b.psnr:+.2f}"
            beats_classical.append((s, model.psnr > b.psnr))
        else:
            best_cell, diff = "–", "–"
        lines.append(f"| {s} | {ident.psnr:.2f} ({ident.ssim:.3f}) | {cell} | {best_cell} | {diff} |")
        beats_input.append((s, model.psnr > ident.psnr))

    checks = []

    def verdict(pairs):
        missed = [s for s, ok in pairs if not ok]
        return f"{len(pairs) - len(missed)} of {len(pairs)}" + (f" (missed: {', '.join(missed)})" if missed else "")

    checks.append(f"- model above the input: {verdict(beats_input)}")
    checks.append(f"- model above the best classical baseline: {verdict(beats_classical)}")
    if ("gaussian_25", "cbm3d") in means.index:
        g = means.loc["gaussian_25"]
        checks.append(f"- gaussian_25: model {g.loc['model', 'psnr']:.2f} dB vs CBM3D {g.loc['cbm3d', 'psnr']:.2f} dB "
                      f"({'above' if g.loc['model', 'psnr'] > g.loc['cbm3d', 'psnr'] else 'below'})")
    if (results["method"] == "cbm3d").any():
        on = results.loc[results["method"] == "cbm3d", ["setting", "image"]]
        both = results.merge(on, on=["setting", "image"])
        t_model = both.loc[both["method"] == "model", "seconds"].mean()
        t_cbm3d = both.loc[both["method"] == "cbm3d", "seconds"].mean()
        checks.append(f"- seconds per image on the same cases: model {t_model:.2f}, CBM3D {t_cbm3d:.2f} "
                      f"({t_cbm3d / t_model:.0f}x; target 10x)")
    return "\n".join(lines), checks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, help="results.csv written by `python -m denoise_core bench`")
    p.add_argument("--model", default="model", choices=MODEL_METHODS, help="which model method to check")
    args = p.parse_args(argv)
    table, checks = target_table(pd.read_csv(args.results), args.model)
    print(table)
    print()
    print("\n".join(checks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
