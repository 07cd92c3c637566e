"""training/gpu.sh: its CPU dry run trains a few steps from the shipped model and leaves what the CPU run continues from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from denoise_core.checkpoint import load_checkpoint
from denoise_core.history import read_events
from denoise_core.model import ModelConfig
from denoise_core.restoration import DEFAULT_CHECKPOINT

ROOT = Path(__file__).resolve().parents[2]


def _gpu_sh(out: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DRY_RUN": "1", "PY": sys.executable, "DATA": str(data), "OMP_NUM_THREADS": "2"}
    return subprocess.run(["bash", str(ROOT / "training" / "gpu.sh"), str(out), *extra], env=env, capture_output=True,
                          text=True, timeout=400)


def test_dry_run_continues_the_shipped_model_and_writes_its_outputs(image_dir, tmp_path):
    proc = _gpu_sh(tmp_path / "gpu", image_dir)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = tmp_path / "gpu" / "run"
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 1 and "optimizer" in state
    assert ModelConfig(**state["model_config"]) == ModelConfig(**load_checkpoint(DEFAULT_CHECKPOINT)["model_config"])
    assert state["train_config"]["init_from"] == "default"
    assert (run / "best.pt").is_file() and (run / "history.xlsx").is_file()
    assert any(e["type"] == "epoch" for e in read_events(run))
    assert "last.pt: epoch 1" in proc.stdout
    for name in ("best-model.pt", "last-model.pt"):  # the model-only copies a device run brings back
        model_only = load_checkpoint(tmp_path / "gpu" / name)
        assert "optimizer" not in model_only and model_only["model"].keys() == state["model"].keys()


def test_more_than_eight_minutes_is_refused(tmp_path, image_dir):
    proc = _gpu_sh(tmp_path / "gpu", image_dir, "9")
    assert proc.returncode == 2 and "at most 8 minutes" in proc.stderr
    assert not (tmp_path / "gpu").exists()
