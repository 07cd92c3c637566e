import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from denoise_core.data import (
    DatasetError, EpochSampler, KeyBatchSampler, KeyedDataset, TrainCrops, find_images, half_scale, load_images,
    make_validation_set, saturate, split_indices,
)
from denoise_core.sampler import AdaptiveSampler

NAMES = ["gaussian_noise", "jpeg", "motion_blur"]


def test_find_images_recursive_and_errors(image_dir, tmp_path):
    (image_dir / "notes.txt").write_text("not an image")
    files = find_images(image_dir)
    assert len(files) == 6 and all(f.suffix in (".png", ".jpg") for f in files)
    with pytest.raises(DatasetError, match="does not exist"):
        find_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        find_images(tmp_path / "empty")


def test_odd_images_are_converted_and_corrupt_ones_skipped(tmp_path, caplog):
    rng = np.random.default_rng(0)
    rgb = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    Image.fromarray((rng.random((20, 30)) * 65535).astype(np.uint16)).save(tmp_path / "gray16.png")
    Image.fromarray(rgb).convert("LA").save(tmp_path / "la.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "truncated.jpg").write_bytes((tmp_path / "rotated.jpg").read_bytes()[:200])
    images, kept, skipped = load_images(find_images(tmp_path))
    assert {p.name for p in skipped} == {"broken.png", "truncated.jpg"}
    assert "skipped 2 unreadable" in caplog.text
    assert all(im.dtype == torch.uint8 and im.shape[0] == 3 for im in images)
    by_name = dict(zip((p.name for p in kept), images))
    assert by_name["rotated.jpg"].shape[1:] == (30, 20)  # EXIF orientation applied
    assert by_name["gray16.png"].float().std() > 10  # 16-bit values scaled, not clipped to white


def test_split_is_seeded_disjoint_and_nonempty():
    tr, va = split_indices(10, 0.15, seed=3)
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == 10 and len(va) >= 1
    assert (tr, va) == split_indices(10, 0.15, seed=3)
    assert split_indices(2, 0.01, 0) [1] and split_indices(2, 0.99, 0)[0]
    with pytest.raises(DatasetError, match="at least 2"):
        split_indices(1, 0.5, 0)
    with pytest.raises(DatasetError, match="val_ratio"):
        split_indices(5, 0.0, 0)


def _loader(images, workers, seed=0):
    sampler = AdaptiveSampler(NAMES)
    keys = EpochSampler(len(images), 16, sampler, seed=seed, batch_size=4)
    return DataLoader(KeyedDataset(TrainCrops(images, NAMES, 16)), batch_sampler=KeyBatchSampler(keys, 4), num_workers=workers)


def test_training_batches_deterministic_across_worker_counts(image_dir):
    images, _, _ = load_images(find_images(image_dir))
    a = list(_loader(images, 0))
    b = list(_loader(images, 2))
    assert len(a) == 4
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b):
        assert xa.shape == (4, 3, 16, 16) and xa.min() >= 0 and xa.max() <= 1
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)
    c = list(_loader(images, 0, seed=1))
    assert not torch.equal(a[0][1], c[0][1])


def test_distributed_shards_partition_the_epoch():
    sampler = AdaptiveSampler(NAMES)
    full = list(EpochSampler(5, 8, sampler, seed=0, batch_size=2))
    r0 = list(EpochSampler(5, 8, sampler, seed=0, batch_size=2, rank=0, world_size=2))
    r1 = list(EpochSampler(5, 8, sampler, seed=0, batch_size=2, rank=1, world_size=2))
    assert sorted(r0 + r1) == sorted(full) and not set(r0) & set(r1)


def test_validation_set_is_fixed_and_covers_every_degradation(image_dir):
    images, _, _ = load_images(find_images(image_dir))
    a = make_validation_set(images[:2], NAMES, 20, seed=0, max_crops=12)
    b = make_validation_set(images[:2], NAMES, 20, seed=0, max_crops=12)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert set(a[2].tolist()) == {0, 1, 2} and len(a[2]) == 12
    small = make_validation_set(images[:2], NAMES, 20, seed=0, max_crops=1)
    assert set(small[2].tolist()) == {0, 1, 2}  # the cap never drops a degradation


def test_sensor_noise_is_faint_seeded_and_off_by_default():
    from denoise_core.data import add_sensor_noise

    x = torch.full((3, 64, 64), 0.5)
    g = torch.Generator().manual_seed(3)
    before = g.get_state()
    assert add_sensor_noise(x, 0.0, g) is x
    assert torch.equal(g.get_state(), before)  # off draws nothing, so older runs replay exactly
    stds = [(add_sensor_noise(x, 3.0, torch.Generator().manual_seed(s)) - x).std().item() for s in range(20)]
    assert max(stds) <= 3.2 / 255 and min(stds) < 1.5 / 255 < max(stds)
    torch.testing.assert_close(add_sensor_noise(x, 3.0, torch.Generator().manual_seed(5)),
                               add_sensor_noise(x, 3.0, torch.Generator().manual_seed(5)))


def test_validation_set_with_sensor_noise_differs_only_by_faint_noise(image_dir):
    images, _, _ = load_images(find_images(image_dir))
    plain = make_validation_set(images[:2], ["gaussian_blur"], 20, seed=0, max_crops=4)
    noisy = make_validation_set(images[:2], ["gaussian_blur"], 20, seed=0, max_crops=4, sensor_noise=3.0)
    torch.testing.assert_close(noisy[1], plain[1])
    diff = (noisy[0] - plain[0]).abs()
    assert 0 < diff.max().item() <= 4 * 3 / 255 + 1e-6


def _chroma(x: torch.Tensor) -> float:
    """Mean absolute difference of an RGB crop's channels from its mean over channels."""
    return (x - x.mean(0, keepdim=True)).abs().mean().item()


def test_half_scale_halves_and_keeps_dtype_and_colour():
    img = torch.randint(0, 256, (3, 40, 30), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    half = half_scale(img)
    assert half.shape == (3, 20, 15) and half.dtype == torch.uint8
    assert torch.allclose(half.float().mean((1, 2)), img.float().mean((1, 2)), atol=1.0)
    flat = torch.full((3, 16, 16), 0.25)
    torch.testing.assert_close(half_scale(flat), torch.full((3, 8, 8), 0.25))


def test_saturate_scales_colour_around_luma():
    g = torch.Generator().manual_seed(1)
    x = 0.3 + 0.4 * torch.rand(3, 16, 16, generator=g)  # mid-range: x 1.5 does not clip
    y = saturate(x, 1.5)
    luma = lambda t: 0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]  # noqa: E731
    torch.testing.assert_close(luma(y), luma(x))  # brightness kept
    torch.testing.assert_close(y - luma(y), 1.5 * (x - luma(x)))  # colour scaled
    assert saturate(x, 1.0) is x
    gray = torch.full((3, 8, 8), 0.4)
    torch.testing.assert_close(saturate(gray, 2.0), gray)  # no colour, nothing to scale
    assert saturate(torch.rand(1, 8, 8), 2.0).shape == (1, 8, 8)  # grayscale crops pass through
    assert 0.0 <= saturate(torch.rand(3, 8, 8, generator=g), 2.0).min() and saturate(torch.rand(3, 8, 8), 2.0).max() <= 1.0


def test_colour_rich_crops_are_seeded_richer_and_off_changes_nothing(image_dir):
    images, _, _ = load_images(find_images(image_dir))
    plain = TrainCrops(images, NAMES, 16)
    off = TrainCrops(images, NAMES, 16, rich_colour=0.0)
    rich = TrainCrops(images, NAMES, 16, rich_colour=1.0)
    keys = [(i % len(images), 0, 100 + i) for i in range(24)]
    for k in keys[:4]:  # off: the very samples of a run without the option
        assert all(torch.equal(a, b) for a, b in zip(plain[k][:2], off[k][:2]))
    a, b = rich[keys[0]], rich[keys[0]]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # the key decides everything
    assert np.mean([_chroma(rich[k][1]) for k in keys]) > 1.2 * np.mean([_chroma(plain[k][1]) for k in keys])
    some = TrainCrops(images, NAMES, 16, rich_colour=0.5)
    some.halves = [torch.zeros_like(h) for h in some.halves]  # black halves: a colour-rich crop comes out black
    black = [some[(i % len(images), 0, i)][1].max().item() == 0 for i in range(200)]
    assert 70 <= sum(black) <= 130  # about half the crops


def test_validation_set_with_colour_rich_crops_changes_every_other_image(image_dir):
    images, _, _ = load_images(find_images(image_dir))
    plain = make_validation_set(images[:2], ["gaussian_noise"], 8, seed=0, max_crops=4)
    rich = make_validation_set(images[:2], ["gaussian_noise"], 8, seed=0, max_crops=4, rich_colour=True)
    assert torch.equal(rich[1][:2], plain[1][:2])  # the first image's two crops: as they were
    assert not torch.equal(rich[1][2:], plain[1][2:])  # the second image's: halved and saturated
    assert torch.equal(rich[1], make_validation_set(images[:2], ["gaussian_noise"], 8, seed=0, max_crops=4,
                                                    rich_colour=True)[1])
