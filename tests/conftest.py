"""Shared fixtures (tiny image folders and a tiny checkpoint made on the fly) and the test markers.

Tests mirror the code: ``tests/library`` tests `denoise_core`, ``tests/studio`` tests `studio`
and the app. Markers come from there: library tests are ``unit`` unless listed in ``SLOW``;
studio tests are ``app``, and ``browser`` for the Playwright ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(min(2, os.cpu_count() or 1))
# Exported ONNX graphs are cached per user (denoise_core.export.cache_dir); the suite keeps its own
# cache, so it never reads one that another checkout wrote and leaves nothing in the user's home.
os.environ.setdefault("DENOISE_CACHE_DIR", str(Path(__file__).resolve().parents[1] / "test-artifacts" / "cache"))

# NAF blocks: their channel attention is what tiled restores and the ONNX statistics graphs must get right;
# the default residual blocks are trained by tests/library/test_cli.py and the studio's tests.
TINY = dict(
    patch_size=24, steps_per_epoch=3, batch_size=4, num_workers=0, width=8, depth=2, block="naf",
    val_patch_size=24, val_max_crops=22, log_every=1, warmup_steps=1,
)


def make_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth colour image with edges: gradients plus a few rectangles, uint8 (H, W, 3)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin((xx + yy) / 7.0)], axis=-1)
    for _ in range(3):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.random(3)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def reap():
    """Register a test's child processes (``reap(proc)`` returns ``proc``): any still running when the test ends,
    failed or not, is killed, so a failed wait does not leave a training behind to slow every later test."""
    procs: list = []

    def register(proc):
        procs.append(proc)
        return proc

    yield register
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Six small PNG/JPEG images in nested folders."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for i in range(6):
        arr = make_image(rng, 40 + 4 * i, 48 - 2 * i)
        folder = root / "sub" if i % 2 else root
        Image.fromarray(arr).save(folder / (f"img{i}.png" if i % 3 else f"img{i}.jpg"))
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny trained checkpoint (best.pt of a 1-epoch run on four small images), shared by the whole session."""
    from denoise_core import train

    root = tmp_path_factory.mktemp("tiny-ckpt")
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    for i in range(4):
        Image.fromarray(make_image(rng, 40, 44)).save(root / "img" / f"{i}.png")
    train(root / "img", epochs=1, val_ratio=0.25, save_path=root / "run", **dict(TINY, degradations=["gaussian_noise"]))
    return root / "run" / "best.pt"


# Library test files that take long (subprocesses, kills, wheel builds, benchmark and training runs): not `unit`.
SLOW = {"test_faults.py", "test_distributed.py", "test_package.py", "test_bench.py", "test_do_no_harm.py",
        "test_gpu_script.py", "test_train.py", "test_train_recipe.py", "test_restore_cli.py", "test_model_card.py",
        "test_cli.py", "test_cuda.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if path.parent.name == "library":
            slow = path.name in SLOW or item.get_closest_marker("slow") is not None
            item.add_marker(pytest.mark.slow if slow else pytest.mark.unit)
        elif path.parent.name == "studio":
            item.add_marker(pytest.mark.browser if path.name == "test_browser.py" else pytest.mark.app)
