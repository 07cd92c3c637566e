"""Average a fine-tuned model with the model it started from, the mix chosen on the run's own validation crops.

    .venv/bin/python training/average.py RUN/best.pt --start denoise_core/weights/default.pt --run RUN \
        [--alphas 0.5,0.6,0.7,0.8,0.9,1] [--margin 0.05] [--out RUN/averaged.pt]

Weight-space ensembling (WiSE-FT, Wortsman et al. 2022): a fine-tune moves the weights toward what it trained on and
away from the rest; averaging ``alpha`` × the fine-tuned weights with (1 − alpha) × the starting ones keeps most of the
gain and gives back most of the loss, because both lie in one basin. The script prints the validation PSNR per
degradation at each alpha (the run's validation images and fixed crops, the training data's held-out part, never a
benchmark), then picks the alpha with the highest overall PSNR among those at which no degradation is under the
starting model and each one the fine-tune itself hurts (lower at the largest alpha) is at least ``margin`` dB above
it: the margin because 64-px validation crops show such a loss smaller than full photos do (a Gaussian blur loss of
0.18 dB on them was 0.56 dB on CBSD68). With ``--out`` it writes that mix, in the fine-tuned file's dtype, with the fine-tuned file's description, the
mix's own validation metrics and an ``averaged`` record (alpha, the starting model's digest, its per-degradation
figures), which `denoise_core.model_card` reports; `training/ship.py` ships it like any checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from denoise_core.checkpoint import load_checkpoint, save_checkpoint, weights_sha256  # noqa: E402
from denoise_core.data import find_images, load_images, make_validation_set, split_indices  # noqa: E402
from denoise_core.losses import RestorationLoss  # noqa: E402
from denoise_core.model import ModelConfig, build_model  # noqa: E402
from denoise_core.training import TrainConfig, evaluate  # noqa: E402


def mix(start: dict, tuned: dict, alpha: float) -> dict:
    """alpha × ``tuned`` + (1 − alpha) × ``start``, computed in float32, stored in ``tuned``'s dtypes."""
    if start.keys() != tuned.keys() or any(start[k].shape != tuned[k].shape for k in tuned):
        raise SystemExit("the two models differ in architecture: they cannot be averaged")
    return {k: ((start[k].float() * (1 - alpha) + v.float() * alpha).to(v.dtype) if v.is_floating_point() else v)
            for k, v in tuned.items()}


def choose(table: pd.DataFrame, margin: float) -> float:
    """The alpha with the best overall PSNR among those where no degradation is under the start's (alpha 0), and
    those the fine-tune itself hurts (lower at the largest alpha than at 0) are at least ``margin`` dB above it."""
    gain = table.drop(columns="all") - table.drop(columns="all").loc[0.0]
    hurt = gain.columns[gain.loc[table.index.max()] < 0]
    need = pd.Series(0.0, index=gain.columns)
    need[hurt] = margin
    safe = [a for a in table.index if a > 0 and (gain.loc[a] >= need - 1e-9).all()]
    if not safe:
        raise SystemExit(f"no alpha keeps every degradation above the starting model ({margin} dB above it where the "
                         f"fine-tune hurts: {', '.join(hurt)}): nothing written")
    return max(safe, key=lambda a: table.loc[a, "all"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tuned", type=Path, help="the fine-tuned checkpoint (e.g. RUN/best.pt)")
    p.add_argument("--start", type=Path, required=True, help="the checkpoint the run started from")
    p.add_argument("--run", type=Path, required=True, help="the run folder (its config.json gives the validation split)")
    p.add_argument("--alphas", default="0.5,0.6,0.7,0.8,0.9,1")
    p.add_argument("--margin", type=float, default=0.05,
                   help="dB a degradation the fine-tune hurts must keep above the start")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    start, tuned = load_checkpoint(args.start), load_checkpoint(args.tuned)
    cfg = TrainConfig(**{k: v for k, v in json.loads((args.run / "config.json").read_text()).items()
                         if k != "model_config"})
    images, _, _ = load_images(find_images(cfg.image_dir), channels=cfg.channels)
    _, val_idx = split_indices(len(images), cfg.val_ratio, cfg.seed)
    model_config = ModelConfig(**tuned["model_config"])
    val = make_validation_set([images[i] for i in val_idx], cfg.degradations, cfg.val_patch_size, cfg.seed,
                              cfg.val_max_crops, sensor_noise=cfg.sensor_noise, clean_crops=cfg.clean_fraction > 0,
                              noise_map=model_config.noise_map, rich_colour=cfg.rich_colour > 0)
    model, loss = build_model(model_config).eval(), RestorationLoss(cfg.alpha)
    alphas = sorted({0.0, *(float(a) for a in args.alphas.split(","))})
    results = {}
    for alpha in alphas:
        model.load_state_dict({k: v.float() for k, v in mix(start["model"], tuned["model"], alpha).items()})
        results[alpha] = evaluate(model, val, cfg.degradations, loss, torch.device("cpu"))
    table = pd.DataFrame({a: {"all": o["val_psnr"], **{k: v["val_psnr"] for k, v in per.items()}}
                          for a, (o, per) in results.items()}).T
    table.index.name = "alpha"
    print(f"validation PSNR (dB), {len(val_idx)} held-out images of {Path(cfg.image_dir).name}; alpha 0 = the start")
    print(table.round(2).to_string())
    print("\ngain over the start (dB)")
    print((table - table.loc[0.0]).round(2).to_string())
    alpha = choose(table, args.margin)
    print(f"\nchosen: alpha {alpha} (best overall with no degradation under the start, and those the fine-tune "
          f"hurts at least {args.margin} dB above it)")
    if args.out:
        overall, per = results[alpha]
        averaged = {"alpha": alpha, "start_weights_sha256": weights_sha256(args.start), "per_degradation": per}
        save_checkpoint(args.out, {**tuned, "model": mix(start["model"], tuned["model"], alpha), "metrics": overall,
                                    "averaged": averaged})
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
