"""Where exported ONNX graphs are kept on disk, and finding them again without PyTorch.

An entry is keyed by the checkpoint's SHA-256 and the exporter's version (`exporter_version`): the torch and onnx
releases, the opset and our graph code. `denoise_core.export.cached_onnx_graphs` writes entries; `find_graphs`
reads them back with nothing heavier than hashlib, so a restore with a cached checkpoint can start without importing
torch (`denoise_core.inference.load_runner`).
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .checkpoint import file_sha256

OPSET = 17
# Bump when the exported graphs change meaning (StatsGraph/SharedStatsGraph, metadata), so old cache entries are not used.
GRAPH_VERSION = 1
GRAPHS = ("plain", "stats", "shared")


def cache_dir() -> Path:
    """Where exported graphs are cached: ``$DENOISE_CACHE_DIR``, else ``$XDG_CACHE_HOME/denoise-studio``,
    else ``~/.cache/denoise-studio`` (subfolder ``onnx``)."""
    root = os.environ.get("DENOISE_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "denoise-studio"
    return Path(root) / "onnx"


def exporter_version() -> str:
    """What an exported graph depends on besides the weights: torch, onnx, the opset and our graph code.

    Read from the installed packages' metadata, so asking costs no import of either.
    """
    try:
        return f"torch{version('torch')}-onnx{version('onnx')}-opset{OPSET}-g{GRAPH_VERSION}"
    except PackageNotFoundError as exc:  # no onnx (or torch): nothing can be exported, so nothing is cached
        return f"missing-{exc.name}"


def graph_paths(checkpoint: str | Path, graphs: tuple[str, ...] | list[str] = GRAPHS) -> dict[str, Path]:
    """The cache file of each of ``graphs`` for ``checkpoint``."""
    key = f"{file_sha256(checkpoint)[:32]}-{exporter_version()}"
    return {graph: cache_dir() / f"{key}-{graph}.onnx" for graph in graphs}


def find_graphs(checkpoint: str | Path) -> dict[str, Path] | None:
    """The cached graph files of ``checkpoint`` that exist, or None when its plain graph is not cached.

    Whether a model also needs the two tiled-restore graphs is in the plain graph's metadata, which the
    runner reads when it opens it (`denoise_core.inference.OnnxRunner.from_files`); reading it here would
    take ``import onnx``, 0.8 s.
    """
    paths = graph_paths(checkpoint)
    if not paths["plain"].is_file():
        return None
    return {g: p for g, p in paths.items() if p.is_file()}


def onnxruntime_available() -> bool:
    """True when onnxruntime and onnx are installed (the ONNX backend's requirements); imports neither."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("onnx", "onnxruntime"))
