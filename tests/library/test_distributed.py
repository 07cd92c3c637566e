"""Distributed data-parallel training: 2 gloo processes on the CPU, started by torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from conftest import TINY
from denoise_core.checkpoint import load_checkpoint
from denoise_core.history import epoch_records, read_events

ROOT = Path(__file__).resolve().parents[2]

# Trains like the CLI does, then has every rank dump what it ends with.
DRIVER = """
import json, os, sys
import torch
from denoise_core.training import Trainer, TrainConfig

trainer = Trainer(TrainConfig(**json.loads(sys.argv[1])))
result = trainer.run()
torch.save({"model": trainer.model.state_dict(), "sampler": trainer.sampler.state_dict(), "epochs": result["epochs_done"]},
           os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
"""


def _torchrun(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_two_gloo_processes_train_resume_and_agree(image_dir, tmp_path):
    out = tmp_path / "run"
    # update_every=2 with 3 steps per epoch leaves partial degradation statistics at every
    # epoch end, the case where ranks could drift apart after a resume.
    opts = dict(TINY, epochs=2, learning_rate=1e-3, val_ratio=0.3, degradations=["gaussian_noise", "jpeg", "gaussian_blur"],
                update_every=2, image_dir=str(image_dir), save_path=str(out))
    # The standard launch: torchrun ... -m denoise_core train (2 epochs)...
    cli = ["-m", "denoise_core", "train", "--data", str(image_dir), "--out", str(out), "--epochs", "2", "--no-progress",
           "--batch-size", "4", "--lr", "1e-3", "--val-ratio", "0.3", "--patch-size", "24", "--steps-per-epoch", "3",
           "--workers", "0", "--width", "8", "--depth", "2", "--degradations", ",".join(opts["degradations"]),
           "--update-every", "2"]
    _torchrun(cli, tmp_path)
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    # ...then resumed under DDP to 4 epochs, every rank dumping its final state.
    (tmp_path / "driver.py").write_text(DRIVER)
    _torchrun(["driver.py", json.dumps(dict(opts, epochs=4, resume=True)), str(tmp_path)], tmp_path)

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["epochs"] == ranks[1]["epochs"] == 4
    for key, value in ranks[0]["model"].items():
        assert torch.equal(value, ranks[1]["model"][key]), key
    for key in ("weights", "difficulty", "seen"):
        assert torch.equal(ranks[0]["sampler"][key], ranks[1]["sampler"][key]), key
    # The epoch's last step came after the last update: its losses (4 images on each of the
    # 2 ranks) are gathered on rank 0, which saves them, and counted nowhere else.
    assert ranks[0]["sampler"]["count"].sum() == 8 and ranks[1]["sampler"]["count"].sum() == 0
    assert not torch.equal(ranks[0]["sampler"]["weights"], torch.full((3,), 1 / 3, dtype=torch.float64))  # weights did adapt
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 4
    assert all(torch.equal(last["model"][k], v) for k, v in ranks[0]["model"].items())
    assert torch.equal(last["sampler"]["weights"], ranks[1]["sampler"]["weights"])

    # Rank 0 alone writes: each epoch once in the event log, the workbook's history and last.pt.
    assert [r["epoch"] for r in epoch_records(out)] == [1, 2, 3, 4]
    assert [r["epoch"] for r in last["history"]] == [1, 2, 3, 4]
    statuses = [(e["status"], e.get("world_size")) for e in read_events(out) if e["type"] == "status"]
    assert statuses == [("started", 2), ("finished", None), ("resumed", 2), ("finished", None)]
    steps = [(e["epoch"], e["step"]) for e in read_events(out) if e["type"] == "step"]
    assert steps == [(e, s) for e in (3, 4) for s in (1, 2, 3)]  # log_every=1 in the resumed run only
