"""Denoise Studio core: degradations, adaptive sampling, U-Net, training and restoration.

    from denoise_core import train
    train(image_dir="photos", epochs=30, batch_size=16, learning_rate=1e-4, val_ratio=0.15, save_path="weights")

The package's names are loaded on first use, so ``import denoise_core`` costs almost
nothing; no submodule is named like a function it exports (``train`` lives in
`denoise_core.training`, ``restore`` in `denoise_core.restoration`).
"""

from __future__ import annotations

import importlib
import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
# Exported name -> the module that defines it.
_EXPORTS = {
    "train": "training", "TrainConfig": "training",
    "restore": "restoration", "restore_file": "restoration", "DEFAULT_CHECKPOINT": "loading",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
