"""ONNX export of a restoration model, and running the exported graph with onnxruntime.

``python -m denoise_core export CKPT OUT.onnx`` writes the plain graph
`UNet.forward_padded`: input ``x`` (B, C, H, W) float32 with H and W multiples
of ``2 ** depth`` (batch, height and width are dynamic axes), output ``y`` of
the same shape, not clipped. The shape-dependent padding stays outside the
graph: pad the bottom/right to the multiple (reflect), run, crop back.
`OnnxRunner` does that, so any image size works and the result matches the
PyTorch model to float rounding. The config is stored in the ONNX metadata
(``denoise_model_config``, ``denoise_multiple``).

For tiled restores the runner also exports the two passes that share attention
means across tiles (`denoise_core.inference.StatsGraph`, `SharedStatsGraph`).

Two exporters: ``"torchscript"`` (default; about a second per graph) and ``"dynamo"``
(``torch.export``-based, PyTorch's recommended one, ~20 s). If the TorchScript
exporter is missing from a future PyTorch, ``"torchscript"`` falls back to ``"dynamo"``.

`cached_onnx_graphs` keeps the exported graphs on disk, keyed by the checkpoint's
SHA-256 and the exporter's version (`cache_dir`), so only the first restore with a
checkpoint pays for the export.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_write_bytes
from .graphs import SharedStatsGraph, StatsGraph, stat_layout
from .loading import load_model
from .model import UNet
from .onnx_cache import (  # noqa: F401 -- cache_dir, exporter_version, onnxruntime_available: re-exported
    GRAPHS, OPSET, cache_dir, exporter_version, graph_paths, onnxruntime_available,
)

log = logging.getLogger(__name__)

EXPORTERS = ("torchscript", "dynamo")


class _Padded(nn.Module):
    """`UNet.forward_padded` as a module's forward, for the exporters."""

    def __init__(self, model: UNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_padded(x)



def _graph(model: UNet, graph: str) -> tuple[nn.Module, tuple, list[str], list[str], dict[str, dict[int, str]]]:
    """Module, example inputs, input/output names and dynamic axes of the graph to export."""
    m, c = model.multiple, model.config.in_channels
    h, w = 2 * m, 3 * m  # distinct H and W so that no axis is mistaken for another
    x = torch.rand(2, c, h, w)
    image = {0: "batch", 2: "height", 3: "width"}
    if graph == "plain":
        return _Padded(model), (x,), ["x"], ["y"], {"x": image, "y": image}
    s = sum(ch for _, ch in stat_layout(model))
    if graph == "stats":
        return (StatsGraph(model), (x, torch.rand(h), torch.rand(w)), ["x", "wy", "wx"], ["sums"],
                {"x": image, "wy": {0: "height"}, "wx": {0: "width"}, "sums": {0: "batch"}})
    return SharedStatsGraph(model), (x, torch.rand(2, s)), ["x", "stats"], ["y"], {"x": image, "stats": {0: "batch"}, "y": image}


def _export_torchscript(module, args, inputs, outputs, axes) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # "legacy exporter" warnings: it is chosen on purpose, see the module docstring
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=OPSET,
                          input_names=inputs, output_names=outputs, dynamic_axes=axes)
    return buf.getvalue()


def _export_dynamo(module, args, inputs, outputs, axes, multiple: int) -> bytes:
    dims = {"batch": torch.export.Dim("batch", min=1, max=1024),
            "height": multiple * torch.export.Dim("h", min=1, max=65536 // multiple),
            "width": multiple * torch.export.Dim("w", min=1, max=65536 // multiple)}
    shapes = {name: {axis: dims[label] for axis, label in axes[name].items()} if name in axes else None for name in inputs}
    program = torch.onnx.export(module, args, dynamo=True, opset_version=max(OPSET, 18), verbose=False,
                                input_names=inputs, output_names=outputs, dynamic_shapes=shapes)
    return program.model_proto.SerializeToString()


def onnx_model_bytes(model: UNet, exporter: str = "torchscript", graph: str = "plain") -> bytes:
    """Export ``model`` to a serialized ONNX model with its config in the metadata.

    ``graph``: ``"plain"`` (``x -> y``, the model), or the two passes of a tiled restore,
    ``"stats"`` (`StatsGraph`, ``x, wy, wx -> sums``) and ``"shared"``
    (`SharedStatsGraph`, ``x, stats -> y``); the last two need a model with attention.
    """
    import onnx

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
    cpu = model if model.intro.weight.device.type == "cpu" else copy.deepcopy(model).cpu()
    if graph != "plain" and not stat_layout(cpu):
        raise ValueError(f"a {cpu.config.block!r}-block model has no attention statistics to share")
    training = cpu.training
    spec = _graph(cpu, graph)
    spec[0].eval()
    try:
        with torch.no_grad():
            if exporter == "torchscript":
                try:
                    data = _export_torchscript(*spec)
                except (AttributeError, ImportError, NotImplementedError) as exc:
                    log.warning("TorchScript ONNX exporter unavailable (%s); using the torch.export one", exc)
                    data = _export_dynamo(*spec, cpu.multiple)
            else:
                data = _export_dynamo(*spec, cpu.multiple)
    finally:
        cpu.train(training)
    proto = onnx.load_from_string(data)
    onnx.helper.set_model_props(proto, {
        "denoise_model_config": json.dumps(cpu.config.to_dict()),
        "denoise_multiple": str(cpu.multiple),
        "denoise_graph": graph,
        "denoise_stat_layout": json.dumps(stat_layout(cpu)),
    })
    return proto.SerializeToString()


def export_onnx(checkpoint: str | Path | None, out: str | Path, exporter: str = "torchscript") -> Path:
    """Export a checkpoint's model (default: the shipped one) as the plain ``x -> y`` graph to ``out``, atomically."""
    model = load_model(checkpoint, "cpu")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, onnx_model_bytes(model, exporter))
    return out


def graph_cache_paths(checkpoint: str | Path, model: UNet) -> dict[str, Path]:
    """The cache file of each graph `OnnxRunner` needs for ``model`` (loaded from ``checkpoint``)."""
    return graph_paths(checkpoint, GRAPHS if stat_layout(model) else ("plain",))


def cached_onnx_graphs(checkpoint: str | Path, model: UNet, rebuild: bool = False) -> dict[str, bytes]:
    """The serialized graphs `OnnxRunner` needs for ``model`` (loaded from ``checkpoint``), from the disk cache.

    Missing entries (all of them with ``rebuild``) are exported and written atomically. If the
    cache folder cannot be written, the graphs are exported in memory (a debug log says why).
    Whether an entry is sound is the caller's to find out (`OnnxRunner.from_model` opens it and
    rebuilds it with a warning when it does not load).
    """
    out: dict[str, bytes] = {}
    for graph, path in graph_cache_paths(checkpoint, model).items():
        data = None
        if path.is_file() and not rebuild:
            try:
                data = path.read_bytes()
            except OSError as exc:
                log.warning("cannot read the cached ONNX graph %s (%s); exporting again", path, exc)
        if data is None:
            data = onnx_model_bytes(model, graph=graph)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, data)
            except OSError as exc:
                log.debug("ONNX cache %s not writable (%s); the export is not kept", path.parent, exc)
        out[graph] = data
    return out
