"""Atomic checkpoint files, loaded with ``weights_only=True``.

A checkpoint is one versioned dict. ``last.pt`` holds everything resume needs;
``best.pt`` and the per-epoch files hold the model and its config.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where needed: file_sha256 and the atomic writers serve torch-free restores too
    import torch

import numpy as np

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex (keys the ONNX cache, bench.json and model cards)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def weights_sha256(path: str | Path) -> str:
    """The SHA-256 of a checkpoint's model: its architecture and every weight (name, dtype, shape, bytes), not the
    rest of the file; two files with the same model give the same results (bench.json and model cards match on it)."""
    import json

    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    digest = hashlib.sha256(json.dumps(state.get("model_config"), sort_keys=True).encode())
    for name in sorted(state["model"]):
        tensor = state["model"][name]
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Save ``state`` atomically; raises on any failure (a failed save is never silent)."""
    import torch

    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict with ``weights_only=True``; `CheckpointError` says what is wrong."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path.name} is corrupt, truncated or not a checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise CheckpointError(f"{path.name} is not a Denoise Studio checkpoint (no model or model_config)")
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path.name} has checkpoint format {version}; this version reads format {FORMAT_VERSION}")
    return state


def rng_state() -> dict:
    """Python, numpy, torch (and CUDA) RNG states as tensors and lists (weights_only-safe)."""
    import torch

    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import torch

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# --- the layout of a run's checkpoint files --------------------------------------------------

# What best.pt and the per-epoch files hold: enough to rebuild the model and say what it was trained for, and how
# (``train_config``: the run's TrainConfig; files written before it was recorded lack it).
# "averaged": a fine-tuned model mixed with its start (`training/average.py`): alpha, the start's digest, its validation.
MODEL_FILE_KEYS = ("model", "model_config", "epoch", "degradations", "metrics", "train_config", "averaged")


def model_file(model: dict, model_config: dict, epoch: int, degradations: list[str], metrics: dict,
               train_config: dict | None = None) -> dict:
    """best.pt / checkpoints/epoch_NNNN.pt: the evaluated weights (the average when EMA is on) and their description."""
    out = {"model": model, "model_config": model_config, "epoch": epoch, "degradations": degradations, "metrics": metrics}
    return {**out, "train_config": train_config} if train_config is not None else out


def resume_file(model_file: dict, *, trained: dict, ema: dict | None, optimizer: dict, scheduler: dict, scaler: dict,
                sampler: dict, rng: dict, best_val_loss: float, best_epoch: int, history: list, train_config: dict,
                amp_dtype: str = "float32") -> dict:
    """last.pt: a model file whose ``model`` is the trained weights, plus everything exact resume needs
    (with EMA: its state and the averaged weights as ``ema_model``)."""
    extra = {"ema": ema, "ema_model": model_file["model"]} if ema is not None else {}
    return {**model_file, "model": trained, **extra, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler,
            "sampler": sampler, "rng": rng, "best_val_loss": best_val_loss, "best_epoch": best_epoch,
            "history": history, "train_config": train_config, "amp_dtype": amp_dtype}


def model_file_from_resume(state: dict) -> dict:
    """The model file of last.pt's epoch (its evaluated weights), e.g. to repair a best.pt a kill left behind."""
    return {**{k: state[k] for k in MODEL_FILE_KEYS if k in state}, "model": state.get("ema_model", state["model"])}
