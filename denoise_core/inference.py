"""Inference backends: one object per checkpoint that restores a batch, whole or as one tile of a larger image.

A runner maps (B, C, H, W) float32 in [0, 1] on the CPU (any H, W) to the same
shape on the CPU, not clipped:

- ``runner(x)``: the model on ``x`` as it is.
- ``runner.tile_stats(x, wy, wx)`` and ``runner.tile(x, stats)``: the two passes of
  a tiled restore (`denoise_core.restoration.restore_tensor`). The NAF blocks'
  channel attention takes a global mean over the whole input
  (`UNet.attention_pools`), so a tile on its own sees different means than the
  whole image does, and tiles restored independently differ from the
  whole-image result by 1 dB or more with small tiles. So the first pass
  returns, per tile, every attention input summed with the tile's blending
  weights ``wy[:, None] * wx[None, :]`` ((B, S) "sums"); the second restores each
  tile with the whole image's means ``stats`` (B, S) in place of its own.

Backends:

- ``"bf16"``: the PyTorch model in bf16 (channels_last, ``inference_mode``), on a CPU with
  native bf16 (AVX-512 BF16 or AMX) or a CUDA GPU: a residual U-Net on the CPU runs oneDNN's
  fused convolutions (`denoise_core.fused`, 1.48x autocast here), anything else bf16 autocast.
  On this project's CPU it restores about 5x as fast as onnxruntime in fp32, and its output
  differs from fp32 by at most about one level (0-255) and 0.00-0.02 dB on the benchmark, so
  it is the default on such CPUs.
- ``"onnxruntime"``: the model exported to ONNX (`denoise_core.export`) run by
  onnxruntime on the CPU; about twice the speed of PyTorch fp32 here (see
  ``bench/perf.py``), so it is the default on other CPUs whenever onnxruntime is
  installed. The export takes about a second per graph, once per checkpoint: the graphs
  are cached on disk (`denoise_core.export.cached_onnx_graphs`).
- ``"torch"``: the PyTorch model in fp32 under ``inference_mode`` with channels_last
  weights and inputs; the default on CUDA/MPS, and the fallback on the CPU
  when onnxruntime is missing or the export fails.

``"auto"`` picks as above; the ``DENOISE_BACKEND`` environment variable
(``torch``, ``bf16`` or ``onnxruntime``) overrides it.

Runners take and return NumPy arrays (a torch tensor in gives a CPU tensor back). On a machine
with no GPU and no native bf16, ``"auto"`` with the checkpoint's graphs in the disk cache builds the
ONNX runner without importing torch at all (`load_runner`): that import is 2 s of a command-line restore.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from . import loading
from .allocator import tune_malloc
from .arrays import as_numpy, pad_tile_inputs, pad_to_multiple
from .device import cpu_bf16_flag, cpu_has_bf16
from .onnx_cache import find_graphs, onnxruntime_available

if TYPE_CHECKING:
    import torch

    from .model import UNet

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "bf16", "onnxruntime")


class Runner(Protocol):
    backend: str
    channels: int  # image channels in and out
    noise_map: bool  # the input carries one more channel, the noise map (`denoise_core.noise_level.noise_map`)
    multiple: int  # H and W are padded to a multiple of this (2 ** depth)
    stat_layout: list[tuple[int, int]]  # (level, channels) per attention pool; empty: nothing to share

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def tile_stats(self, x: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray: ...

    def tile(self, x: np.ndarray, stats: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    """A PyTorch model as a runner; feeds channels_last inputs when its weights are channels_last.

    ``bf16``: the ``"bf16"`` backend: bf16 autocast, or for a residual U-Net on the CPU oneDNN's fused
    convolutions (`denoise_core.fused`, about 1.45x as fast here) unless ``fused=False``; the output is
    float32 either way. ``fused`` is True on the runner when the fused path is in use.
    """

    def __init__(self, model: UNet, bf16: bool = False, fused: bool = True) -> None:
        import torch

        from .graphs import SharedStatsGraph, StatsGraph, stat_layout

        self.torch = torch
        self.model = model
        self.stats_graph, self.shared_graph = StatsGraph(model), SharedStatsGraph(model)
        first = model.intro.weight
        self.device = first.device
        self.channels = model.config.channels
        self.noise_map = model.config.noise_map
        self.multiple = model.multiple
        self.stat_layout = stat_layout(model)
        self.channels_last = first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous()
        self.backend = "bf16" if bf16 else "torch"
        self.bf16 = bf16
        self._fused = _fused_or_none(model) if bf16 and fused else None

    @property
    def fused(self) -> bool:
        """Whether the fused bf16 convolutions (`denoise_core.fused`) are in use."""
        return self._fused is not None

    def _mode(self) -> Any:
        """``inference_mode``, under bf16 autocast for the bf16 backend."""
        torch = self.torch
        if not self.bf16:
            return torch.inference_mode()
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(torch.autocast(self.device.type, dtype=torch.bfloat16))
        return stack

    def _in(self, x: np.ndarray) -> torch.Tensor:
        t = self._dev(x)
        return t.contiguous(memory_format=self.torch.channels_last) if self.channels_last else t

    def _dev(self, x: np.ndarray) -> torch.Tensor:
        return self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def __call__(self, x: Any) -> Any:
        a, back = as_numpy(x, np.float32)
        if self._fused is not None:
            return back(self._fused(self._in(a)).numpy())
        with self._mode():
            return back(self.model(self._in(a)).float().cpu().numpy())

    def tile_stats(self, x: Any, wy: Any, wx: Any) -> Any:
        a, back = as_numpy(x, np.float32)
        xp, wyp, wxp = pad_tile_inputs(a, as_numpy(wy)[0], as_numpy(wx)[0], self.multiple)
        with self._mode():
            sums = self.stats_graph(self._in(xp), self._dev(wyp), self._dev(wxp))
            return back(sums.double().cpu().numpy())

    def tile(self, x: Any, stats: Any) -> Any:
        if self._fused is not None and not self.stat_layout:  # no attention means: the tile is the plain model
            return self(x)
        a, back = as_numpy(x, np.float32)
        h, w = a.shape[-2:]
        with self._mode():
            y = self.shared_graph(self._in(pad_to_multiple(a, self.multiple)), self._dev(as_numpy(stats, np.float32)[0]))
            return back(y[..., :h, :w].float().cpu().numpy())


def _fused_or_none(model: UNet) -> Any:
    """`denoise_core.fused.FusedUNet` for ``model`` when it applies and agrees with autocast on a small input, else None."""
    import torch

    from .fused import FusedUNet, fusable

    if not fusable(model):
        return None
    try:
        fused = FusedUNet(model)
        x = torch.rand(1, model.config.in_channels, 40, 24, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            reference = model(x.contiguous(memory_format=torch.channels_last)).float()
        gap = (fused(x) - reference).abs().max().item()
    except Exception as exc:  # noqa: BLE001 -- an internal oneDNN operator; autocast still works
        log.warning("fused bf16 convolutions unavailable (%s: %s); using bf16 autocast", type(exc).__name__, exc)
        return None
    if not gap <= 0.05:  # bf16 rounding alone stays near 0.01; more means the operator misbehaves
        log.warning("fused bf16 convolutions differ from autocast by %.3f; using bf16 autocast", gap)
        return None
    return fused


class OnnxRunner:
    """Exported graphs run by onnxruntime on the CPU; the `denoise_core.inference.Runner` interface.

    Built from a plain ``.onnx`` file (what ``export`` writes) it restores whole images and
    tiles without shared statistics; `from_model` adds the two tiled-restore graphs.
    """

    backend = "onnxruntime"

    def __init__(self, plain: bytes | str | Path, stats: bytes | str | Path | None = None,
                 shared: bytes | str | Path | None = None, threads: int | None = None) -> None:
        self.threads = threads or default_threads()
        self.session = self._session(plain)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "denoise_multiple" not in meta:
            raise ValueError("not a Denoise Studio ONNX model (no denoise_multiple metadata)")
        self.multiple = int(meta["denoise_multiple"])
        self.config = json.loads(meta["denoise_model_config"])
        self.channels = int(self.config["channels"])
        self.noise_map = bool(self.config.get("noise_map", False))
        self.stats_session = self._session(stats) if stats is not None else None
        self.shared_session = self._session(shared) if shared is not None else None
        # What the model shares across tiles, per its metadata; usable only with both tiled-restore graphs.
        self.declared_layout = [tuple(v) for v in json.loads(meta.get("denoise_stat_layout", "[]"))]
        self.stat_layout = self.declared_layout if self.stats_session and self.shared_session else []

    @classmethod
    def from_model(cls, model: UNet, threads: int | None = None, checkpoint: str | Path | None = None) -> "OnnxRunner":
        """Export ``model``'s plain graph, and the tiled-restore graphs if it has attention (~1 s each).

        With ``checkpoint`` (the file ``model`` was loaded from) the graphs come from the disk
        cache (`cached_onnx_graphs`) when they are there.
        """
        from .export import cached_onnx_graphs

        if checkpoint is not None:
            g = cached_onnx_graphs(checkpoint, model)
            try:
                return cls(g["plain"], g.get("stats"), g.get("shared"), threads)
            except Exception as exc:  # noqa: BLE001 -- a corrupt or foreign cache entry: rebuilt below
                log.warning("the cached ONNX graphs of %s do not load (%s); exporting them again",
                            Path(checkpoint).name, str(exc).splitlines()[0][:160])
                g = cached_onnx_graphs(checkpoint, model, rebuild=True)
                return cls(g["plain"], g.get("stats"), g.get("shared"), threads)
        from .export import onnx_model_bytes
        from .graphs import stat_layout

        tiled = bool(stat_layout(model))
        return cls(onnx_model_bytes(model), onnx_model_bytes(model, graph="stats") if tiled else None,
                   onnx_model_bytes(model, graph="shared") if tiled else None, threads)

    def _session(self, source: bytes | str | Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Follow torch's thread setting (OMP_NUM_THREADS / torch.set_num_threads) so one knob
        # governs both backends; onnxruntime's own default is every core.
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No memory arena: an arena keeps each session's peak (~0.8 GB for a 512 px tile of the
        # default model) for the life of the process, per cached checkpoint; without it the
        # memory goes back after every run, for about 8% more time.
        options.enable_cpu_mem_arena = False
        # Idle threads sleep instead of spinning: the studio restores while training runs on the
        # same cores, and under such load spinning cost 30% here (8.6 vs 6.7 s/MP, 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = str(source) if isinstance(source, (str, Path)) else source
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    @classmethod
    def from_files(cls, files: dict[str, Path], threads: int | None = None) -> "OnnxRunner | None":
        """A runner from cached graph files (`denoise_core.onnx_cache.find_graphs`), with no torch import;
        None when the plain graph says the model shares attention statistics and those graphs are missing."""
        run = cls(files["plain"], files.get("stats"), files.get("shared"), threads)
        return run if run.stat_layout == run.declared_layout else None

    def __call__(self, x: Any) -> Any:
        a, back = as_numpy(x, np.float32)
        h, w = a.shape[-2:]
        (y,) = self.session.run(["y"], {"x": np.ascontiguousarray(pad_to_multiple(a, self.multiple))})
        return back(y[..., :h, :w])

    def tile_stats(self, x: Any, wy: Any, wx: Any) -> Any:
        a, back = as_numpy(x, np.float32)
        xp, wyp, wxp = pad_tile_inputs(a, as_numpy(wy)[0], as_numpy(wx)[0], self.multiple)
        feed = {"x": np.ascontiguousarray(xp), "wy": np.ascontiguousarray(wyp), "wx": np.ascontiguousarray(wxp)}
        (sums,) = self.stats_session.run(["sums"], feed)
        return back(sums.astype(np.float64))

    def tile(self, x: Any, stats: Any) -> Any:
        a, back = as_numpy(x, np.float32)
        h, w = a.shape[-2:]
        feed = {"x": np.ascontiguousarray(pad_to_multiple(a, self.multiple)),
                "stats": np.ascontiguousarray(as_numpy(stats, np.float32)[0])}
        (y,) = self.shared_session.run(["y"], feed)
        return back(y[..., :h, :w])


def default_threads() -> int:
    """torch's thread count when torch is loaded (so torch.set_num_threads governs both backends), else what
    torch would choose: ``OMP_NUM_THREADS``, or the number of cores."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend ``"auto"`` stands for on ``device``; validates explicit choices."""
    backend = _requested(backend)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if device.type != "cpu":
            return "torch"
        if cpu_has_bf16():
            return "bf16"
        return "onnxruntime" if onnxruntime_available() else "torch"
    if backend == "bf16":
        if device.type == "cpu" and not cpu_has_bf16():
            raise ValueError("backend 'bf16' needs a CPU with native bf16 (AVX-512 BF16 or AMX); "
                             "this one has none: use 'onnxruntime' or 'torch'")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"backend 'bf16' runs on the CPU or a CUDA GPU, not on {device}")
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU, not on {device}")
        if not onnxruntime_available():
            raise ValueError("backend 'onnxruntime' was requested but onnxruntime (or onnx) is not installed")
    return backend


def _requested(backend: str) -> str:
    """``backend``, with ``"auto"`` overridden by ``DENOISE_BACKEND`` when that is set."""
    if backend == "auto":
        return os.environ.get("DENOISE_BACKEND", "auto") or "auto"
    return backend


def load_runner(checkpoint: str | Path | None = None, device: Any = "auto", backend: str = "auto") -> Runner:
    """A cached runner for a checkpoint (default: the shipped one); see the module docstring for backends.

    Fast path: where the ONNX backend is the one ``device`` and ``backend`` ask for on this machine (the CPU
    asked for, or ``"auto"`` with no GPU device, `denoise_core.device.surely_cpu_only`) and the checkpoint's graphs
    are in the disk cache, the runner is built from them without loading the checkpoint or importing torch.
    """
    tune_malloc()  # before the first big buffer: see `denoise_core.allocator`
    path = Path(checkpoint) if checkpoint else loading.DEFAULT_CHECKPOINT  # read at call time: tests repoint it
    stat = path.stat() if path.is_file() else None
    with _LOAD_LOCK:
        fast = _fast_runner(path, stat, device, backend)
        if fast is not None:
            return fast
    from .device import pick_device

    dev = pick_device(device) if isinstance(device, str) else device
    concrete = resolve_backend(backend, dev)
    # One load at a time: concurrent first requests (the studio computes two at once) would
    # otherwise export the same graphs side by side, which the ONNX exporter does not survive.
    with _LOAD_LOCK:
        return _load_runner_cached(str(path.resolve()), stat.st_mtime_ns if stat else 0, str(dev), concrete, backend == "auto")


_LOAD_LOCK = threading.Lock()


def onnx_without_torch(device: Any) -> bool:
    """Whether ``device`` surely means the CPU and onnxruntime is installed: the ONNX backend can then run from
    cached graphs without importing torch."""
    from .device import surely_cpu_only

    cpu = isinstance(device, str) and (device == "cpu" or (device == "auto" and surely_cpu_only()))
    return cpu and onnxruntime_available()


# From this many pixels up, bf16's speed wins back torch's import in a one-photo process: measured by
# `bench/startup.py --threads 2` on this project's 2-core CPU (onnxruntime vs bf16, seconds per process: 1024x768
# 2.18 vs 2.33, 1280x960 3.17 vs 2.75, 4000x3000 30.8 vs 14.8; the crossover is near 0.9 MP).
STARTUP_BF16_PIXELS = 1_000_000


def startup_backend(backend: str, device: Any, pixels: int | None = None) -> str:
    """The backend for a process that restores one photo of ``pixels`` pixels and exits.

    For a small photo the 2 s import of torch outweighs bf16's gain, so ``"auto"`` (not overridden by
    ``DENOISE_BACKEND``) means onnxruntime where that can skip it; from `STARTUP_BF16_PIXELS` up, on a CPU
    with native bf16, ``"auto"`` stays bf16. ``pixels`` None (size unknown) counts as small.
    """
    if _requested(backend) != "auto" or not onnx_without_torch(device):
        return backend
    if pixels is not None and pixels >= STARTUP_BF16_PIXELS and cpu_bf16_flag() is not False:
        return backend
    return "onnxruntime"


def _fast_runner(path: Path, stat: os.stat_result | None, device: Any, backend: str) -> Runner | None:
    wanted = _requested(backend)
    if stat is None or wanted not in ("auto", "onnxruntime") or not onnx_without_torch(device):
        return None
    if wanted == "auto" and cpu_bf16_flag() is not False:  # "auto" is (or may be) bf16 here
        return None
    return _fast_runner_cached(str(path.resolve()), stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _fast_runner_cached(path: str, mtime_ns: int) -> Runner | None:
    files = find_graphs(path)
    if files is None:
        return None
    try:
        return OnnxRunner.from_files(files)
    except Exception as exc:  # noqa: BLE001 -- a corrupt entry: the slow path loads the checkpoint and rebuilds it
        log.debug("cached ONNX graphs of %s unusable (%s); loading the checkpoint", Path(path).name, exc)
        return None


@functools.lru_cache(maxsize=4)
def _load_runner_cached(path: str, mtime_ns: int, device: str, backend: str, fallback: bool) -> Runner:
    import torch

    model = loading.load_model(path, device)
    if backend == "onnxruntime":
        try:
            return OnnxRunner.from_model(model, checkpoint=path)
        except Exception as exc:  # noqa: BLE001 -- whatever broke the export or the session, PyTorch still works
            if not fallback:
                raise
            log.warning("onnxruntime backend unavailable for %s (%s: %s); using PyTorch", Path(path).name, type(exc).__name__, exc)
    # channels_last is faster for these convolutions on CPU and GPU; it changes only the
    # memory layout of the cached model, not its results.
    model.to(memory_format=torch.channels_last)
    return TorchRunner(model, bf16=backend == "bf16")
