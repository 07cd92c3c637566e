"""Helpers shared by the studio tests: a data root with a tiny dataset, tiny job settings, polling."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import make_image

# Training options for a job that finishes in seconds on a CPU.
TINY_JOB = dict(dataset="tiny", epochs=2, steps_per_epoch=2, batch_size=4, patch_size=24, width=8, depth=2, num_workers=0,
                init_from=None)


def make_root(tmp_path: Path, monkeypatch) -> Path:
    """A data root (set as $DENOISE_DATA_ROOT) holding datasets/tiny with six small images."""
    root = tmp_path / "root"
    folder = root / "datasets" / "tiny"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(make_image(rng, 40 + 2 * i, 44)).save(folder / f"img{i}.png")
    (root / "runs").mkdir()
    monkeypatch.setenv("DENOISE_DATA_ROOT", str(root))
    return root


def wait_until(condition, timeout: float = 120.0, poll: float = 0.3, context=None):
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` seconds,
    with ``context()`` (e.g. a log tail) in the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout} s" + (f": {context()}" if context else ""))
