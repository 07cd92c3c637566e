"""Choosing the compute device: cuda -> mps -> cpu."""

from __future__ import annotations

import contextlib
import functools
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by the functions: asking whether a GPU exists is the 2 s import of torch
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The requested device, or the best available one for ``"auto"``; errors if unavailable."""
    import torch

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
    import torch

    device = device or pick_device()
    if device.type == "cuda":
        return f"CUDA GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def surely_cpu_only() -> bool:
    """True when this machine can have no GPU that torch would pick for ``"auto"``, decided without importing torch.

    No NVIDIA or AMD device node (``/dev/nvidia*``, ``/dev/kfd``, ``/dev/dxg`` under WSL) and not an Apple-silicon
    Mac (MPS). When this is False the caller asks torch (`pick_device`); when True, ``"auto"`` is the CPU.
    """
    if sys.platform == "darwin":
        return platform.machine() != "arm64"
    dev = Path("/dev")
    return not (any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists() or (dev / "dxg").exists())


_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@functools.lru_cache(maxsize=1)
def cpu_bf16_flag() -> bool | None:
    """Whether the CPU has native bf16 (AVX-512 BF16 or AMX) by /proc/cpuinfo, without importing torch;
    None where there is no /proc/cpuinfo (then ask `cpu_has_bf16`)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return bool(_BF16_FLAGS & set(line.split(":", 1)[1].split()))
        return False
    return None


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (emulated bf16 is slower than fp32)."""
    import torch

    with contextlib.suppress(AttributeError, RuntimeError):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False
