"""NumPy helpers for restoring without PyTorch: crossing from torch tensors and back, padding to the model's grid.

The restore path (`denoise_core.restoration`, `denoise_core.tone`, the runners) works on NumPy arrays so that a
command-line restore with a cached ONNX graph never imports torch (2 s of start-up here). Its public functions still
take torch tensors too: `as_numpy` converts one at the door and hands back a function that converts the result.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np


def is_tensor(x: Any) -> bool:
    """True for a torch tensor, without importing torch (a tensor can only exist once torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def as_numpy(x: Any, dtype: type | None = None) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """``x`` as a NumPy array (on the CPU), and a function turning a result back into ``x``'s kind.

    A torch tensor comes back as a CPU tensor (whatever device ``x`` was on: the callers move results themselves).
    """
    if is_tensor(x):
        import torch

        arr = x.detach().cpu().numpy()
        return (arr if dtype is None else arr.astype(dtype, copy=False)), lambda y: torch.from_numpy(np.ascontiguousarray(y))
    arr = np.asarray(x)
    return (arr if dtype is None else arr.astype(dtype, copy=False)), lambda y: y


def pad_plan(h: Any, w: Any, multiple: int) -> tuple[Any, Any, bool]:
    """Bottom and right padding that make H and W multiples of ``multiple``, and whether to reflect (else replicate).

    One rule for the NumPy path and the model's own `model.pad_to_multiple`; plain arithmetic, so torch's symbolic
    sizes pass through it unchanged.
    """
    ph, pw = (multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple
    # Reflect padding keeps borders natural; it needs the pad smaller than the side.
    return ph, pw, ph < h and pw < w


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """Pad (..., H, W) at the bottom/right so H and W are multiples of ``multiple`` (as `model.pad_to_multiple`)."""
    ph, pw, reflect = pad_plan(*x.shape[-2:], multiple)
    if not (ph or pw):
        return x
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode="reflect" if reflect else "edge")


def pad_tile_inputs(x: np.ndarray, wy: np.ndarray, wx: np.ndarray, multiple: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad a tile like the model pads its input, with zero weight on the padding."""
    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, multiple)
    hp, wp = xp.shape[-2:]
    return (xp, np.pad(wy.astype(np.float32), (0, hp - h)), np.pad(wx.astype(np.float32), (0, wp - w)))
