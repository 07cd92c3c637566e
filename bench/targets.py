"""Model targets read from a benchmark's results.csv: one row per setting, model vs input, classical methods and FFDNet.

    .venv/bin/python bench/targets.py bench/out/cbsd68/results.csv

Prints a Markdown table (mean PSNR in dB over the images each method ran on; SSIM in
brackets; tone shift in levels) and the checks: on ``clean`` PSNR >= 45 dB and tone
shift <= 0.5; the model above the input everywhere, above the best classical baseline
where one applies, above CBM3D and (the moonshot) FFDNet on gaussian_15/25/50; seconds
per image at most FFDNet's and 20x below CBM3D's on the same cases. Nothing here
measures anything: it reads the CSV.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from denoise_core.bench import MODEL_METHODS, SETTINGS  # noqa: E402

LEARNED = {"ffdnet"}  # learned peers: compared on their own line, not counted as classical
CLASSICAL_EXCLUDED = {"identity", *MODEL_METHODS, *LEARNED}
CLEAN_PSNR, CLEAN_TONE = 45.0, 0.5  # do-no-harm targets on the clean setting
PEER_SETTINGS = ("gaussian_15", "gaussian_25", "gaussian_50")


def target_table(results: pd.DataFrame, model: str = "model") -> tuple[str, list[str]]:
    """(Markdown table, list of check lines) for the settings present in ``results``; ``model``:
    the method that stands for the model (``model_x8``: its self-ensemble, ``model_tone``: free to change tone)."""
    others = [m for m in MODEL_METHODS if m != model]
    results = results[~results["method"].isin(others)].replace({"method": {model: "model"}})
    if "tone" not in results:
        results = results.assign(tone=float("nan"))  # a results.csv from before the tone column
    means = results.groupby(["setting", "method"])[["psnr", "ssim", "tone", "seconds"]].mean()
    counts = results.groupby(["setting", "method"])["image"].nunique()
    lines = ["| setting | input | model | tone shift | best classical | model − best classical | model − CBM3D | model − FFDNet |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    beats_input, beats_classical, beats = [], [], {"cbm3d": [], "ffdnet": []}
    checks = []
    for s in [s for s in SETTINGS if s in means.index.get_level_values(0)]:
        m = means.loc[s]
        if "model" not in m.index:
            continue
        mod = m.loc["model"]
        complete = [x for x in m.index if counts[(s, x)] == counts[(s, "model")]]  # ran on every image the model did
        classical = m.loc[[x for x in complete if x not in CLASSICAL_EXCLUDED]]
        cell = f"{mod.psnr:.2f} ({mod.ssim:.3f})"
        best_cell, diff = "–", "–"
        if len(classical):
            best = classical["psnr"].idxmax()
            b = classical.loc[best]
            best_cell, diff = f"{best} {b.psnr:.2f} ({b.ssim:.3f})", f"{mod.psnr - b.psnr:+.2f}"
            beats_classical.append((s, mod.psnr > b.psnr))
        peer = {}
        for name in beats:
            peer[name] = f"{mod.psnr - m.loc[name, 'psnr']:+.2f}" if name in complete else "–"
            if name in complete and s in PEER_SETTINGS:
                beats[name].append((s, mod.psnr > m.loc[name, "psnr"]))
        ident = f"{m.loc['identity', 'psnr']:.2f} ({m.loc['identity', 'ssim']:.3f})" if "identity" in m.index else "–"
        lines.append(f"| {s} | {ident} | {cell} | {mod.tone:.2f} | {best_cell} | {diff} | {peer['cbm3d']} | {peer['ffdnet']} |")
        if "identity" in m.index:
            beats_input.append((s, mod.psnr > m.loc["identity", "psnr"]))
        if s == "clean":
            ok = mod.psnr >= CLEAN_PSNR and mod.tone <= CLEAN_TONE
            checks.append(f"- clean: PSNR {mod.psnr:.2f} dB (target >= {CLEAN_PSNR:g}), tone shift {mod.tone:.2f} levels "
                          f"(target <= {CLEAN_TONE:g}): {'met' if ok else 'missed'}")

    def verdict(pairs):
        missed = [s for s, ok in pairs if not ok]
        return f"{len(pairs) - len(missed)} of {len(pairs)}" + (f" (missed: {', '.join(missed)})" if missed else "")

    checks.append(f"- model above the input: {verdict(beats_input)}")
    checks.append(f"- model above the best classical baseline: {verdict(beats_classical)}")
    for name, label in (("cbm3d", "CBM3D"), ("ffdnet", "FFDNet (moonshot)")):
        if beats[name]:
            checks.append(f"- model above {label} on {', '.join(PEER_SETTINGS)}: {verdict(beats[name])}")
    speed = []
    for name in ("ffdnet", "cbm3d"):
        if (results["method"] == name).any():
            on = results.loc[results["method"] == name, ["setting", "image"]]
            both = results.merge(on, on=["setting", "image"])
            t_model = both.loc[both["method"] == "model", "seconds"].mean()
            t_peer = both.loc[both["method"] == name, "seconds"].mean()
            speed.append(f"{name} {t_peer:.2f} s vs model {t_model:.2f} s ({t_peer / t_model:.1f}x)")
    if speed:
        checks.append("- seconds per image on the same cases (targets: model <= FFDNet, >= 20x faster than CBM3D): "
                      + "; ".join(speed))
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
