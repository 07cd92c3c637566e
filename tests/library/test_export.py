"""ONNX export and the onnxruntime runner: parity with PyTorch on any size."""

import onnx
import pytest
import torch

from denoise_core.checkpoint import save_checkpoint
from denoise_core.cli import main
from denoise_core.export import onnx_model_bytes
from denoise_core.inference import OnnxRunner
from denoise_core.inference import TorchRunner
from denoise_core.model import ModelConfig, build_model


def _model(block: str = "naf") -> torch.nn.Module:
    """A small model whose every block contributes (NAFNet's residual scales start at 0)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8, depth=2, block=block))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.5)
    return model.eval()


@pytest.fixture
def checkpoint(tmp_path):
    model = _model()
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config.to_dict()})
    return path, model


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_cli_export_matches_pytorch_on_any_size(checkpoint, tmp_path, capsys, dynamo):
    path, model = checkpoint
    out = tmp_path / "model.onnx"
    assert main(["export", str(path), str(out)] + (["--dynamo"] if dynamo else [])) == 0
    assert "wrote" in capsys.readouterr().out
    graph = onnx.load(out).graph
    assert [i.name for i in graph.input] == ["x"] and [o.name for o in graph.output] == ["y"]
    run = OnnxRunner(out)
    assert run.multiple == 4 and run.channels == 3 and run.stat_layout == []
    for shape in [(1, 3, 45, 61), (2, 3, 16, 16), (1, 3, 5, 3)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            ref = model(x)
        y = run(x)
        assert y.shape == x.shape
        assert (y - ref).abs().max().item() < 1e-3


def test_tiled_restore_graphs_match_pytorch():
    model = _model()
    torch_run, onnx_run = TorchRunner(model), OnnxRunner.from_model(model)
    assert onnx_run.stat_layout == torch_run.stat_layout and len(onnx_run.stat_layout) == 6
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 30, 41, generator=g)
    wy, wx = torch.rand(30, generator=g), torch.rand(41, generator=g)
    sums = onnx_run.tile_stats(x, wy, wx)
    assert sums.shape == (2, sum(c for _, c in torch_run.stat_layout))
    assert torch.allclose(sums, torch_run.tile_stats(x, wy, wx), rtol=1e-4, atol=1e-3)
    stats = torch.randn(sums.shape, generator=g)
    y = onnx_run.tile(x, stats)
    assert y.shape == x.shape and (y - torch_run.tile(x, stats)).abs().max().item() < 1e-3
    with torch.no_grad():
        assert (y - model(x)).abs().max().item() > 1e-2  # the shared statistics do replace the tile's own
        assert (onnx_run(x) - model(x)).abs().max().item() < 1e-3


def test_model_without_attention_has_no_statistics_to_share():
    model = _model("res")
    run = OnnxRunner.from_model(model)
    assert run.stat_layout == [] and run.stats_session is None
    x = torch.rand(1, 3, 21, 18)
    with torch.no_grad():
        assert (run(x) - model(x)).abs().max().item() < 1e-3
    with pytest.raises(ValueError, match="no attention"):
        onnx_model_bytes(model, graph="stats")


def test_runner_rejects_foreign_onnx(tmp_path):
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    vi = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in ("x", "y")]
    path = tmp_path / "other.onnx"
    model = onnx.helper.make_model(onnx.helper.make_graph([node], "g", vi[:1], vi[1:]), opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    with pytest.raises(ValueError, match="not a Denoise Studio"):
        OnnxRunner(path)
