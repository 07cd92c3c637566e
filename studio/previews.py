"""Validation samples of a run: degraded / restored / clean crops from its best checkpoint.

The crops come from the run's validation images (the trainer's seeded split of
its image folder), one degradation each at a fixed severity and seed, so the
same samples are shown after every epoch and the improvement is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from denoise_core import degradations
from denoise_core.data import find_images, load_images, random_crop, split_indices
from denoise_core.history import read_events
from denoise_core.losses import psnr_per_image
from denoise_core.restoration import load_model, restore_tensor
from .workspace import BEST_FILE, read_json
from denoise_core.runfiles import CONFIG_FILE

PREVIEW_SEVERITY = 0.5


@dataclass(frozen=True)
class Preview:
    """One validation sample: uint8 arrays (H, W, 3) or (H, W) and the PSNRs against the clean crop."""

    degradation: str
    degraded: np.ndarray
    restored: np.ndarray
    clean: np.ndarray
    psnr_degraded: float
    psnr_restored: float


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    arr = (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[2] == 1 else arr


def spread(names: list[str], count: int) -> list[str]:
    """``count`` names spread evenly over ``names`` (all of them if fewer)."""
    if count >= len(names):
        return list(names)
    step = len(names) / count
    return [names[int(i * step)] for i in range(count)]


def validation_paths(run: str | Path) -> list[Path]:
    """The run's validation images, as its trainer split them: from the start event's ``val_files``
    (written by runs since 2026-12-02), else recomputed the trainer's way, with the files it skipped left out."""
    run = Path(run)
    config = read_json(run / CONFIG_FILE)
    folder = Path(config["image_dir"])
    start = next((e for e in read_events(run) if e.get("type") == "status" and e.get("status") == "started"), {})
    if "val_files" in start:
        return [folder / name for name in start["val_files"]]
    skipped = set(start.get("skipped") or [])
    kept = [p for p in find_images(folder) if str(p) not in skipped]
    _, val_idx = split_indices(len(kept), float(config.get("val_ratio", 0.15)), int(config.get("seed", 0)))
    return [kept[i] for i in val_idx]


def validation_previews(
    run: str | Path, count: int = 3, size: int = 96, device: str = "cpu", model: torch.nn.Module | None = None
) -> list[Preview]:
    """``count`` fixed validation samples of the run in folder ``run``, restored by its ``best.pt``
    (or by ``model``, when the caller has already loaded it).

    Returns [] while the run has no best checkpoint yet. Raises `DatasetError`
    if its image folder is gone, `CheckpointError` for an unusable checkpoint.
    """
    run = Path(run)
    config = read_json(run / CONFIG_FILE)
    if not (run / BEST_FILE).is_file() or not config.get("image_dir"):
        return []
    images, _, _ = load_images(validation_paths(run)[:count], channels=int(config.get("channels", 3)))
    model = model if model is not None else load_model(run / BEST_FILE, device)
    names = degradations.validate_names(config.get("degradations") or list(degradations.NAMES))
    seed = int(config.get("seed", 0))
    previews = []
    for i, name in enumerate(spread(names, count)):
        img = images[i % len(images)]
        g = torch.Generator().manual_seed(seed * 7919 + 104729 + i)
        crop = random_crop(img, min(size, *img.shape[-2:]), g)
        degraded = degradations.apply(name, crop, PREVIEW_SEVERITY, g)
        restored = restore_tensor(model, degraded[None])[0]
        previews.append(Preview(
            degradation=name,
            degraded=_to_uint8(degraded), restored=_to_uint8(restored), clean=_to_uint8(crop),
            psnr_degraded=float(psnr_per_image(degraded[None], crop[None])[0]),
            psnr_restored=float(psnr_per_image(restored[None], crop[None])[0]),
        ))
    return previews
