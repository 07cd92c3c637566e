"""Training recipes compared at equal wall-clock CPU time (figures, not tests): prints a Markdown table.

    .venv/bin/python bench/recipes.py --minutes 4            # about 1 h on 2 cores for the 10 designs
    .venv/bin/python bench/recipes.py --minutes 0.2 --limit 2 --designs naf_fp32,res_bf16   # a smoke run

Three phases, each resumable (rerun the same command after a stop):

1. calibrate: every design trains 40 steps through the real loop and data pipeline
   (`denoise_core.training`); its steps/s is read from the run's own step events (steps
   10 -> 40, so start-up is left out). Run this phase on an otherwise idle machine.
2. train: every design trains ``minutes x 60 x steps/s`` steps from scratch, same data,
   seed, degradations and schedule shape (cosine over the budget). Converting the time
   budget into steps once makes the comparison independent of whatever else the machine
   does while the trainings run.
3. score: each design's final epoch on the benchmark (`denoise_core.bench`, the model
   blind, through `restore` with its defaults, tones kept; on low_light and mixed with
   ``correct_tone=True``, as a user fixing exposure gets it) on the first ``--limit`` images.

Writes ``OUT/recipes.csv`` (one row per design and setting) and ``OUT/recipes.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from denoise_core import bench  # noqa: E402
from denoise_core.history import read_events  # noqa: E402
from denoise_core.training import TrainConfig, train  # noqa: E402

# What every design shares: the shipped model's degradations and sensor noise, a from-scratch LR.
BASE = dict(
    batch_size=16, patch_size=64, learning_rate=5e-4, val_ratio=0.05, seed=0, num_workers=0, temperature=1.0,
    sensor_noise=3.0, val_max_crops=36,
    degradations=["gaussian_noise", "poisson_noise", "salt_pepper", "gaussian_blur", "motion_blur", "jpeg",
                  "low_light", "downsample", "mixed"],
)
RES = dict(block="res", amp="bf16")
DESIGNS: dict[str, dict] = {
    "naf_fp32": dict(block="naf", amp="off"),          # the shipped design
    "naf_bf16": dict(block="naf", amp="bf16"),
    "res_fp32": dict(block="res", amp="off"),
    "res_bf16": RES,
    "res_bf16_unshuffle": {**RES, "stem": "unshuffle"},
    "res_bf16_ema": {**RES, "ema": 0.999},
    "res_bf16_lognorm": {**RES, "loss_norm": "log"},
    "res_bf16_late96": {**RES, "late_patch_size": 96},  # late_epochs set from the budget: the last quarter
    "res_bf16_noise3x": {**RES, "prior": {"gaussian_noise": 3.0, "poisson_noise": 3.0}},
    "res_bf16_clean10": {**RES, "clean_fraction": 0.1},
}
SETTINGS = ["clean", "gaussian_15", "gaussian_25", "gaussian_50", "poisson", "salt_pepper", "gaussian_blur",
            "motion_blur", "jpeg_10", "low_light", "downsample_2", "mixed"]
STEPS_PER_EPOCH = 100
TONE_SETTINGS = ("low_light", "mixed")  # scored with correct_tone=True (the model's own tone), the rest with the default


def _rate(run: Path) -> float:
    """Steps per second between the step events at step 10 and the last one of the first epoch."""
    steps = [e for e in read_events(run) if e["type"] == "step" and e["epoch"] == 1]
    first, last = steps[0], steps[-1]
    return (last["step"] - first["step"]) / (last["seconds"] - first["seconds"])


def calibrate(name: str, data: Path, out: Path) -> float:
    run = out / "calibrate" / name
    if not (run / "last.pt").exists():
        train(data, epochs=1, save_path=run, steps_per_epoch=40, log_every=10, **{**BASE, **DESIGNS[name]})
    return _rate(run)


def train_design(name: str, data: Path, out: Path, steps: int) -> Path:
    run = out / "runs" / name
    epochs = max(1, round(steps / STEPS_PER_EPOCH))
    opts = {**BASE, **DESIGNS[name]}
    if opts.get("late_patch_size"):
        opts["late_epochs"] = max(1, epochs // 4)
    train(data, epochs=epochs, save_path=run, steps_per_epoch=STEPS_PER_EPOCH, resume=True, **opts)
    return max((run / "checkpoints").glob("epoch_*.pt"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/train/CBSD432"))
    p.add_argument("--bench-data", default=str(ROOT.parent / "shared/data/bench/CBSD68"))
    p.add_argument("--out", default=str(ROOT / "bench/out/recipes"))
    p.add_argument("--minutes", type=float, default=4.0, help="wall-clock CPU minutes of training per design")
    p.add_argument("--limit", type=int, default=10, help="benchmark images")
    p.add_argument("--designs", default=",".join(DESIGNS))
    p.add_argument("--settings", default=",".join(SETTINGS))
    args = p.parse_args()
    names = bench.parse_names(args.designs, DESIGNS, "design")
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    TrainConfig(**{**BASE, **RES})  # fail on a bad option before anything runs

    rates_file = out / "rates.json"
    rates = json.loads(rates_file.read_text()) if rates_file.exists() else {}
    for name in names:
        if name not in rates:
            rates[name] = calibrate(name, data, out)
            rates_file.write_text(json.dumps(rates, indent=2))
        print(f"{name}: {rates[name]:.2f} steps/s", flush=True)

    rows = []
    for name in names:
        # A late larger patch costs time in proportion to its pixels over the last quarter of the steps.
        late = DESIGNS[name].get("late_patch_size")
        slowdown = 0.75 + 0.25 * (late / BASE["patch_size"]) ** 2 if late else 1.0
        steps = max(STEPS_PER_EPOCH, int(args.minutes * 60 * rates[name] / slowdown))
        ckpt = train_design(name, data, out, steps)
        settings = bench.parse_names(args.settings, bench.SETTINGS, "setting")
        bench.run_benchmark(args.bench_data, out / "bench" / name, checkpoint=ckpt, settings=settings, methods=["model"],
                            limit=args.limit, progress=False, resume=True)
        # Where fixing exposure is the point, the design is scored as the user who ticks it gets it.
        res = bench.run_benchmark(args.bench_data, out / "bench" / name, checkpoint=ckpt,
                                  settings=[s for s in settings if s in TONE_SETTINGS], methods=["model_tone"],
                                  limit=args.limit, progress=False, resume=True)
        res = res[(res["method"] == "model_tone") == res["setting"].isin(TONE_SETTINGS)]
        patch = DESIGNS[name].get("late_patch_size") and "64→96" or "64"
        for setting, g in res.groupby("setting", sort=False):
            rows.append(dict(design=name, steps_per_s=rates[name], pixel_samples_per_s=rates[name] * 16 * 64 * 64,
                             steps=steps, patch=patch, setting=setting, psnr=g["psnr"].mean(), tone=g["tone"].mean()))
    table = pd.DataFrame(rows)
    table.to_csv(out / "recipes.csv", index=False)
    wide = table.pivot_table(index="design", columns="setting", values="psnr", sort=False)
    wide = wide[[s for s in SETTINGS if s in wide.columns]]
    deg = [c for c in wide.columns if c != "clean"]
    wide["mean (degraded)"] = wide[deg].mean(axis=1)
    info = table.groupby("design", sort=False)[["steps_per_s", "pixel_samples_per_s", "steps"]].first()
    info["steps_per_s"] = info["steps_per_s"].round(2)
    info["pixel_samples_per_s"] = (info["pixel_samples_per_s"] / 1e6).round(2)
    md = pd.concat([info.rename(columns={"pixel_samples_per_s": "Mpx-samples/s"}), wide.round(2)], axis=1)
    cells = [[name, *(str(int(v)) if c == "steps" else f"{v:.2f}" for c, v in row.items())] for name, row in md.iterrows()]
    text = (f"Equal wall-clock budget: {args.minutes:g} CPU minutes of training per design; PSNR (dB) on the first "
            f"{args.limit} images of {args.bench_data}\n\n" + bench._md_table(["design", *md.columns], cells) + "\n")
    (out / "recipes.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
