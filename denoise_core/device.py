"""Choosing the compute device: cuda -> mps -> cpu."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The requested device, or the best available one for ``"auto"``; errors if unavailable."""
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {name!r}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
        return torch.device(name) if ":" in name else torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not has_mps:
        raise ValueError("device 'mps' was requested but Apple MPS is not available")
    return torch.device(name)


def describe_device(device: torch.device | None = None) -> str:
    """A human-readable name: 'CPU (N threads)', the GPU's name, or 'Apple MPS'."""
    device = device or pick_device()
    if device.type == "cuda":
        return f"CUDA GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0
