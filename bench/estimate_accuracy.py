"""How close the Train page's time estimate comes to the first real epoch, on this machine.

    .venv/bin/python bench/estimate_accuracy.py [--animals /tmp/fine-tune-study/animals]

For each case: `denoise_core.timing.measure` (a few steps timed), then a real run of that configuration, and the
ratio of its first epoch's time (``seconds`` of epoch 1: training and validation) to the estimate. The ``recorded``
case estimates from an earlier run's epochs (`denoise_core.timing.recorded`) and checks a second run's first epoch.
Target: every ratio within 1/1.5 .. 1.5. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CBSD432 = ROOT.parent / "shared" / "data" / "train" / "CBSD432"
OLD_DEFAULTS = dict(block="naf", amp="off", loss_norm="none", clean_fraction=0.0, sensor_noise=0.0, temperature=0.5,
                    prior={}, enc_blocks=[1, 1, 2], middle_blocks=2, dec_blocks=[1, 1, 1])


def first_epoch(cfg_options: dict, out: Path, epochs: int = 1) -> list[dict]:
    from denoise_core import train

    return train(**{**cfg_options, "epochs": epochs, "save_path": str(out)})["history"]


def main() -> None:
    import torch

    from denoise_core.model import ModelConfig
    from denoise_core.timing import measure, recorded
    from denoise_core.training import TrainConfig, planned_model_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--animals", type=Path, default=None, help="a small folder (the fine-tune study's 40 photos)")
    args = p.parse_args()
    base = dict(image_dir=str(CBSD432), batch_size=16, learning_rate=1e-4, val_ratio=0.15, num_workers=None)
    cases = {"defaults, scratch, CBSD432": base,
             "defaults, fine-tune, CBSD432": {**base, "init_from": "default"},
             "old defaults (NAF, fp32), scratch, CBSD432": {**base, **OLD_DEFAULTS}}
    if args.animals:
        cases["defaults, fine-tune, 40 photos"] = {**base, "image_dir": str(args.animals), "init_from": "default"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, options) in enumerate(cases.items()):
            estimate = measure(TrainConfig(**{**options, "epochs": 1}))
            history = first_epoch(options, Path(tmp) / f"run{i}", epochs=2 if i == 0 else 1)
            rows.append((name, "measured", estimate.epoch_seconds, history[0]["seconds"]))
        # recorded: run 0 (two epochs) predicts a new run of the same settings
        cfg = TrainConfig(**{**cases["defaults, scratch, CBSD432"], "epochs": 1})
        model = planned_model_config(cfg).to_dict()
        said = recorded(cfg, model, "cpu", torch.get_num_threads(), [Path(tmp) / "run0"])
        assert said is not None, "the earlier run was not found"
        history = first_epoch(cases["defaults, scratch, CBSD432"], Path(tmp) / "again")
        rows.append(("defaults, scratch, CBSD432", "recorded", said.epoch_seconds, history[0]["seconds"]))
    print(f"threads: {torch.get_num_threads()}\n")
    print("| case | estimate | estimated epoch (s) | first epoch (s) | ratio | within 1.5× |")
    print("|---|---|---:|---:|---:|---|")
    for name, source, est, real in rows:
        ratio = real / est
        print(f"| {name} | {source} | {est:.1f} | {real:.1f} | {ratio:.2f} | {'yes' if 1 / 1.5 <= ratio <= 1.5 else 'no'} |")


if __name__ == "__main__":
    main()
