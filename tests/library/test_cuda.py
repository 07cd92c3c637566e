"""The CUDA paths: AMP training, restore on the GPU, NCCL with one process. Skipped without a CUDA device;
`training/gpu.sh`'s device run executes them (`pytest tests/library/test_cuda.py`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY
from denoise_core.checkpoint import load_checkpoint
from denoise_core.restoration import restore
from denoise_core.training import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_on_cuda_learns_and_saves_float32_weights(image_dir, tmp_path, amp):
    result = train(image_dir, epochs=2, save_path=tmp_path / amp, device="cuda", amp=amp, learning_rate=1e-3,
                   **{**TINY, "block": "res"})
    assert result["state"] == "finished"
    history = result["history"]
    assert np.isfinite([h["val_loss"] for h in history]).all()
    state = load_checkpoint(tmp_path / amp / "last.pt")
    assert all(v.dtype == torch.float32 for v in state["model"].values())
    if amp == "fp16":  # the fp16 run keeps a GradScaler state for resume
        assert state["scaler"]["scale"] > 0


def test_restore_on_cuda_matches_the_cpu(image_dir, tmp_path):
    train(image_dir, epochs=1, save_path=tmp_path / "run", device="cpu", **TINY)
    rng = np.random.default_rng(0)
    noisy = np.clip(rng.random((70, 90, 3)).astype(np.float32), 0, 1)
    ckpt = tmp_path / "run" / "best.pt"
    on_gpu = restore(noisy, ckpt, device="cuda", backend="torch", tile=32, overlap=8)
    on_cpu = restore(noisy, ckpt, device="cpu", backend="torch", tile=32, overlap=8)
    assert np.abs(on_gpu - on_cpu).max() < 2e-3


DRIVER = """
import json, sys
import torch, torch.distributed as dist
from denoise_core.training import train

dist.init_process_group("nccl", init_method="tcp://127.0.0.1:29533", world_size=1, rank=0)
assert dist.get_backend() == "nccl"
result = train(**json.loads(sys.argv[1]))
dist.destroy_process_group()
print("epochs", result["epochs_done"])
"""


def test_nccl_with_one_process_trains(image_dir, tmp_path):
    """A process group of one on NCCL: the trainer's collectives (stop agreement, loss and
    degradation-statistics all-reduces) run through NCCL on the GPU."""
    (tmp_path / "driver.py").write_text(DRIVER)
    opts = dict(TINY, image_dir=str(image_dir), save_path=str(tmp_path / "ddp"), epochs=2, device="cuda")
    import json

    # Keep what PYTHONPATH already holds: training/gpu.sh's device run puts the carried wheels there.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(tmp_path / "driver.py"), json.dumps(opts)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epochs 2" in proc.stdout
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["epoch"] == 2
