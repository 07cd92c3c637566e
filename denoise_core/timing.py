"""How long a training run will take on this machine, said before it starts.

Two sources, and an estimate says which it came from:

- ``measured``: `measure` builds the run exactly as `Trainer` does (model, data pipeline, mixed precision,
  fine-tuning start) on the first few images, times a few optimisation steps after a warm-up, and times one
  pass over a validation set of the run's size;
- ``recorded``: `recorded` reads the epochs of an earlier run on this machine whose timing-relevant settings
  match (`TIMING_FIELDS`, the device, the architecture and the CPU threads) from its ``events.jsonl``.

An epoch is ``steps × step time + validation time``, what a run's epoch records as ``seconds``; the run
writes its estimate as an ``estimate`` event (`Estimate.event`), so estimate and first epoch can be compared.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import torch

from .data import find_images, split_indices, validation_size
from .history import read_events
from .runfiles import CONFIG_FILE
from .training import TrainConfig, Trainer, epoch_steps

log = logging.getLogger(__name__)

# The settings that change the time of a step or of validation (with the device, architecture and threads).
TIMING_FIELDS = ("batch_size", "patch_size", "amp", "channels_last", "compile", "num_workers", "degradations",
                 "val_patch_size", "val_max_crops", "clean_fraction", "sensor_noise", "ema")
PROBE_IMAGES = 24  # images loaded for a measurement: enough for a full validation set of the default size
WARMUP_STEPS = 2   # first steps pay for oneDNN / cuDNN setup and the loader's worker start


@dataclass
class Estimate:
    """Expected time of a run: ``steps_per_epoch`` steps of ``step_seconds`` plus ``val_seconds`` per epoch."""

    step_seconds: float
    val_seconds: float
    steps_per_epoch: int
    epochs: int
    source: str  # "measured" or "recorded"
    detail: str  # what was measured, or which run it was recorded by

    @property
    def epoch_seconds(self) -> float:
        return self.steps_per_epoch * self.step_seconds + self.val_seconds

    @property
    def run_seconds(self) -> float:
        return self.epochs * self.epoch_seconds

    def for_run(self, steps_per_epoch: int, epochs: int) -> Estimate:
        """The same rates for a run of another length."""
        return replace(self, steps_per_epoch=steps_per_epoch, epochs=epochs)

    def event(self) -> dict[str, Any]:
        """The ``estimate`` event a run records before its first epoch."""
        return {"type": "estimate", "source": self.source, "detail": self.detail, "step_seconds": self.step_seconds,
                "val_seconds": self.val_seconds, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                "epoch_seconds": self.epoch_seconds, "run_seconds": self.run_seconds}

    def summary(self) -> str:
        return (f"about {format_seconds(self.epoch_seconds)} per epoch, {format_seconds(self.run_seconds)} for "
                f"{self.epochs} epoch{'s' * (self.epochs != 1)} ({self.source}: {self.detail})")


def format_seconds(seconds: float) -> str:
    """``1h 02m``, ``3m 05s`` or ``12s``."""
    s = int(round(max(0.0, seconds)))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def run_size(cfg: TrainConfig) -> tuple[int, int]:
    """(steps per epoch, validation images) of a single-process run of ``cfg`` on its image folder."""
    n = len(find_images(cfg.image_dir))
    train_idx, val_idx = split_indices(n, cfg.val_ratio, cfg.seed)
    return epoch_steps(cfg, len(train_idx)), len(val_idx)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cfg: TrainConfig, steps: int = 6, warmup: int = WARMUP_STEPS) -> Estimate:
    """Time ``steps`` training steps (after ``warmup``) and one validation pass of ``cfg``'s run, built as the
    run builds it, on its first `PROBE_IMAGES` images; nothing is written outside a temporary folder."""
    steps_per_epoch, val_images = run_size(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        probe = replace(cfg, save_path=tmp, resume=False, progress=False, steps_per_epoch=warmup + steps,
                        epochs=1, log_every=10**9)
        trainer = Trainer(probe)
        trainer.setup(image_limit=PROBE_IMAGES)
        trainer.epoch_sampler.set_epoch(1)
        batches = iter(trainer.loader)
        for i in range(warmup + steps):
            if i == warmup:
                _sync(trainer.device)
                t0 = time.perf_counter()
            trainer.train_step(*next(batches))
        _sync(trainer.device)
        step_seconds = (time.perf_counter() - t0) / steps
        del batches  # ends the loader's workers
        t0 = time.perf_counter()
        trainer.validate()
        _sync(trainer.device)
        probed = len(trainer.val[0])
        real = validation_size(val_images, cfg.degradations, cfg.val_max_crops, cfg.clean_fraction > 0)
        val_seconds = (time.perf_counter() - t0) * real / max(1, probed)
    detail = f"{steps} steps and a validation pass timed just now on {trainer.device.type}"
    return Estimate(step_seconds, val_seconds, steps_per_epoch, cfg.epochs, "measured", detail)


def timing_key(config: dict[str, Any], model_config: dict[str, Any], device: str, threads: int | None) -> dict:
    """What must match for an earlier run's times to predict a new run's."""
    return {"settings": {k: config.get(k) for k in TIMING_FIELDS}, "model": model_config,
            "device": device.split(":")[0], "threads": threads}


def recorded(cfg: TrainConfig, model_config: dict[str, Any], device: str, threads: int | None,
             runs: Iterable[str | Path]) -> Estimate | None:
    """The newest of ``runs`` with the same `timing_key` and at least one finished epoch, as an estimate for
    ``cfg``'s run (its own epoch length); None when none matches. Step time is the median over the run's
    epochs after the first (the first pays for warm-up), or the first when it has only one."""
    want = timing_key(cfg.to_dict(), model_config, device, threads)
    found = []
    for run in runs:
        run = Path(run)
        try:
            config = json.loads((run / CONFIG_FILE).read_text())
            events = read_events(run)
        except (OSError, ValueError):
            continue
        start = next((e for e in events if e["type"] == "status" and e.get("status") in ("started", "resumed")), None)
        epochs = [e for e in events if e["type"] == "epoch" and "train_seconds" in e and e.get("steps")]
        if start is None or not epochs:
            continue
        key = timing_key(config, config.get("model_config", {}), str(start.get("device", "")), start.get("threads"))
        if key == want:
            found.append((run.stat().st_mtime, run, epochs))
    if not found:
        return None
    _, run, epochs = max(found, key=lambda f: f[0])
    later = epochs[1:] or epochs
    step = statistics.median(e["train_seconds"] / e["steps"] for e in later)
    val = statistics.median(e["val_seconds"] for e in later)
    steps_per_epoch, _ = run_size(cfg)
    detail = f"run {run.name}'s epochs on this machine"
    return Estimate(step, val, steps_per_epoch, cfg.epochs, "recorded", detail)
