"""Tiled restores: blending, shared attention statistics, backends."""

import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TINY, make_image
from denoise_core import inference, restore as restore_fn
from denoise_core.checkpoint import load_checkpoint, save_checkpoint
from denoise_core.device import cpu_has_bf16
from denoise_core.inference import TorchRunner, load_runner, resolve_backend
from denoise_core.losses import psnr_per_image
from denoise_core.restoration import _axis_weights, _shared_stats, _starts, _tile_length, restore_tensor
from denoise_core.training import train

BACKENDS = ["torch", "onnxruntime"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny trained checkpoint whose residual scales are then set to seeded non-zero values.

    A few CPU steps leave NAFNet's zero-initialised residual scales near 0, so every
    block would be close to the identity and tiling could hardly go wrong; with the
    scales set, every block (and its channel attention) shapes the output.
    """
    root = tmp_path_factory.mktemp("tiling")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    from PIL import Image

    for i in range(4):
        Image.fromarray(make_image(rng, 40 + 4 * i, 48)).save(root / "images" / f"{i}.png")
    train(root / "images", epochs=1, learning_rate=3e-3, val_ratio=0.3, save_path=root / "run",
          **dict(TINY, degradations=["gaussian_noise"]))
    state = load_checkpoint(root / "run" / "last.pt")
    g = torch.Generator().manual_seed(0)
    model = {k: 0.3 * torch.randn(v.shape, generator=g) if k.endswith(("beta", "gamma")) else v for k, v in state["model"].items()}
    save_checkpoint(root / "model.pt", {"model": model, "model_config": state["model_config"]})
    return root / "model.pt"


@pytest.fixture(scope="module")
def noisy_pair():
    clean = torch.from_numpy(make_image(np.random.default_rng(1), 96, 120).astype(np.float32) / 255).permute(2, 0, 1)[None]
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    return clean, noisy


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiled_restore_matches_whole_image(checkpoint, noisy_pair, backend):
    clean, noisy = noisy_pair
    run = load_runner(checkpoint, "cpu", backend)
    whole = restore_tensor(run, noisy, tile=None)
    tiled = restore_tensor(run, noisy, tile=48, overlap=16)  # 3 x 3 tiles
    assert tiled.shape == whole.shape and 0 <= tiled.min() and tiled.max() <= 1
    gap = psnr_per_image(tiled, clean).item() - psnr_per_image(whole, clean).item()
    assert abs(gap) < 0.05, gap
    assert psnr_per_image(tiled, whole).item() > 40  # close pixel by pixel, not just on average


def test_tiles_pool_the_whole_image_attention_means(checkpoint, noisy_pair):
    _, noisy = noisy_pair
    run = load_runner(checkpoint, "cpu", "torch")
    noisy = torch.cat([noisy, torch.ones_like(noisy[:, :1])], 1) if run.noise_map else noisy  # a runner takes the map
    h, w = noisy.shape[-2:]
    # The first block's attention input depends on the pixels alone, so its whole-image
    # mean is exactly defined; the tiles' weighted sums must reproduce it.
    sums = run.tile_stats(noisy, torch.ones(h), torch.ones(w))
    c0 = run.stat_layout[0][1]
    whole_mean = sums[:, :c0] / (h * w)
    tops, wys = _axis_weights(h, 40, 8)
    lefts, wxs = _axis_weights(w, 40, 8)
    tiles = [(i, j) for i in range(len(tops)) for j in range(len(lefts))]
    shared = _shared_stats(run, noisy, tiles, tops, wys, lefts, wxs, (40, 40))
    assert isinstance(shared, np.ndarray) and shared.shape == sums.shape  # the tiled restore works in NumPy
    assert torch.allclose(torch.from_numpy(shared[:, :c0]).double(), whole_mean, atol=2e-3, rtol=1e-2)
    # ...and a single tile's own mean is a different number: sharing is not a no-op here.
    own = run.tile_stats(noisy[..., :40, :40], torch.ones(40), torch.ones(40))
    assert not torch.allclose(own[:, :c0] / 1600, whole_mean, atol=2e-3, rtol=1e-2)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), tile=st.integers(8, 96), data=st.data())
def test_blend_weights_cover_every_pixel_and_sum_to_one(size, tile, data):
    overlap = data.draw(st.integers(0, tile // 2 - 1))
    tile = min(tile, size)
    starts, weights = _axis_weights(size, tile, min(overlap, max(0, tile // 2 - 1)))
    total = np.zeros(size, dtype=np.float64)
    for s, wgt in zip(starts, weights):
        assert 0 <= s and s + tile <= size and wgt.shape == (tile,) and (wgt > 0).all()
        total[s : s + tile] += wgt
    assert np.allclose(total, 1.0, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(cells=st.integers(1, 800), tile_cells=st.integers(2, 80), m=st.sampled_from([1, 4, 8, 16]), data=st.data())
def test_equal_tiles_are_no_more_and_no_bigger_and_keep_the_overlap(cells, tile_cells, m, data):
    size, tile = cells * m, tile_cells * m  # restore_tensor pads the image and rounds tile and overlap to the multiple
    overlap = data.draw(st.integers(0, (tile // 2 - 1) // m)) * m
    length = _tile_length(size, tile, overlap, m)
    assert length <= min(tile, size) and length % m == 0
    starts = _starts(size, length, length - overlap)
    assert len(starts) == len(_starts(size, min(tile, size), min(tile, size) - overlap))  # as few tiles as before
    assert starts[0] == 0 and starts[-1] + length == size and all(s % m == 0 for s in starts)
    assert all(b - a <= length - overlap for a, b in zip(starts, starts[1:]))  # every neighbour overlaps enough
    if size > tile:  # shortest: one multiple less would need another tile or lose the overlap
        shorter = length - m
        assert shorter <= overlap or len(_starts(size, shorter, shorter - overlap)) > len(starts)


def test_a_3_megapixel_photo_restores_fewer_pixels():
    h, w = (_tile_length(n, 512, 32, 8) for n in (1504, 2000))
    counts = [len(_starts(n, t, t - 32)) for n, t in ((1504, h), (2000, w))]
    assert (h, w) == (400, 432) and counts == [4, 5]  # was 4 x 5 tiles of 512 x 512: 5.2 MP for 3 MP


def test_odd_sizes_batches_and_backends_agree(checkpoint):
    x = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(3))
    outs = [restore_tensor(load_runner(checkpoint, "cpu", b), x, tile=24, overlap=6) for b in BACKENDS]
    for out in outs:
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert (outs[0] - outs[1]).abs().max() < 1e-3
    # An nn.Module works as well as a runner.
    model = load_runner(checkpoint, "cpu", "torch").model
    assert torch.allclose(restore_tensor(model, x, tile=24, overlap=6), outs[0], atol=1e-5)
    with pytest.raises(ValueError, match="overlap"):
        restore_tensor(model, x, tile=24, overlap=12)


def test_restore_keeps_type_and_tiles_any_image(checkpoint):
    arr = make_image(np.random.default_rng(2), 70, 91)
    outs = [restore_fn(arr, checkpoint, device="cpu", tile=32, overlap=8, backend=b) for b in BACKENDS]
    for out in outs:
        assert out.shape == arr.shape and out.dtype == np.uint8
    assert np.abs(outs[0].astype(int) - outs[1].astype(int)).max() <= 1


def test_backend_choice_and_fallback(checkpoint, monkeypatch, caplog):
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu) == ("bf16" if cpu_has_bf16() else "onnxruntime")  # installed here
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: False)  # a CPU without native bf16
    assert resolve_backend("auto", cpu) == "onnxruntime"
    with pytest.raises(ValueError, match="native bf16"):
        resolve_backend("bf16", cpu)
    assert resolve_backend("torch", cpu) == "torch"
    monkeypatch.setenv("DENOISE_BACKEND", "torch")
    assert resolve_backend("auto", cpu) == "torch"
    monkeypatch.delenv("DENOISE_BACKEND")
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("tensorrt", cpu)
    with pytest.raises(ValueError, match="CPU"):
        resolve_backend("onnxruntime", torch.device("cuda"))

    def broken(*args, **kwargs):
        raise RuntimeError("exporter broke")

    import denoise_core.export as export

    monkeypatch.setattr(export, "onnx_model_bytes", broken)
    monkeypatch.setenv("DENOISE_CACHE_DIR", str(checkpoint.parent / "empty-cache"))  # so the export must run
    inference._load_runner_cached.cache_clear()
    inference._fast_runner_cached.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="denoise_core.inference"):
            run = load_runner(checkpoint, "cpu", "auto")
        assert isinstance(run, TorchRunner) and "exporter broke" in caplog.text
        with pytest.raises(RuntimeError, match="exporter broke"):
            load_runner(checkpoint, "cpu", "onnxruntime")
    finally:
        inference._load_runner_cached.cache_clear()
        inference._fast_runner_cached.cache_clear()


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16")
def test_bf16_backend_is_close_to_fp32(checkpoint):
    arr = make_image(np.random.default_rng(5), 70, 91)
    fp32, bf16 = (restore_fn(arr, checkpoint, device="cpu", tile=32, overlap=8, backend=b).astype(int)
                  for b in ("torch", "bf16"))
    assert load_runner(checkpoint, "cpu", "bf16").backend == "bf16"
    # bf16 keeps 8 significant bits: about one level on 0-255 at most, and far less on average.
    assert np.abs(fp32 - bf16).max() <= 2 and np.abs(fp32 - bf16).mean() < 0.3


class _GridDeblocker:
    """A stand-in runner whose output depends on the 8-pixel JPEG grid of its own input: it dims the
    pixels on every block edge (rows and columns 8k-1 and 8k of what it is given), pointwise. A tile or
    view that meets the image off that grid dims the wrong pixels, so a tiled restore, or the mean of the
    8 flipped and rotated views, equals the whole-image result only if each of them is on the grid."""

    backend, channels, multiple, stat_layout = "test", 3, 8, []

    def __call__(self, x: np.ndarray) -> np.ndarray:  # runners are given NumPy arrays
        def edges(n: int) -> np.ndarray:
            k = np.arange(n) % 8
            return ((k == 0) | (k == 7)).astype(np.float32)

        h, w = x.shape[-2:]
        return x * (1 - 0.05 * (edges(h)[:, None] + edges(w)[None, :]))

    def tile_stats(self, x, wy, wx):  # no attention statistics to share (stat_layout is empty)
        raise AssertionError("not called for a runner without attention")

    def tile(self, x, stats):
        return self(x)


def test_tiles_and_views_keep_the_jpeg_grid_where_training_had_it():
    """A tiled restore of a width that is no multiple of 8 must not shift the last tiles off the image's
    8-pixel grid (the models restore JPEG blocks best on that grid), and the 8 views of the self-ensemble
    are taken of the padded image, so they keep it too. Checked with a grid-sensitive stand-in runner:
    the stage-6 model (shipped 2026-12-02) hardly changes JPEG input, so it could not tell."""
    x = torch.rand(1, 3, 203, 445, generator=torch.Generator().manual_seed(0))
    run = _GridDeblocker()
    whole = restore_tensor(run, x, tile=None)
    assert not torch.equal(whole, x)  # it does change the image, on the grid
    tiled = restore_tensor(run, x, tile=128, overlap=16)
    assert torch.allclose(tiled, whole, atol=1e-6), (tiled - whole).abs().max()
    # The same restore 3 px off the grid does not match: the check can fail.
    shifted = restore_tensor(run, x[..., 3:], tile=128, overlap=16)
    assert not torch.allclose(shifted, whole[..., 3:], atol=1e-3)
    ensemble = restore_tensor(run, x, tile=None, ensemble=True)
    assert ensemble.shape == x.shape and torch.allclose(ensemble, whole, atol=1e-6)  # every view on the grid

