"""`denoise_core.allocator`: big buffers are reused instead of faulted in again, and the opt-out is honoured.

Each case runs in a fresh interpreter: mallopt changes the whole process, and the pytest process has tuned it already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# 64 MB buffers allocated, zeroed and freed in turn: above glibc's 32 MB ceiling for its adaptive mmap
# threshold, so as it comes every one is fresh pages (about 16,000 faults of 4 kB). A bytearray, not numpy:
# numpy asks for transparent huge pages on big arrays, which hides most of the faults.
CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from denoise_core import allocator
tuned = allocator.tune_malloc() if sys.argv[2] == "tune" else None
if sys.argv[2] == "release":
    tuned = allocator.tune_malloc()
    blocks = [bytearray(64 << 20) for _ in range(3)]  # 192 MB touched, then freed: kept in the tuned heap
    del blocks
    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
    before = rss()
    released = allocator.release_free_memory()
    print(json.dumps({"tuned": tuned, "released": released, "before": before, "after": rss()}))
    sys.exit()
if sys.argv[2] == "runner":
    from denoise_core.inference import load_runner
    load_runner(None, "cpu", "torch")
    tuned = allocator.tune_malloc()
for _ in range(2):  # warm-up: the heap grows to hold the buffer once
    bytearray(64 << 20)
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    bytearray(64 << 20)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 5
print(json.dumps({"tuned": tuned, "state": allocator._state, "faults": faults}))
"""

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
                                reason="mallopt is glibc's")


def _child(mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "DENOISE_MALLOC"} | env
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), mode], capture_output=True, text=True,
                         check=True, env=environ, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_tuned_malloc_reuses_big_buffers() -> None:
    system, tuned = _child("none"), _child("tune")
    assert system["state"] is None and tuned["tuned"] is True
    assert system["faults"] > 10_000  # the 64 MB buffer is faulted in on every allocation
    assert tuned["faults"] < 500  # the freed buffer stays in the heap and is reused


@glibc_only
def test_opt_out_leaves_malloc_alone() -> None:
    r = _child("tune", DENOISE_MALLOC="system")
    assert r["tuned"] is False and r["faults"] > 10_000


@glibc_only
def test_load_runner_tunes_malloc() -> None:
    r = _child("runner")
    assert r["state"] is True and r["faults"] < 500


@glibc_only
def test_release_hands_the_kept_heap_back():
    r = _child("release")
    assert r["tuned"] is True and r["released"] is True
    assert r["before"] - r["after"] > 150  # MB: the freed 192 MB leave the process


def test_release_does_nothing_without_tuning(monkeypatch):
    from denoise_core import allocator

    monkeypatch.setattr(allocator, "_state", False)
    assert allocator.release_free_memory() is False


def test_a_big_restore_releases_its_memory_and_a_small_one_keeps_it(monkeypatch, tiny_checkpoint):
    import numpy as np

    from denoise_core import restoration

    calls = []
    monkeypatch.setattr(restoration, "release_free_memory", lambda: calls.append(1) or True)
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    restoration.restore(image, tiny_checkpoint, backend="torch")
    assert calls == []  # 2,000 pixels: below RELEASE_PIXELS
    monkeypatch.setattr(restoration, "RELEASE_PIXELS", 2_000)
    out = restoration.restore(image, tiny_checkpoint, backend="torch")
    assert calls == [1] and out.shape == image.shape
