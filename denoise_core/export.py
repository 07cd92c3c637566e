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

Two exporters: ``"torchscript"`` (default; about a second, which is what makes
exporting on first use practical) and ``"dynamo"`` (``torch.export``-based,
PyTorch's recommended one, ~20 s). If the TorchScript exporter is missing from
a future PyTorch, ``"torchscript"`` falls back to ``"dynamo"``.
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
from .inference import SharedStatsGraph, StatsGraph, pad_tile_inputs, stat_layout
from .model import UNet, pad_to_multiple

log = logging.getLogger(__name__)

OPSET = 17
EXPORTERS = ("torchscript", "dynamo")


class _Padded(nn.Module):
    """`UNet.forward_padded` as a module's forward, for the exporters."""

    def __init__(self, model: UNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_padded(x)


GRAPHS = ("plain", "stats", "shared")


def _graph(model: UNet, graph: str) -> tuple[nn.Module, tuple, list[str], list[str], dict[str, dict[int, str]]]:
    """Module, example inputs, input/output names and dynamic axes of the graph to export."""
    m, c = model.multiple, model.config.channels
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
    from .restore import load_model

    model = load_model(checkpoint, "cpu")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, onnx_model_bytes(model, exporter))
    return out


def onnxruntime_available() -> bool:
    """True when onnxruntime and onnx can be imported (the ONNX backend's requirements)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxRunner:
    """Exported graphs run by onnxruntime on the CPU; the `denoise_core.inference.Runner` interface.

    Built from a plain ``.onnx`` file (what ``export`` writes) it restores whole images and
    tiles without shared statistics; `from_model` adds the two tiled-restore graphs.
    """

    backend = "onnxruntime"

    def __init__(self, plain: bytes | str | Path, stats: bytes | None = None, shared: bytes | None = None,
                 threads: int | None = None) -> None:
        self.threads = threads or torch.get_num_threads()
        self.session = self._session(plain)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "denoise_multiple" not in meta:
            raise ValueError("not a Denoise Studio ONNX model (no denoise_multiple metadata)")
        self.multiple = int(meta["denoise_multiple"])
        self.config = json.loads(meta["denoise_model_config"])
        self.channels = int(self.config["channels"])
        self.stats_session = self._session(stats) if stats is not None else None
        self.shared_session = self._session(shared) if shared is not None else None
        layout = json.loads(meta.get("denoise_stat_layout", "[]")) if self.stats_session and self.shared_session else []
        self.stat_layout = [tuple(v) for v in layout]

    @classmethod
    def from_model(cls, model: UNet, threads: int | None = None) -> "OnnxRunner":
        """Export ``model``'s plain graph, and the tiled-restore graphs if it has attention (~1 s each)."""
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

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = pad_to_multiple(x.detach().float().cpu(), self.multiple).contiguous()
        (y,) = self.session.run(["y"], {"x": xp.numpy()})
        return torch.from_numpy(y)[..., :h, :w]

    def tile_stats(self, x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
        xp, wyp, wxp = pad_tile_inputs(x.detach().float().cpu(), wy, wx, self.multiple)
        feed = {"x": xp.contiguous().numpy(), "wy": wyp.contiguous().numpy(), "wx": wxp.contiguous().numpy()}
        (sums,) = self.stats_session.run(["sums"], feed)
        return torch.from_numpy(sums).double()

    def tile(self, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = pad_to_multiple(x.detach().float().cpu(), self.multiple).contiguous()
        (y,) = self.shared_session.run(["y"], {"x": xp.numpy(), "stats": stats.float().contiguous().numpy()})
        return torch.from_numpy(y)[..., :h, :w]
