"""The Train page's validation previews use the trainer's own split, also when the folder has unreadable files."""

from __future__ import annotations

import numpy as np
from PIL import Image

from conftest import TINY, make_image
from denoise_core import train
from denoise_core.data import find_images, split_indices
from studio.previews import validation_paths, validation_previews


def test_previews_use_the_trainers_validation_images(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    (folder / "a0-broken.png").write_bytes(b"not an image")  # sorts first: shifts every index of a naive split
    rng = np.random.default_rng(0)
    for i in range(1, 9):
        Image.fromarray(make_image(rng, 40, 44)).save(folder / f"a{i}.png")
    run = tmp_path / "run"
    train(folder, epochs=1, val_ratio=0.25, save_path=run, **TINY)
    val = validation_paths(run)
    readable = [p for p in find_images(folder) if p.name != "a0-broken.png"]
    _, val_idx = split_indices(len(readable), 0.25, 0)  # the trainer's split: of the readable files
    assert val == [readable[i] for i in val_idx] and len(val) == 2
    # What the page did before: split all files, unreadable included, so its "validation" images differed.
    every = find_images(folder)
    _, naive_idx = split_indices(len(every), 0.25, 0)
    assert [every[i] for i in naive_idx] != val
    previews = validation_previews(run, count=2, size=24)
    assert len(previews) == 2 and all(p.clean.shape[:2] == (24, 24) for p in previews)
