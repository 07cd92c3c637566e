"""Synthetic degradations applied on the fly.

Every degradation is a pure function ``fn(x, severity, generator) -> y`` where
``x`` is a float tensor ``(C, H, W)`` or ``(B, C, H, W)`` in [0, 1], ``severity``
is a float in [0, 1] that sets the strength deterministically, and ``generator``
is an explicit ``torch.Generator`` that draws every random quantity (noise
realisations, angles, cast directions). The result has the same shape, dtype
and device as ``x`` and is clipped to [0, 1]. Same generator seed, same output.

For a batch, one parameter draw is shared by the whole batch; per-sample draws
are made by calling the function per sample (the dataset does this).

Each degradation's parameters as functions of severity are stated once, in `PARAMS`
(``describe(name)`` prints the ranges, ``describe(name, severity)`` the values; the
benchmark's settings are made with `severity_for`). Beyond them: ``motion_blur`` draws its
angle uniformly in [0, 180) and makes its length odd; ``color_cast`` draws a random
direction; ``mixed`` applies 2-3 of the others in the order of a camera pipeline (blur,
resize, light, noise, jpeg), in training drawn from the run's enabled degradations when at
least two others are enabled (``pool``).

Camera noise (``camera_noise``, ``camera_jpeg``) follows Brooks et al. 2019, "Unprocessing Images for Learned Raw
Denoising": the photo is unprocessed to linear raw (inverse tone curve, inverse gamma, inverse colour matrix and
white-balance gains, a random camera's matrix), mosaicked to RGGB, given shot plus read noise there (read noise tied to
shot noise as in the paper), demosaicked (kornia's bilinear `raw_to_rgb`) and processed back. Only the processed
*noise* is added to the photo, so the target stays the photo itself, colour and all. A share of samples gets
the noise coarsened (made at a lower resolution and enlarged), as in a photo resized after the noise; ``camera_jpeg``
then compresses with JPEG at a quality drawn from 30-95, as a phone or web photo is (BSRGAN's "noise then JPEG").
``channel_noise`` is Gaussian noise correlated across the three channels and, at random, slightly across pixels.
``jpeg_heavy`` is JPEG at quality 40 -> 8, the most compressed web photos, for training emphasis there.
``camera_coarse`` is camera noise as a camera's own processing leaves it in its JPEGs: a fine field and a coarse one
(made 1.5-4x smaller and enlarged) sharing the variance, then JPEG at quality 75-95. Real pairs put twice the share of
their noise power at periods above 16 px that ``camera_noise`` does (``bench/error_bands.py``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import kornia
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image

DegradationFn = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Param:
    """One parameter of a degradation as a function of severity: ``low`` at 0, ``high`` at 1, linear
    (log-linear with ``log``). The functions below read their parameters from here (`PARAMS`), and the
    benchmark's settings ask for a value (`severity_for`), so each formula is written once."""

    name: str
    low: float
    high: float
    unit: str = ""  # "/255": shown on the 0-255 scale
    log: bool = False

    def at(self, severity: float) -> float:
        if self.log:
            return 10.0 ** _lerp(math.log10(self.low), math.log10(self.high), severity)
        return _lerp(self.low, self.high, severity)

    def severity_for(self, value: float) -> float:
        if self.log:
            return (math.log10(value) - math.log10(self.low)) / (math.log10(self.high) - math.log10(self.low))
        return (value - self.low) / (self.high - self.low)

    def show(self, value: float) -> str:
        return f"{value * 255:.3g}/255" if self.unit == "/255" else f"{value:.3g}{self.unit}"


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


PARAMS: dict[str, tuple[Param, ...]] = {
    "gaussian_noise": (Param("sigma", 0.0, 50.0 / 255.0, "/255"),),
    "poisson_noise": (Param("photons at white", 1000.0, 10.0, log=True),),
    "salt_pepper": (Param("pixel fraction", 0.0, 0.2),),
    "gaussian_blur": (Param("kernel sigma", 0.3, 3.0, " px"),),
    "motion_blur": (Param("length", 3.0, 21.0, " px"),),
    "jpeg": (Param("quality", 90.0, 10.0),),
    "jpeg_heavy": (Param("quality", 40.0, 8.0),),
    "low_light": (Param("gain", 0.9, 0.15), Param("gamma", 1.0, 2.0), Param("noise sigma", 0.0, 12.0 / 255.0, "/255")),
    "overexposure": (Param("contrast", 1.0, 0.4), Param("brightness", 0.0, 0.35)),
    "color_cast": (Param("max channel gain offset", 0.0, 0.3), Param("max channel shift", 0.0, 0.1)),
    "downsample": (Param("factor", 2.0, 4.0),),
    "mixed": (Param("severity of each of 2-3 others", 0.0, 0.7),),
    "camera_noise": (Param("shot noise", 1e-4, 1.2e-2, log=True),),
    "channel_noise": (Param("sigma", 0.0, 50.0 / 255.0, "/255"),),
    "camera_jpeg": (Param("shot noise", 1e-4, 1.2e-2, log=True),),
    "camera_coarse": (Param("shot noise", 1e-4, 1.2e-2, log=True),),
}


def param(name: str, which: str, severity: float) -> float:
    """The value of degradation ``name``'s parameter ``which`` at ``severity``."""
    return next(p for p in PARAMS[name] if p.name == which).at(severity)


def severity_for(name: str, which: str, value: float) -> float:
    """The severity at which degradation ``name``'s parameter ``which`` equals ``value``."""
    severity = next(p for p in PARAMS[name] if p.name == which).severity_for(value)
    if not -1e-9 <= severity <= 1 + 1e-9:
        raise ValueError(f"{name}: {which} {value} is outside its range")
    return min(1.0, max(0.0, severity))


def describe(name: str, severity: float | None = None) -> str:
    """The parameters of ``name``: their ranges (severity 0 -> 1), or their values at ``severity``."""
    if severity is None:
        return ", ".join(f"{p.name} {p.show(p.low)} -> {p.show(p.high)}" for p in PARAMS[name])
    return ", ".join(f"{p.name} {p.show(p.at(severity))}" for p in PARAMS[name])


@dataclass(frozen=True)
class Degradation:
    """A named degradation: its function and pipeline stage; its parameters are `PARAMS` [name]."""

    name: str
    fn: DegradationFn
    stage: int  # position in a camera-like pipeline, used to order `mixed`

    @property
    def params(self) -> tuple[Param, ...]:
        return PARAMS[self.name]

    def __call__(self, x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
        return apply(self.name, x, severity, generator)


def _check(x: torch.Tensor, severity: float) -> None:
    if x.dim() not in (3, 4):
        raise ValueError(f"expected (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected a float tensor in [0, 1], got {x.dtype}")
    if not 0.0 <= float(severity) <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity}")


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * torch.rand((), generator=generator, device=generator.device).item()


def _randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # Draw on the generator's device so a CPU generator works for CUDA tensors.
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def _rand_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def gaussian_noise(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Additive white Gaussian noise, sigma 0 -> 50/255."""
    sigma = param("gaussian_noise", "sigma", severity)
    return x + sigma * _randn_like(x, generator)


def poisson_noise(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Shot noise: Poisson(x * peak) / peak, peak (photons at white) 1000 -> 10, log-linear."""
    peak = param("poisson_noise", "photons at white", severity)
    rate = (x.clamp(0, 1) * peak).to(generator.device, torch.float32)
    return (torch.poisson(rate, generator=generator) / peak).to(x.device, x.dtype)


def salt_pepper(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Impulse noise on a fraction 0.2 * severity of pixels (all channels of a pixel)."""
    amount = param("salt_pepper", "pixel fraction", severity)
    shape = (*x.shape[:-3], 1, *x.shape[-2:])
    u = torch.rand(shape, generator=generator, device=generator.device).to(x.device)
    y = x.clone()
    y = torch.where(u < amount / 2, torch.zeros_like(y), y)
    return torch.where((u >= amount / 2) & (u < amount), torch.ones_like(y), y)


def gaussian_blur_sigma(severity: float) -> float:
    """Kernel sigma used by `gaussian_blur` at a severity."""
    return param("gaussian_blur", "kernel sigma", severity)


def gaussian_blur(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Isotropic Gaussian blur, kernel sigma 0.3 -> 3.0 px."""
    sigma = gaussian_blur_sigma(severity)
    k = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(x, [k, k], [sigma, sigma])


def motion_blur(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Linear motion blur, length 3 -> 21 px at a random angle."""
    length = int(round(param("motion_blur", "length", severity)))
    length += 1 - length % 2  # kornia needs an odd kernel
    angle = _uniform(generator, 0.0, 180.0)
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    out = kornia.filters.motion_blur(batch, length, angle, 0.0, border_type="reflect")
    return out if x.dim() == 4 else out.squeeze(0)


def jpeg_quality(severity: float) -> int:
    """JPEG quality used by `jpeg` at a severity."""
    return int(round(param("jpeg", "quality", severity)))


def jpeg(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Real JPEG round trip through libjpeg (Pillow), quality 90 -> 10, 4:2:0 chroma."""
    return jpeg_at(x, jpeg_quality(severity))


def jpeg_heavy(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """`jpeg` at quality 40 -> 8: the most compressed web photos, on which `jpeg`'s even spread over 90 -> 10 spends
    one sample in eight below quality 20."""
    return jpeg_at(x, int(round(param("jpeg_heavy", "quality", severity))))


def jpeg_at(x: torch.Tensor, quality: int) -> torch.Tensor:
    """A JPEG round trip at ``quality`` (Pillow's libjpeg, 4:2:0 chroma)."""
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    if batch.shape[1] not in (1, 3):
        raise ValueError(f"jpeg needs 1 or 3 channels, got {batch.shape[1]}")
    u8 = (batch.detach().clamp(0, 1) * 255).round().to("cpu", torch.uint8).permute(0, 2, 3, 1).numpy()
    decoded = []
    for arr in u8:
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(buf, format="JPEG", quality=quality)
        out = np.asarray(Image.open(buf).convert("L" if arr.shape[2] == 1 else "RGB"))
        decoded.append(torch.from_numpy(out.copy()).reshape(arr.shape))
    out = torch.stack(decoded).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255.0
    return out if x.dim() == 4 else out.squeeze(0)


def low_light(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Under-exposure: gamma 1 -> 2, gain 0.9 -> 0.15, then sensor noise 0 -> 12/255."""
    gamma = param("low_light", "gamma", severity)
    gain = param("low_light", "gain", severity)
    sigma = param("low_light", "noise sigma", severity)
    dark = gain * x.clamp(0, 1) ** gamma
    return dark + sigma * _randn_like(x, generator)


def overexposure(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Washed-out highlights: contrast 1 -> 0.4 around mid-grey, brightness +0 -> +0.35."""
    contrast = param("overexposure", "contrast", severity)
    offset = param("overexposure", "brightness", severity)
    return (x - 0.5) * contrast + 0.5 + offset


def color_cast(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """White-balance error: random per-channel gains (+-0.3) and shifts (+-0.1) scaled by severity."""
    c = x.shape[-3]
    gains = 1.0 + param("color_cast", "max channel gain offset", severity) * (
        2 * torch.rand(c, generator=generator, device=generator.device) - 1)
    shifts = param("color_cast", "max channel shift", severity) * (2 * torch.rand(c, generator=generator, device=generator.device) - 1)
    view = (c, 1, 1)
    return x * gains.view(view).to(x) + shifts.view(view).to(x)


def downsample_factor(severity: float) -> float:
    """Scale factor used by `downsample` at a severity."""
    return param("downsample", "factor", severity)


def downsample(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Loss of resolution: antialiased bicubic down by 2 -> 4, bicubic back up."""
    factor = downsample_factor(severity)
    h, w = x.shape[-2:]
    small = [max(1, round(h / factor)), max(1, round(w / factor))]
    down = TF.resize(x, small, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return TF.resize(down, [h, w], interpolation=TF.InterpolationMode.BICUBIC, antialias=False)


# XYZ -> camera matrices of four cameras (Brooks et al. 2019, from their published code); a random convex mix of them
# plays the camera, so the colour processing the noise goes through varies from sample to sample.
_XYZ2CAMS = torch.tensor([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
], dtype=torch.float64)
_RGB2XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
COARSE_SHARE = 0.3  # share of camera-noise samples whose noise is made at a lower resolution and enlarged
COARSE_FACTOR = (1.5, 3.0)
CAMERA_JPEG_QUALITY = (30, 95)
CAMERA_COARSE_FACTOR = (1.5, 4.0)  # log-uniform
CAMERA_COARSE_SHARE = (0.2, 0.6)  # the coarse field's share of the noise variance
CAMERA_COARSE_QUALITY = (75, 95)  # a camera's own JPEG


def _camera(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random camera: (rgb -> camera matrix (3, 3), white-balance gains (3,) for R, G, B), as Brooks et al. draw them."""
    w = torch.rand(4, generator=generator, device=generator.device).double().cpu() + 1e-8
    xyz2cam = (w[:, None, None] * _XYZ2CAMS).sum(0) / w.sum()
    rgb2cam = xyz2cam @ _RGB2XYZ
    rgb2cam = rgb2cam / rgb2cam.sum(-1, keepdim=True)  # white stays white
    u = torch.rand(3, generator=generator, device=generator.device).double().cpu()
    rgb_gain = 1.0 / (0.8 + 0.1 * float(torch.randn((), generator=generator, device=generator.device)))
    red, blue = 1.9 + 0.5 * u[0], 1.5 + 0.4 * u[1]
    return rgb2cam, torch.tensor([red / rgb_gain, 1.0 / rgb_gain, blue / rgb_gain], dtype=torch.float64)


def _to_linear(x: torch.Tensor) -> torch.Tensor:
    """Inverse of the smoothstep tone curve, then of gamma 2.2."""
    x = x.clamp(0.0, 1.0)
    x = 0.5 - torch.sin(torch.asin(1.0 - 2.0 * x) / 3.0)
    return x.clamp(min=1e-8) ** 2.2


def _from_linear(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(min=1e-8) ** (1.0 / 2.2)
    x = x.clamp(0.0, 1.0)
    return 3.0 * x**2 - 2.0 * x**3


def _mosaic_mask(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(3, H, W) one-hot RGGB sampling pattern."""
    m = torch.zeros(3, h, w, device=device)
    m[0, 0::2, 0::2] = 1
    m[1, 0::2, 1::2] = 1
    m[1, 1::2, 0::2] = 1
    m[2, 1::2, 1::2] = 1
    return m


def camera_noise_field(x: torch.Tensor, shot: float, generator: torch.Generator) -> torch.Tensor:
    """The sRGB noise a camera with shot-noise level ``shot`` would add to the (B, 3, H, W) photo ``x``.

    Unprocess, mosaic, noise, demosaic, process back (module docstring); the field is the processed noisy image
    minus the processed clean one, so demosaicking and colour processing shape it but leave the photo alone.
    """
    b, _, h, w = x.shape
    dev = x.device
    ph, pw = h % 2, w % 2  # the Bayer pattern needs even sides
    xe = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    he, we = xe.shape[-2:]
    rgb2cam, gains = _camera(generator)
    cam2rgb = torch.linalg.inv(rgb2cam)
    lin = _to_linear(xe.double())
    cam = torch.einsum("ij,bjhw->bihw", rgb2cam.to(dev), lin)
    # Inverse white balance that keeps highlights from clipping (Brooks' safe_invert_gains).
    inv = (1.0 / gains).to(dev).view(1, 3, 1, 1)
    gray = cam.mean(1, keepdim=True)
    mask = ((gray - 0.9).clamp(min=0) / 0.1) ** 2
    cam = cam * torch.maximum(mask + (1 - mask) * inv, inv)
    cam = cam.clamp(0.0, 1.0)
    raw = (cam * _mosaic_mask(he, we, dev).double()).sum(1, keepdim=True)
    log_read = 2.18 * math.log(shot) + 1.2 + 0.26 * float(torch.randn((), generator=generator, device=generator.device))
    variance = raw * shot + math.exp(log_read)
    noisy = raw + variance.sqrt() * torch.randn(raw.shape, generator=generator, device=generator.device,
                                                dtype=torch.float64).to(dev)

    def process(r: torch.Tensor) -> torch.Tensor:
        rgb = kornia.color.raw_to_rgb(r.clamp(0.0, 1.0).float(), kornia.color.CFA.BG).double()  # BG: RGGB top-left
        rgb = rgb * gains.to(dev).view(1, 3, 1, 1)
        rgb = torch.einsum("ij,bjhw->bihw", cam2rgb.to(dev), rgb.clamp(0.0, 1.0))
        return _from_linear(rgb)

    field = process(noisy) - process(raw)
    return field[..., :h, :w].to(x.dtype)


def _coarse_field(x: torch.Tensor, shot: float, factor: float, generator: torch.Generator) -> torch.Tensor:
    """`camera_noise_field` of ``x`` made ``factor`` times smaller, enlarged back to ``x``'s size."""
    h, w = x.shape[-2:]
    small = [max(2, round(h / factor)), max(2, round(w / factor))]
    down = TF.resize(x, small, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return TF.resize(camera_noise_field(down.clamp(0, 1), shot, generator), [h, w],
                     interpolation=TF.InterpolationMode.BICUBIC, antialias=False)


def _camera_noise(x: torch.Tensor, severity: float, generator: torch.Generator, name: str) -> torch.Tensor:
    shot = param(name, "shot noise", severity)
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    if batch.shape[1] != 3:  # a grey photo: the camera's luma noise
        field = camera_noise_field(batch.repeat(1, 3 // batch.shape[1], 1, 1), shot, generator).mean(1, keepdim=True)
    else:
        field = None
    coarse = _uniform(generator) < COARSE_SHARE
    factor = _uniform(generator, *COARSE_FACTOR)
    if field is None:
        if coarse:  # grain enlarged with the photo: the noise of a smaller photo, resized up
            field = _coarse_field(batch, shot, factor, generator)
        else:
            field = camera_noise_field(batch, shot, generator)
    out = batch + field
    return out if x.dim() == 4 else out.squeeze(0)


def camera_noise(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Real camera noise (Brooks et al. 2019): shot noise 1e-4 -> 1.2e-2 in linear raw, read noise tied to it,
    through demosaicking and colour processing; 30 % of samples coarse-grained (made 1.5-3x smaller, enlarged)."""
    return _camera_noise(x, severity, generator, "camera_noise")


def camera_jpeg(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """`camera_noise`, then JPEG at a quality drawn uniformly from 30-95: a phone or web photo."""
    y = _camera_noise(x, severity, generator, "camera_jpeg").clamp(0, 1)
    quality = int(torch.randint(CAMERA_JPEG_QUALITY[0], CAMERA_JPEG_QUALITY[1] + 1, (), generator=generator,
                                device=generator.device).item())
    return jpeg_at(y, quality)


def camera_coarse(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Camera noise with a coarse part: ``camera_noise``'s field at full size plus one made 1.5-4x smaller and
    enlarged (the coarse share of the variance drawn from 20-60 %), then JPEG at quality 75-95, as in a camera's JPEG."""
    shot = param("camera_coarse", "shot noise", severity)
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    grey = batch.shape[1] != 3
    rgb = batch.repeat(1, 3 // batch.shape[1], 1, 1) if grey else batch
    fine = camera_noise_field(rgb, shot, generator)
    factor = math.exp(_uniform(generator, *(math.log(f) for f in CAMERA_COARSE_FACTOR)))
    coarse = _coarse_field(rgb, shot, factor, generator)
    # Enlarging smooths the small field: scaled to the fine field's spread, then mixed by sqrt(share), the sum keeps
    # camera_noise's noise level at the same severity.
    coarse = coarse * (fine.std() / coarse.std().clamp(min=1e-12))
    share = _uniform(generator, *CAMERA_COARSE_SHARE)
    field = math.sqrt(1 - share) * fine + math.sqrt(share) * coarse
    if grey:
        field = field.mean(1, keepdim=True)
    quality = int(torch.randint(CAMERA_COARSE_QUALITY[0], CAMERA_COARSE_QUALITY[1] + 1, (), generator=generator,
                                device=generator.device).item())
    out = jpeg_at((batch + field).clamp(0, 1), quality)
    return out if x.dim() == 4 else out.squeeze(0)


def channel_noise(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise with sigma 0 -> 50/255 correlated across channels (correlation 0.2-0.9, per-channel scales
    0.6-1.4), half the time also across pixels (a blur of 0.5-1.2 px, the variance kept)."""
    sigma = param("channel_noise", "sigma", severity)
    c = x.shape[-3]
    rho = _uniform(generator, 0.2, 0.9)
    scales = 0.6 + 0.8 * torch.rand(c, generator=generator, device=generator.device).double().cpu()
    cov = (rho * torch.ones(c, c, dtype=torch.float64) + (1 - rho) * torch.eye(c, dtype=torch.float64))
    cov = cov * scales[:, None] * scales[None, :] / (scales**2).mean()
    chol = torch.linalg.cholesky(cov).to(x.device, x.dtype)
    z = _randn_like(x, generator)
    spatial = _uniform(generator) < 0.5
    blur = _uniform(generator, 0.5, 1.2)
    if spatial:
        k = 2 * math.ceil(2.5 * blur) + 1
        zb = TF.gaussian_blur(z, [k, k], [blur, blur])
        z = zb / zb.flatten(-2).std(-1).clamp(min=1e-6)[..., None, None]
    n = torch.einsum("ij,...jhw->...ihw", chol, z)
    return x + sigma * n



def mixed(x: torch.Tensor, severity: float, generator: torch.Generator, pool: list[str] | None = None) -> torch.Tensor:
    """Two or three distinct other degradations, pipeline-ordered, each at 0.7 x severity.

    ``pool`` limits the choice (a run that leaves out e.g. the tone changes leaves them out
    of its mixtures too); None or fewer than two names: `MIXED_DEFAULT`.
    """
    names = [n for n in (pool or MIXED_DEFAULT) if n != "mixed"]
    if len(names) < 2:
        names = list(MIXED_DEFAULT)
    count = 2 + int(torch.randint(0, 2, (), generator=generator, device=generator.device).item())
    picks = torch.randperm(len(names), generator=generator, device=generator.device)[:count].tolist()
    chosen = sorted((names[i] for i in picks), key=lambda n: REGISTRY[n].stage)
    y = x
    for name in chosen:
        y = apply(name, y, param("mixed", "severity of each of 2-3 others", severity), generator)
    return y


REGISTRY: dict[str, Degradation] = {
    d.name: d
    for d in [
        Degradation("gaussian_noise", gaussian_noise, 4),
        Degradation("poisson_noise", poisson_noise, 4),
        Degradation("salt_pepper", salt_pepper, 4),
        Degradation("gaussian_blur", gaussian_blur, 0),
        Degradation("motion_blur", motion_blur, 0),
        Degradation("jpeg", jpeg, 5),
        Degradation("jpeg_heavy", jpeg_heavy, 5),
        Degradation("low_light", low_light, 2),
        Degradation("overexposure", overexposure, 2),
        Degradation("color_cast", color_cast, 3),
        Degradation("downsample", downsample, 1),
        Degradation("camera_noise", camera_noise, 4),
        Degradation("channel_noise", channel_noise, 4),
        Degradation("camera_jpeg", camera_jpeg, 5),
        Degradation("camera_coarse", camera_coarse, 5),
        Degradation("mixed", mixed, 6),
    ]
}

NAMES: tuple[str, ...] = tuple(REGISTRY)
# What `mixed` draws from without a pool (the benchmark's "mixed" setting): the degradations it had before
# `jpeg_heavy` and `camera_coarse`, fixed so that a new degradation does not change the benchmark's inputs.
MIXED_DEFAULT: tuple[str, ...] = tuple(n for n in NAMES if n not in ("mixed", "jpeg_heavy", "camera_coarse"))


def apply(name: str, x: torch.Tensor, severity: float, generator: torch.Generator, pool: list[str] | None = None) -> torch.Tensor:
    """Apply the degradation ``name``; returns a tensor shaped like ``x`` in [0, 1].

    ``pool`` (the enabled degradations) is used by ``mixed`` only.
    """
    if name not in REGISTRY:
        raise KeyError(f"unknown degradation {name!r}; known: {', '.join(NAMES)}")
    _check(x, severity)
    if name == "mixed":
        unknown = [n for n in pool or () if n not in REGISTRY]
        if unknown:
            raise KeyError(f"unknown degradation(s) {unknown} in the mixed pool")
        return mixed(x, float(severity), generator, pool).clamp(0.0, 1.0)
    return REGISTRY[name].fn(x, float(severity), generator).clamp(0.0, 1.0)


def validate_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """Return ``names`` as a list, raising a clear error for unknown or empty selections."""
    names = list(names)
    if not names:
        raise ValueError("enable at least one degradation")
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown degradation(s) {unknown}; known: {', '.join(NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate degradation names in {names}")
    return names
