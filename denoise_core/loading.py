"""The shipped model's location and `load_model`: a checkpoint file to a model in eval mode, cached per file version."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by load_model, not by this module: a cached ONNX restore never needs it
    import torch

    from .model import UNet

DEFAULT_CHECKPOINT = Path(__file__).parent / "weights" / "default.pt"


def load_model(checkpoint: str | Path | None = None, device: str | torch.device = "cpu") -> UNet:
    """Rebuild the model stored in a checkpoint (default: the shipped one), in eval mode."""
    from .device import pick_device

    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    stat = path.stat() if path.is_file() else None
    device = pick_device(device) if isinstance(device, str) else device
    return _load_model_cached(str(path.resolve()), stat.st_mtime_ns if stat else 0, str(device))


@functools.lru_cache(maxsize=8)
def _load_model_cached(path: str, mtime_ns: int, device: str) -> UNet:
    from .checkpoint import CheckpointError, load_checkpoint
    from .model import build_model

    state = load_checkpoint(path)
    try:
        model = build_model(state["model_config"])
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{Path(path).name}: weights do not match the stored model config ({str(exc)[:200]})") from exc
    return model.to(device).eval()
