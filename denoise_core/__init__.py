"""Denoise Studio core: degradations, adaptive sampling, U-Net, training and restoration.

    from denoise_core import train
    train(image_dir="photos", epochs=30, batch_size=16, learning_rate=1e-4, val_ratio=0.15, save_path="weights")
"""

from __future__ import annotations

import logging

from .restore import DEFAULT_CHECKPOINT, restore
from .train import TrainConfig, train

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["DEFAULT_CHECKPOINT", "TrainConfig", "restore", "train"]
__version__ = "0.1.0"
