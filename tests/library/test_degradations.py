import pytest
import torch

from denoise_core import degradations
from denoise_core.losses import psnr_per_image

NAMES = degradations.NAMES


def clean_image(shape=(3, 37, 31)) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    base = torch.rand(shape[0], 5, 5, generator=g)
    img = torch.nn.functional.interpolate(base[None], size=shape[1:], mode="bilinear", align_corners=False)[0]
    return (0.15 + 0.7 * img).clamp(0, 1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3, 37, 31), (2, 3, 16, 20), (1, 33, 29)])
def test_shape_range_dtype(name, shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    y = degradations.apply(name, x, 0.8, torch.Generator().manual_seed(3))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name):
    x = clean_image()
    a = degradations.apply(name, x, 0.6, torch.Generator().manual_seed(42))
    b = degradations.apply(name, x, 0.6, torch.Generator().manual_seed(42))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("overexposure", "gaussian_blur", "downsample", "jpeg", "jpeg_heavy", "low_light")])
def test_different_seed_differs(name):
    x = clean_image((3, 64, 64))
    a = degradations.apply(name, x, 0.8, torch.Generator().manual_seed(1))
    b = degradations.apply(name, x, 0.8, torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_really_degrades_at_full_severity(name):
    x = clean_image((3, 64, 64))
    # A textured image, so blur and resampling have detail to destroy.
    x = (x + 0.2 * torch.sin(torch.arange(64.0) * 1.3)[None, None, :] * torch.cos(torch.arange(64.0) * 0.9)[None, :, None]).clamp(0, 1)
    y = degradations.apply(name, x, 1.0, torch.Generator().manual_seed(0))
    psnr = psnr_per_image(y[None], x[None]).item()
    assert psnr < 30.0, f"{name} at severity 1 leaves PSNR {psnr:.1f} dB"


@pytest.mark.parametrize("name", ["gaussian_noise", "poisson_noise", "salt_pepper", "gaussian_blur", "jpeg", "downsample"])
def test_severity_is_monotone(name):
    x = clean_image((3, 64, 64))
    psnrs = [psnr_per_image(degradations.apply(name, x, s, torch.Generator().manual_seed(0))[None], x[None]).item() for s in (0.2, 1.0)]
    assert psnrs[0] > psnrs[1]


def test_gaussian_sigma_matches_documented_range():
    x = torch.full((3, 128, 128), 0.5)
    y = degradations.apply("gaussian_noise", x, 1.0, torch.Generator().manual_seed(0))
    assert abs((y - x).std().item() - 50 / 255) < 0.01
    assert degradations.jpeg_quality(0.0) == 90 and degradations.jpeg_quality(1.0) == 10


def test_errors_are_clear():
    x = torch.rand(3, 8, 8)
    with pytest.raises(KeyError, match="unknown degradation"):
        degradations.apply("nope", x, 0.5, torch.Generator())
    with pytest.raises(ValueError, match="severity"):
        degradations.apply("jpeg", x, 1.5, torch.Generator())
    with pytest.raises(ValueError, match="at least one"):
        degradations.validate_names([])


def test_mixed_draws_only_from_its_pool():
    # blur and downsample use no randomness, so with that pool `mixed` is exactly the two, pipeline-ordered
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    pool = ["downsample", "gaussian_blur", "mixed"]
    for seed in range(4):
        y = degradations.apply("mixed", x, 0.8, torch.Generator().manual_seed(seed), pool=pool)
        g = torch.Generator()
        expected = degradations.apply("downsample", degradations.apply("gaussian_blur", x, 0.56, g), 0.56, g)
        torch.testing.assert_close(y, expected)
    # a pool with fewer than two others falls back to every degradation
    many = {degradations.apply("mixed", x, 0.8, torch.Generator().manual_seed(s), pool=["jpeg", "mixed"]).sum().item()
            for s in range(6)}
    assert len(many) > 1
    with pytest.raises(KeyError, match="mixed pool"):
        degradations.apply("mixed", x, 0.5, torch.Generator(), pool=["jpeg", "nope"])


def test_mixed_without_a_pool_keeps_the_benchmarks_inputs_when_a_degradation_is_added():
    # the benchmark's "mixed" setting draws without a pool: from the degradations it had before jpeg_heavy
    for later in ("jpeg_heavy", "camera_coarse"):
        assert later in degradations.NAMES and later not in degradations.MIXED_DEFAULT
    assert degradations.MIXED_DEFAULT == tuple(n for n in degradations.NAMES
                                               if n not in ("mixed", "jpeg_heavy", "camera_coarse"))
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    for seed in range(3):
        torch.testing.assert_close(degradations.apply("mixed", x, 0.5, torch.Generator().manual_seed(seed)),
                                   degradations.apply("mixed", x, 0.5, torch.Generator().manual_seed(seed),
                                                      pool=list(degradations.MIXED_DEFAULT)))


def test_jpeg_heavy_is_jpeg_at_quality_40_to_8():
    x = clean_image((3, 64, 64))
    for severity, quality in ((0.0, 40), (1.0, 8), (0.9375, 10)):
        torch.testing.assert_close(degradations.apply("jpeg_heavy", x, severity, torch.Generator()),
                                   degradations.jpeg_at(x, quality))


def test_training_crops_mix_only_enabled_degradations():
    from denoise_core.data import TrainCrops, random_crop

    img = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(2))
    crops = TrainCrops([img], ["gaussian_blur", "downsample", "mixed"], 24)
    degraded, clean, idx = crops[(0, 2, 123)]
    # the severity is drawn per sample; recover it the way the dataset does and compare exactly
    g = torch.Generator().manual_seed(123)
    random_crop(img, 24, g)
    s = 0.7 * float(torch.rand((), generator=g))
    expected = degradations.apply("downsample", degradations.apply("gaussian_blur", clean, s, g), s, g)
    assert idx == 2
    torch.testing.assert_close(degraded, expected)


def test_parameters_are_stated_once_and_invert():
    """Every degradation's parameters live in PARAMS; severity_for inverts them (the benchmark builds on it)."""
    from denoise_core import bench

    assert set(degradations.PARAMS) == set(degradations.NAMES)
    for name in degradations.NAMES:
        assert degradations.REGISTRY[name].params == degradations.PARAMS[name]
        assert " -> " in degradations.describe(name)
        for p in degradations.PARAMS[name]:
            for s in (0.0, 0.3, 1.0):
                assert degradations.severity_for(name, p.name, p.at(s)) == pytest.approx(s, abs=1e-12)
    with pytest.raises(ValueError, match="outside its range"):
        degradations.severity_for("jpeg", "quality", 95)
    # The benchmark's settings are described from the same parameters.
    assert bench.SETTINGS["gaussian_25"].meaning == "gaussian_noise: sigma 25/255"
    assert "photons at white 100" in bench.SETTINGS["poisson"].meaning
    assert degradations.param("gaussian_blur", "kernel sigma", bench.SETTINGS["gaussian_blur"].steps[0][1]) == pytest.approx(1.6)


def _field(name: str, x: torch.Tensor, severity: float, seed: int = 0) -> torch.Tensor:
    return degradations.apply(name, x, severity, torch.Generator().manual_seed(seed)) - x


def _lag1(n: torch.Tensor) -> float:
    """Correlation of horizontally neighbouring values of a (C, H, W) field."""
    a, b = n[..., :, :-1].flatten(), n[..., :, 1:].flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_camera_noise_is_correlated_across_pixels_and_channels_and_depends_on_the_signal():
    # A photo with a near-black half and a bright half.
    x = torch.full((3, 128, 128), 0.03)
    x[:, :, 64:] = 0.7
    n = torch.stack([_field("camera_noise", x, 0.7, seed) for seed in range(6)])
    assert _lag1(n.flatten(0, 1)) > 0.2  # demosaicking spreads each raw value over its neighbours
    white = torch.stack([_field("gaussian_noise", x, 0.3, s) for s in range(6)])
    assert abs(_lag1(white.flatten(0, 1))) < 0.05
    corr = torch.corrcoef(n.permute(1, 0, 2, 3).reshape(3, -1))
    assert corr[0, 1].abs() > 0.1 and corr[1, 2].abs() > 0.1  # the colour matrix mixes the channels
    # Shot noise in raw: near black the photo is far less noisy than where it is bright.
    dark, bright = n[..., :, 8:56].std().item(), n[..., :, 72:120].std().item()
    assert dark < 0.7 * bright
    assert abs(n.mean().item()) < 0.01  # noise, not a shift of tone


def test_camera_noise_grows_with_severity_and_some_grain_is_coarse():
    x = torch.full((3, 96, 96), 0.45)
    weak, strong = (torch.stack([_field("camera_noise", x, s, seed) for seed in range(4)]).std().item() for s in (0.2, 0.9))
    assert strong > 3 * weak
    lags = torch.tensor([_lag1(_field("camera_noise", x, 0.7, seed)) for seed in range(40)])
    assert (lags > 0.75).any() and (lags < 0.6).any()  # some samples coarse-grained (made smaller, enlarged), most not


def test_channel_noise_is_correlated_across_channels_and_keeps_its_sigma():
    x = torch.full((3, 128, 128), 0.5)
    n = torch.stack([_field("channel_noise", x, 0.5, seed) for seed in range(8)])
    rgb = n.permute(1, 0, 2, 3).reshape(3, -1)
    assert torch.corrcoef(rgb)[0, 2] > 0.15
    assert n.std().item() == pytest.approx(25 / 255, rel=0.15)


def test_camera_jpeg_is_a_jpeg_of_camera_noise():
    x = clean_image((3, 64, 64))
    y = degradations.apply("camera_jpeg", x, 0.6, torch.Generator().manual_seed(0))
    assert torch.equal((y * 255).round(), y * 255)  # decoded 8-bit values
    assert not torch.equal(y, degradations.apply("camera_noise", x, 0.6, torch.Generator().manual_seed(0)))


def _long_period_share(n: torch.Tensor, period: float = 16.0) -> float:
    """Share of a (C, H, W) field's power (mean left out) at periods above ``period`` pixels."""
    n = n - n.mean((-2, -1), keepdim=True)
    power = torch.fft.fft2(n.double()).abs().pow(2).sum(0)
    h, w = n.shape[-2:]
    f = torch.hypot(*torch.meshgrid(torch.fft.fftfreq(h), torch.fft.fftfreq(w), indexing="ij"))
    return float(power[f <= 1 / period].sum() / power.sum())


def test_camera_coarse_is_coarser_camera_noise_through_a_cameras_jpeg():
    x = torch.full((3, 128, 128), 0.45)
    x[:, :, 64:] = 0.6
    fine = [_long_period_share(_field("camera_noise", x, 0.8, seed)) for seed in range(8)]
    coarse = [_long_period_share(_field("camera_coarse", x, 0.8, seed)) for seed in range(8)]
    assert sum(coarse) / 8 > 2 * sum(fine) / 8  # a coarse part in every sample, not in 30 % of them
    y = degradations.apply("camera_coarse", x, 0.8, torch.Generator().manual_seed(0))
    assert torch.equal((y * 255).round(), y * 255)  # decoded 8-bit values
    weak, strong = (torch.stack([_field("camera_coarse", x, s, seed) for seed in range(4)]).std().item() for s in (0.2, 0.9))
    assert strong > 3 * weak
    grey = degradations.apply("camera_coarse", x[:1], 0.8, torch.Generator().manual_seed(0))
    assert grey.shape == (1, 128, 128) and 0.01 < (grey - x[:1]).std().item() < 0.2
