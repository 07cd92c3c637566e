"""Your photos, your model: fine-tuning the shipped model against training from scratch, at equal CPU time.

    .venv/bin/python bench/fine_tune_study.py --work /tmp/fine-tune-study --cpu-minutes 10

1. A folder of 50 animal photos from CBSD432 (`ANIMALS`): 40 to train on, 10 held out (`HELD_OUT`; six of them
   are in the shipped model's own validation split, so it never trained on them either).
2. Arms, trained at the same time, one thread each, each stopped by its own CPU clock at ``--cpu-minutes``
   (its epochs are planned from `denoise_core.timing.measure` so its learning-rate schedule ends there):
   - ``fine-tune``: today's defaults from the shipped model (the Train page's default);
   - ``scratch``: today's defaults from random weights;
   - ``scratch, old defaults``: the defaults before they became the shipped recipe (NAF blocks, fp32 on the CPU,
     plain loss, no undegraded share, no sensor noise, every degradation, smaller blocks) — the defaults study.
3. Each best.pt, and the shipped model untouched, scored on the held-out 10 with `python -m denoise_core bench`
   (its default settings; the noise level estimated per image). Writes ``results.csv`` and ``fine-tune.md`` in
   ``--work`` (copy the latter to docs/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CBSD432 = ROOT.parent / "shared" / "data" / "train" / "CBSD432"
# Animal photos of CBSD432, chosen by eye from a contact sheet (mammals, birds, a tortoise).
ANIMALS = """100007 100039 100075 100080 103006 103029 104010 104055 105019 105027 105053 106005 106020 106025
107014 107072 108004 108036 108041 108073 112056 112082 112090 113009 113016 130014 134052 134067 183055 183066
187039 247003 247085 253016 253092 296028 38082 38092 42044 42049 43051 43070 66053 69015 69020 69022 70011 159022
160006 196040""".split()
# Held out: the six animals in the shipped model's validation split (never trained on) and four more.
HELD_OUT = ["103029", "104055", "108036", "247085", "253016", "296028", "100080", "112090", "183066", "69015"]
OLD_DEFAULTS = dict(block="naf", amp="off", loss_norm="none", clean_fraction=0.0, sensor_noise=0.0, temperature=0.5,
                    prior={}, enc_blocks=[1, 1, 2], middle_blocks=2, dec_blocks=[1, 1, 1],
                    degradations=["gaussian_noise", "poisson_noise", "salt_pepper", "gaussian_blur", "motion_blur", "jpeg",
                                  "low_light", "overexposure", "color_cast", "downsample", "camera_noise", "channel_noise",
                                  "camera_jpeg", "mixed"])
ARMS = {"fine-tune": {"init_from": "default"}, "scratch": {}, "scratch, old defaults": OLD_DEFAULTS}
COMMON = dict(epochs=30, batch_size=16, learning_rate=1e-4, val_ratio=0.15, num_workers=0)  # the Train form's


def make_folder(work: Path) -> tuple[Path, Path]:
    train, held = work / "animals", work / "held-out"
    for folder in (train, held):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    assert len(ANIMALS) == 50 and set(HELD_OUT) <= set(ANIMALS)
    for name in ANIMALS:
        shutil.copy(CBSD432 / f"{name}.jpg", (held if name in HELD_OUT else train) / f"{name}.jpg")
    return train, held


def arm_slug(name: str) -> str:
    return name.replace(", ", "-").replace(" ", "-")


def run_arm(options: dict, out: Path, cpu_seconds: float) -> None:
    """Train in this process on one thread; a STOP file ends it when the process's CPU time reaches the budget."""
    import torch

    from denoise_core import train

    torch.set_num_threads(1)

    def watch() -> None:
        while time.process_time() < cpu_seconds:
            time.sleep(0.5)
        (out / "STOP").touch()

    out.mkdir(parents=True, exist_ok=True)
    threading.Thread(target=watch, daemon=True).start()
    result = train(**{**options, "save_path": str(out)})
    facts = {"state": result["state"], "epochs_done": result["epochs_done"], "cpu_seconds": time.process_time(),
             "steps": sum(r["steps"] for r in result["history"]), "val_psnr": result["history"][-1]["val_psnr"] if result["history"] else None,
             "best_epoch": result["best_epoch"]}
    (out / "study.json").write_text(json.dumps(facts))


def plan(name: str, image_dir: Path, cpu_seconds: float) -> dict:
    """The arm's options, its epochs set so that its schedule ends at the CPU budget (measured on one thread)."""
    import torch

    from denoise_core.timing import measure
    from denoise_core.training import TrainConfig

    torch.set_num_threads(1)
    options = {**COMMON, **ARMS[name], "image_dir": str(image_dir)}
    estimate = measure(TrainConfig(**options))
    options["epochs"] = max(1, int(cpu_seconds / estimate.epoch_seconds))
    print(f"{name}: {estimate.summary()} -> {options['epochs']} epochs", flush=True)
    return options


def score(work: Path, held: Path, checkpoints: dict[str, Path | None], settings: str | None) -> Path:
    import pandas as pd

    frames = []
    for name, ckpt in checkpoints.items():
        out = work / "bench" / arm_slug(name)
        cmd = [sys.executable, "-m", "denoise_core", "bench", "--data", str(held), "--out", str(out),
               "--methods", "identity,model", "--no-progress"] + (["--checkpoint", str(ckpt)] if ckpt else [])
        cmd += ["--settings", settings] if settings else []
        subprocess.run(cmd, check=True, cwd=ROOT)
        rows = pd.read_csv(out / "results.csv")
        rows["arm"] = name
        frames.append(rows)
    table = pd.concat(frames)
    table.to_csv(work / "results.csv", index=False)
    return work / "results.csv"


def report(work: Path, csv: Path) -> tuple[str, str]:
    import pandas as pd

    rows = pd.read_csv(csv)
    model = rows[rows["method"] == "model"].pivot_table(index="setting", columns="arm", values="psnr", aggfunc="mean")
    unseen = rows[(rows["method"] == "model") & rows["image"].astype(str).str.contains("|".join(HELD_OUT[:6]))]
    unseen = unseen.pivot_table(index="setting", columns="arm", values="psnr", aggfunc="mean")
    identity = rows[(rows["method"] == "identity") & (rows["arm"] == rows["arm"].iloc[0])].groupby("setting")["psnr"].mean()
    arms = ["shipped", *ARMS]
    lines = ["| setting | input | " + " | ".join(arms) + " |", "|---|---:|" + "---:|" * len(arms)]
    for setting in model.index:
        lines.append(f"| {setting} | {identity.get(setting, float('nan')):.2f} | "
                     + " | ".join(f"{model.loc[setting, a]:.2f}" for a in arms) + " |")
    degraded = [s for s in model.index if s != "clean"]
    lines.append("| **mean of the degraded settings** | " + f"{identity[degraded].mean():.2f} | "
                 + " | ".join(f"**{model.loc[degraded, a].mean():.2f}**" for a in arms) + " |")
    lines.append("| mean of the degraded settings, the six photos no model trained on | — | "
                 + " | ".join(f"{unseen.loc[degraded, a].mean():.2f}" for a in arms) + " |")
    facts = ["| arm | epochs | steps | CPU minutes | steps per CPU second | its own validation PSNR (dB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in ARMS:
        f = json.loads((work / "runs" / arm_slug(name) / "study.json").read_text())
        facts.append(f"| {name} | {f['epochs_done']} | {f['steps']} | {f['cpu_seconds'] / 60:.1f} | "
                     f"{f['steps'] / f['cpu_seconds']:.2f} | {f['val_psnr']:.2f} |")
    return "\n".join(lines), "\n".join(facts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="folder for the photos, runs and scores")
    p.add_argument("--cpu-minutes", type=float, default=10.0)
    p.add_argument("--settings", default=None, help="the benchmark settings to score (default: the benchmark's)")
    p.add_argument("--arm", default=None, help=argparse.SUPPRESS)  # internal: train one arm in this process
    p.add_argument("--options", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    budget = args.cpu_minutes * 60
    if args.arm:
        run_arm(json.loads(args.options), args.work / "runs" / arm_slug(args.arm), budget)
        return
    train_dir, held = make_folder(args.work)
    shutil.rmtree(args.work / "runs", ignore_errors=True)
    plans = {name: plan(name, train_dir, budget) for name in ARMS}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, __file__, "--work", str(args.work), "--cpu-minutes", str(args.cpu_minutes),
                               "--arm", name, "--options", json.dumps(options)], env=env, cwd=ROOT)
             for name, options in plans.items()]
    t0 = time.time()
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"an arm failed: {proc.args}")
    print(f"arms done in {(time.time() - t0) / 60:.1f} min wall", flush=True)
    checkpoints = {"shipped": None, **{name: args.work / "runs" / arm_slug(name) / "best.pt" for name in ARMS}}
    csv = score(args.work, held, checkpoints, args.settings)
    quality, facts = report(args.work, csv)
    text = f"{quality}\n\n{facts}\n"
    (args.work / "fine-tune.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
