"""Write a run's checkpoint as the shipped default model: the evaluated weights in fp16 (half the file, the 10 MB cap).

    .venv/bin/python training/ship.py RUN/checkpoints/epoch_0150.pt [--out denoise_core/weights/default.pt]
    .venv/bin/python training/ship.py --card RUN      # after benchmarking it: write weights/MODEL_CARD.md from RUN

The shipped file also records the run's training configuration (``train_config``: the checkpoint's own, else its run
folder's config.json), which `TrainConfig`'s defaults must match (tests/library/test_defaults.py).

fp16 storage rounds each weight to 11 significant bits; `load_model` copies them into the float32 model, and the
script checks that the output on a test image moves by less than half a level (below 8-bit rounding) against the
float32 weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from denoise_core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from denoise_core.model import build_model  # noqa: E402
from denoise_core.restoration import DEFAULT_CHECKPOINT  # noqa: E402
from denoise_core.checkpoint import MODEL_FILE_KEYS  # noqa: E402

MAX_DRIFT = 0.5  # levels on 0-255
# Where and how the run was kept, not how it trained: left out of the shipped file's recorded config.
PRIVATE = ("save_path", "resume", "progress", "log_every", "keep_epochs", "num_workers", "device")


def recorded_config(checkpoint: Path, state: dict) -> dict | None:
    """The run's TrainConfig as the shipped file records it: the checkpoint's own, else its run folder's
    config.json (files written before checkpoints carried it); the data folder by name only."""
    config = state.get("train_config")
    if config is None:
        for run in (checkpoint.parent, checkpoint.parent.parent):  # best.pt / checkpoints/epoch_NNNN.pt
            if (run / "config.json").is_file():
                config = json.loads((run / "config.json").read_text())
                break
    if config is None:
        return None
    config = {k: v for k, v in config.items() if k not in PRIVATE and k != "model_config"}
    return {**config, "image_dir": Path(config.get("image_dir", "")).name}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, nargs="?")
    p.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--card", type=Path, default=None, metavar="RUN",
                   help="write the shipped model's MODEL_CARD.md from its training run RUN and docs/results")
    args = p.parse_args()
    if args.card:
        from denoise_core.model_card import BSDS_NOTE, model_card

        card = model_card(args.out, args.card, title="Denoise Studio default model",
                          bench_places=[ROOT / "docs" / "results"], data_note=BSDS_NOTE)
        (args.out.parent / "MODEL_CARD.md").write_text(card)
        print(f"wrote {args.out.parent / 'MODEL_CARD.md'}")
        return
    if args.checkpoint is None:
        p.error("give the checkpoint to ship (or --card RUN)")
    state = load_checkpoint(args.checkpoint)
    weights = state.get("ema_model", state["model"])  # a last.pt's evaluated weights when it kept an average
    shipped = {**{k: state[k] for k in MODEL_FILE_KEYS if k in state}, "model": {k: v.half() for k, v in weights.items()}}
    config = recorded_config(args.checkpoint, state)
    if config is None:
        raise SystemExit(f"{args.checkpoint}: no training config in it or in its run folder: not shipping")
    shipped["train_config"] = config
    full, half = build_model(state["model_config"]).eval(), build_model(state["model_config"]).eval()
    full.load_state_dict(weights)
    half.load_state_dict(shipped["model"])
    x = torch.rand(1, full.config.in_channels, 96, 96, generator=torch.Generator().manual_seed(0))  # a noise map too
    with torch.no_grad():
        drift = (full(x) - half(x)).abs().max().item() * 255
    if drift >= MAX_DRIFT:
        raise SystemExit(f"fp16 weights move the output by {drift:.4f} levels: not shipping")
    save_checkpoint(args.out, shipped)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) from {args.checkpoint}, epoch {state.get('epoch')}; "
          f"fp16 weights move a restore by at most {drift:.4f} levels")


if __name__ == "__main__":
    main()
