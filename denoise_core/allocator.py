"""Keeping the C allocator from returning big buffers to the OS between forward passes.

glibc's malloc serves blocks above its mmap threshold with fresh ``mmap`` pages and
unmaps them on free. The threshold adapts upwards only to 32 MB, and a 512 px tile's
activations (a 32-channel full-resolution float32 map is 33.5 MB) are larger, so
every forward pass faulted in its buffers again: about 30,000 page faults per
512² pass of the shipped model, a quarter of its time in bf16 (`bench/perf.py`).
With the threshold and the trim threshold raised, freed buffers stay in the heap
and the next pass reuses them, as PyTorch's GPU caching allocator does on a GPU.

The price would be memory kept after a restore (up to ``TRIM_BYTES`` of free heap, and
free chunks below the heap top), so `release_free_memory` hands the free pages back
with ``malloc_trim`` after a big photo (`denoise_core.restoration.restore`): the tiles
of one photo reuse each other's buffers, and a long-running studio does not keep 2 GB
after a 12-MP restore. ``DENOISE_MALLOC=system`` leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
# Blocks up to 1 GiB come from the heap (a 4,000 px tile would still be mmapped); up to
# 1 GiB of free heap top is kept; each heap growth adds 64 MB, so a pass grows it a few times, not hundreds.
MMAP_BYTES = 1 << 30
TRIM_BYTES = 1 << 30
TOP_PAD_BYTES = 64 << 20

_lock = threading.Lock()
_state: bool | None = None


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are raised (now or before).

    False, doing nothing, off glibc (macOS, Windows, musl), or with ``DENOISE_MALLOC=system``.
    """
    global _state
    with _lock:
        if _state is None:
            _state = _apply()
        return _state


def _apply() -> bool:
    if os.environ.get("DENOISE_MALLOC", "").strip().lower() == "system":
        log.debug("DENOISE_MALLOC=system: malloc left as it is")
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in
             ((_M_MMAP_THRESHOLD, MMAP_BYTES), (_M_TRIM_THRESHOLD, TRIM_BYTES), (_M_TOP_PAD, TOP_PAD_BYTES)))
    if ok:
        log.debug("malloc: mmap threshold %d MB, trim threshold %d MB", MMAP_BYTES >> 20, TRIM_BYTES >> 20)
    else:
        log.warning("mallopt refused the thresholds; restores may run slower (page faults)")
    return ok


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS (glibc ``malloc_trim(0)``) when `tune_malloc` raised the thresholds;
    True when it ran. Costs the next big allocation its page faults again, so call it after a big job, not per tile."""
    if not _state:
        return False
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True
