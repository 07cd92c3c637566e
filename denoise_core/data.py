"""Training and validation data: image discovery, split, degraded crops.

All randomness of a training sample (which image, where to crop, which flips,
which degradation at which severity, the noise itself) comes from a key
``(image index, degradation index, seed)`` drawn in the main process by
`EpochSampler`. Workers therefore need no RNG state of their own, results do
not depend on ``num_workers``, and degradation draws always use the sampler's
current weights, even with persistent workers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from . import degradations, noise_level
from .images import IMAGE_EXTENSIONS, ImageError, load_rgb_uint8
from .sampler import AdaptiveSampler

log = logging.getLogger(__name__)

VAL_SEVERITIES = (0.3, 0.7)
VAL_RICH_SATURATION = 1.5

# (image index, degradation index, seed[, patch size]); degradation index CLEAN: left undegraded.
SampleKey = tuple[int, ...]
CLEAN = -1


class DatasetError(ValueError):
    """The image folder cannot be used for training; the message says why."""


def find_images(root: str | Path) -> list[Path]:
    """Image files under ``root`` (recursive, sorted); errors if missing or empty."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DatasetError(f"no images ({exts}) found in {root}")
    return files


def load_images(paths: list[Path], channels: int = 3) -> tuple[list[torch.Tensor], list[Path], list[Path]]:
    """Decode ``paths`` to uint8 tensors (C, H, W); returns (images, kept paths, skipped paths).

    Unreadable files are skipped with one warning that lists them.
    """
    images, kept, skipped = [], [], []
    for path in paths:
        try:
            img = load_rgb_uint8(path)
        except ImageError as exc:
            skipped.append(path)
            log.debug("skipping %s: %s", path, exc)
            continue
        if channels == 1:
            img = rgb_to_gray(img.float()).round().to(torch.uint8)
        images.append(img)
        kept.append(path)
    if skipped:
        log.warning("skipped %d unreadable image file(s): %s", len(skipped), ", ".join(str(p) for p in skipped))
    if not images:
        raise DatasetError(f"none of the {len(paths)} image file(s) could be read")
    return images, kept, skipped


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma of (..., 3, H, W) -> (..., 1, H, W)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(-3, keepdim=True)


def split_indices(n: int, val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of ``n`` images into (train, val) index lists, at least one on each side."""
    if not 0.0 < val_ratio < 1.0:
        raise DatasetError(f"val_ratio must be between 0 and 1 (exclusive), got {val_ratio}")
    if n < 2:
        raise DatasetError(f"need at least 2 readable images to split into training and validation, found {n}")
    n_val = min(n - 1, max(1, round(n * val_ratio)))
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g).tolist()
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def _fit(img: torch.Tensor, size: int) -> torch.Tensor:
    """Pad an image so both sides are at least ``size`` (reflect where possible)."""
    h, w = img.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if not (ph or pw):
        return img
    mode = "reflect" if ph < h and pw < w else "replicate"
    return torch.nn.functional.pad(img.float().unsqueeze(0), (0, pw, 0, ph), mode=mode).squeeze(0)


def random_crop(img: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """A random ``size`` x ``size`` crop with random flips and 90-degree rotation, float in [0, 1]."""
    scale = 255.0 if img.dtype == torch.uint8 else 1.0
    img = _fit(img, size)
    h, w = img.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (), generator=g))
    left = int(torch.randint(0, w - size + 1, (), generator=g))
    crop = img[:, top : top + size, left : left + size].float()
    flips = torch.randint(0, 2, (3,), generator=g).tolist()
    if flips[0]:
        crop = crop.flip(-1)
    if flips[1]:
        crop = crop.flip(-2)
    if flips[2]:
        crop = crop.transpose(-1, -2)
    return (crop / scale).contiguous()


# Colour-rich crops. CBSD432's photos are JPEGs with 4:2:0 chroma: their colour has a sixteenth of the fine detail
# of a lossless colour photo's (McMaster: chroma/luma energy at the finest Haar scale 0.014 against 0.228), so a model
# trained on them alone learns that fine colour detail is noise and smooths it away. Halving a photo (antialiased)
# gives each pixel its own chroma sample (0.054; `bench/colour_detail.py`), and a saturation gain g multiplies the
# colour detail's energy by g² (up to 4 at RICH_SATURATION).
RICH_SATURATION = 2.0


def half_scale(img: torch.Tensor) -> torch.Tensor:
    """A (C, H, W) image halved with antialiasing, in its own dtype (uint8 stays uint8)."""
    x = img.float()[None]
    y = torch.nn.functional.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)[0]
    return y.round().clamp(0, 255).to(img.dtype) if img.dtype == torch.uint8 else y


def saturate(x: torch.Tensor, gain: float) -> torch.Tensor:
    """An RGB crop in [0, 1] with its colour (the difference from its BT.601 luma) times ``gain``, clipped to [0, 1];
    grayscale crops are returned as they are."""
    if x.shape[0] != 3 or gain == 1.0:
        return x
    luma = rgb_to_gray(x)
    return (luma + gain * (x - luma)).clamp(0.0, 1.0)


def add_sensor_noise(x: torch.Tensor, max_sigma: float, g: torch.Generator) -> torch.Tensor:
    """Faint Gaussian noise, sigma uniform in [0, max_sigma] (0-255 scale), on top of any degradation.

    Real photos carry some sensor noise whatever else went wrong; without it, faint noise only
    ever comes with `low_light` in training, and the model learns to brighten every image that
    has a little noise. ``max_sigma`` 0 returns ``x`` and draws nothing from ``g``.
    """
    if max_sigma <= 0:
        return x
    sigma = max_sigma * float(torch.rand((), generator=g))
    return degradations.apply("gaussian_noise", x, sigma / 50.0, g)


LEVEL_JITTER = 0.15  # log-normal spread of the level told in training, so a level a little off still restores well
# Under-told samples: a share of pure-noise samples is told u x the level, u uniform below FULL_REMOVAL, with a target
# that keeps 1 - u / FULL_REMOVAL of the noise; so a user who asks for less gets less (grain kept).
UNDER_SHARE, FULL_REMOVAL = 0.15, 0.6
PURE_NOISE = ("gaussian_noise", "poisson_noise", "camera_noise", "channel_noise")  # residual = noise: partial targets apply


def training_level(degraded: torch.Tensor, g: torch.Generator | None, estimate: float | None = None) -> float:
    """The noise level a noise-map model is told for a training sample (0-1 scale): what
    `denoise_core.noise_level.estimate` reads on the degraded crop, as a restore reads it on a photo, times a
    log-normal jitter drawn from ``g`` (none without ``g``).

    The estimate, not the true level: told in training what "auto" tells it on a photo, the model loses nothing to
    the estimator's errors (texture read as noise, correlated noise read low; measured: told the true level instead,
    Gaussian noise lost about 0.3 dB under auto). The user's control comes from the under-told samples (`TrainCrops`).
    """
    level = noise_level.estimate(degraded.numpy()) if estimate is None else estimate
    jitter = math.exp(LEVEL_JITTER * float(torch.randn((), generator=g))) if g is not None else 1.0
    return min(noise_level.MAX_LEVEL, level * jitter)


def with_level(x: torch.Tensor, level: float) -> torch.Tensor:
    """(C, H, W) crop -> (C + 1, H, W), its noise map at ``level`` (0-1 scale) appended."""
    return torch.cat([x, torch.from_numpy(noise_level.noise_map([level], *x.shape[-2:])[0])])


class TrainCrops(Dataset):
    """Degraded training crops addressed by `SampleKey`; returns (degraded, clean, degradation index).

    With ``noise_map`` the degraded crop carries its noise map as one more channel (`training_level`); a share
    `UNDER_SHARE` of pure-noise samples is told less and keeps part of its noise in the target. A share
    ``rich_colour`` of the crops is colour-rich: cut from the image halved (`half_scale`) and saturated by a gain
    uniform in [1, `RICH_SATURATION`] (`saturate`); 0 draws nothing more, so samples stay what they were without it.
    """

    def __init__(self, images: list[torch.Tensor], names: list[str], patch_size: int, sensor_noise: float = 0.0,
                 noise_map: bool = False, rich_colour: float = 0.0) -> None:
        self.images = images
        self.names = degradations.validate_names(names)
        self.patch_size = patch_size
        self.sensor_noise = sensor_noise
        self.noise_map = noise_map
        self.rich_colour = rich_colour
        self.halves = [half_scale(im) for im in images] if rich_colour > 0 else []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y, idx = self._sample(key)
        if not self.noise_map:
            return x, y, idx
        # Its own generator: the sample itself stays what it is without a map.
        g = torch.Generator().manual_seed(int(key[2]) ^ 0x5EED)
        estimate = noise_level.estimate(x.numpy())
        level = training_level(x, g, estimate)
        if idx != CLEAN and self.names[idx] in PURE_NOISE and float(torch.rand((), generator=g)) < UNDER_SHARE:
            u = FULL_REMOVAL * float(torch.rand((), generator=g))
            level = u * estimate  # exactly u of the estimate, no jitter
            y = y + (1.0 - u / FULL_REMOVAL) * (x - y)  # remove only that share of the noise
        return with_level(x, level), y, idx

    def _sample(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor, int]:
        image_idx, deg_idx, seed, *patch = key
        g = torch.Generator().manual_seed(int(seed))
        size = patch[0] if patch else self.patch_size
        if self.rich_colour > 0 and float(torch.rand((), generator=g)) < self.rich_colour:
            gain = 1.0 + (RICH_SATURATION - 1.0) * float(torch.rand((), generator=g))
            clean = saturate(random_crop(self.halves[image_idx], size, g), gain)
        else:
            clean = random_crop(self.images[image_idx], size, g)
        if deg_idx == CLEAN:
            # An undegraded photo, faint sensor grain and all, whose target is itself: the model
            # learns to leave a photo that needs nothing alone, grain included.
            x = add_sensor_noise(clean, self.sensor_noise, g)
            return x, x.clone(), CLEAN
        severity = float(torch.rand((), generator=g))
        degraded = degradations.apply(self.names[deg_idx], clean, severity, g, pool=self.names)
        return add_sensor_noise(degraded, self.sensor_noise, g), clean, deg_idx


class EpochSampler(Sampler[SampleKey]):
    """Yields this rank's sample keys for one epoch, drawn from ``(seed, epoch)``.

    Every rank draws the same global sequence and keeps every ``world_size``-th
    key, like `DistributedSampler`; degradations are drawn lazily, a batch at a
    time, from the adaptive sampler's current weights.

    ``clean_fraction`` of the samples (drawn after the others, so 0 replays older runs
    exactly) get the degradation index `CLEAN`; ``patch_size``, when set, travels in
    every key (a run whose patches grow late in training sets it per epoch).
    """

    def __init__(
        self,
        n_images: int,
        samples_per_epoch: int,
        sampler: AdaptiveSampler,
        seed: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        clean_fraction: float = 0.0,
    ) -> None:
        self.n_images = n_images
        self.samples_per_epoch = samples_per_epoch
        self.sampler = sampler
        self.seed = seed
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.clean_fraction = clean_fraction
        self.patch_size: int | None = None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch // self.world_size

    def __iter__(self) -> Iterator[SampleKey]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        chunk = self.batch_size  # fixed, so the global sequence does not depend on world_size
        total = len(self) * self.world_size
        reps = math.ceil(total / self.n_images)
        order = torch.cat([torch.randperm(self.n_images, generator=g) for _ in range(reps)])[:total]
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            degs = self.sampler.draw(n, g)
            seeds = torch.randint(0, 2**62, (n,), generator=g)
            if self.clean_fraction > 0:
                degs = torch.where(torch.rand(n, generator=g) < self.clean_fraction, CLEAN, degs)
            extra = (self.patch_size,) if self.patch_size else ()
            for j in range(n):
                if (start + j) % self.world_size == self.rank:
                    yield int(order[start + j]), int(degs[j]), int(seeds[j]), *extra


class KeyBatchSampler(Sampler[list[SampleKey]]):
    """Groups `EpochSampler` keys into lists of ``batch_size`` (drops the remainder)."""

    def __init__(self, sampler: EpochSampler, batch_size: int) -> None:
        self.sampler = sampler
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[list[SampleKey]]:
        batch: list[SampleKey] = []
        for key in self.sampler:
            batch.append(key)
            if len(batch) == self.batch_size:
                yield batch
                batch = []


class KeyedDataset(Dataset):
    """Adapter so a batch sampler of keys can drive `TrainCrops` through a DataLoader."""

    def __init__(self, crops: TrainCrops) -> None:
        self.crops = crops

    def __getitems__(self, keys: list[SampleKey]) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        return [self.crops[k] for k in keys]

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.crops[key]

    def __len__(self) -> int:
        return len(self.crops)


def validation_images(n_images: int, names: list[str], max_crops: int, severities: tuple[float, ...] = VAL_SEVERITIES) -> int:
    """How many of ``n_images`` validation images `make_validation_set` crops (at least one)."""
    return max(1, min(n_images, max_crops // (len(names) * len(severities))))


def validation_size(n_images: int, names: list[str], max_crops: int, clean_crops: bool = False,
                    severities: tuple[float, ...] = VAL_SEVERITIES) -> int:
    """The number of crops `make_validation_set` makes from ``n_images`` images."""
    per_image = (len(names) + int(clean_crops)) * len(severities)
    return validation_images(n_images, names, max_crops, severities) * per_image


def make_validation_set(
    images: list[torch.Tensor],
    names: list[str],
    patch_size: int,
    seed: int,
    max_crops: int = 192,
    severities: tuple[float, ...] = VAL_SEVERITIES,
    sensor_noise: float = 0.0,
    clean_crops: bool = False,
    noise_map: bool = False,
    rich_colour: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed degraded validation crops covering every degradation at every severity.

    Returns (degraded (N, C, P, P), clean (N, C, P, P), degradation index (N,)),
    identical for the same arguments. N <= max(max_crops, one per degradation x severity).
    ``clean_crops`` adds, per image, undegraded crops (index `CLEAN`, target = input) as
    `TrainCrops` makes them, for a run that trains on such samples; ``noise_map`` appends each degraded crop's
    noise map (`training_level`, without the jitter). ``rich_colour`` makes every other image's crops colour-rich
    (halved, saturation x 1.5), for a run that trains on such crops.
    """
    names = degradations.validate_names(names)
    n_images = validation_images(len(images), names, max_crops, severities)
    degraded, clean, idx = [], [], []
    for i in range(n_images):
        img = images[i]
        rich = rich_colour and i % 2 == 1
        if rich:
            img = half_scale(img)
        for d, name in enumerate(names):
            for s, severity in enumerate(severities):
                g = torch.Generator().manual_seed(seed * 7919 + (i * len(names) + d) * len(severities) + s)
                x = random_crop(img, patch_size, g)
                if rich:
                    x = saturate(x, VAL_RICH_SATURATION)
                degraded.append(add_sensor_noise(degradations.apply(name, x, severity, g, pool=names), sensor_noise, g))
                clean.append(x)
                idx.append(d)
        if clean_crops:
            for s in range(len(severities)):
                g = torch.Generator().manual_seed(seed * 7919 + 104729 + i * len(severities) + s)
                x = random_crop(img, patch_size, g)
                x = add_sensor_noise(saturate(x, VAL_RICH_SATURATION) if rich else x, sensor_noise, g)
                degraded.append(x)
                clean.append(x.clone())
                idx.append(CLEAN)
    if noise_map:
        degraded = [with_level(x, training_level(x, None)) for x in degraded]
    return torch.stack(degraded), torch.stack(clean), torch.tensor(idx)
