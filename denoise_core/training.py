"""Training loop: adaptive degradations, U-Net, MSE+SSIM, validation, checkpoints, resume.

Output folder (``save_path``):

- ``last.pt``   everything resume needs (model, optimizer, scheduler, AMP scaler,
  epoch, best metric, sampler state, RNG states, config, history records)
- ``best.pt``   the model with the lowest validation loss so far
- ``checkpoints/epoch_NNNN.pt``  per-epoch model checkpoints (the newest ``keep_epochs``)
- ``config.json``, ``status.json``, ``events.jsonl``, ``history.xlsx``, ``train.log``

Resume works at epoch granularity: a run killed or stopped mid-epoch continues
from its last complete epoch, and its history is the one a straight run gives.

Distributed: under ``torchrun`` each process trains on its shard of every
epoch's samples; ``batch_size`` is per process (the global batch is
``batch_size * world_size``) and the learning rate is used as given.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from . import degradations
from .allocator import tune_malloc
from .checkpoint import (CheckpointError, atomic_write_json, load_checkpoint, model_file,
                         model_file_from_resume, resume_file, rng_state, save_checkpoint, set_rng_state)
from .data import CLEAN, EpochSampler, KeyBatchSampler, KeyedDataset, TrainCrops, find_images, load_images, make_validation_set, split_indices
from .device import cpu_has_bf16, pick_device
from .history import WORKBOOK_FILE, append_event, read_events, repair_events, write_workbook
from .losses import RestorationLoss, psnr_per_image, ssim_per_image
from .model import ModelConfig, build_model, check_growth, count_parameters, load_grown
from .options import int_list, name_list, opt, options_of, share_map
from .sampler import AdaptiveSampler
from .runfiles import BEST_FILE, CHECKPOINTS_DIR, CONFIG_FILE, LAST_FILE, STATUS_FILE, STOP_FILE

log = logging.getLogger(__name__)

LOG_LOSS_EPS = 1e-4  # loss_norm="log" default: about 40 dB, so near-perfect (clean) samples do not take over the gradient

# The shipped model's recipe (denoise_core/weights/RECIPE.md), which TrainConfig's defaults follow: the
# degradations it trains on (the tone ones are the exposure model's job, so a restore keeps a photo's tone),
# their prior shares, and its block counts for a model trained from scratch.
RECIPE_DEGRADATIONS = ("gaussian_noise", "poisson_noise", "salt_pepper", "gaussian_blur", "motion_blur", "jpeg",
                       "downsample", "camera_noise", "channel_noise", "camera_jpeg", "mixed")
RECIPE_PRIOR = {"gaussian_noise": 3.0, "poisson_noise": 3.0, "camera_noise": 3.0, "camera_jpeg": 2.0, "jpeg": 2.0}
RECIPE_BLOCKS = {"enc_blocks": [2, 2, 2], "middle_blocks": 2, "dec_blocks": [2, 2, 1]}
# TrainConfig fields that are not part of a recipe: the data, the length of the run, where it starts from
# and bookkeeping. Every other field defaults to the shipped model's value (tests/library/test_defaults.py).
NOT_RECIPE = frozenset({"image_dir", "save_path", "epochs", "learning_rate", "val_ratio", "steps_per_epoch",
                        "num_workers", "init_from", "seed", "device", "log_every", "keep_epochs", "resume", "progress",
                        "enc_blocks", "middle_blocks", "dec_blocks"})  # the block counts: compared as model_config()


class TrainingStopped(Exception):
    """Raised inside the loop when a stop was requested."""


@dataclass
class TrainConfig:
    """Every training option. Names match the keyword arguments of `train`.

    Each field made with `opt` also carries its command-line flag, its label and help, and its
    range (`Option`): the CLI's ``train`` flags, the studio's Train form and the range checks
    below are generated from them, so an option is written down once.
    """

    image_dir: str = opt("", flag="--data", label="Images", help="folder of clean images (searched recursively); 'samples' for the bundled ones")
    save_path: str = opt("weights", flag="--out", label="Output folder", help="output folder (checkpoints, history, logs)")
    epochs: int = opt(30, flag="--epochs", label="Epochs", minimum=1, maximum=100_000,
                      help="passes over the training images (each image gives 'crops per image' random crops)")
    batch_size: int = opt(16, flag="--batch-size", label="Batch size", minimum=1, maximum=4096,
                          help="crops per optimisation step (per process under torchrun)")
    learning_rate: float = opt(1e-4, flag="--lr", label="Learning rate", minimum=1e-7, maximum=1.0, step=1e-5, fmt="%.1e",
                               help="AdamW; warm-up, then cosine decay to 1% of it")
    val_ratio: float = opt(0.15, flag="--val-ratio", label="Validation ratio", minimum=0.01, maximum=0.9, step=0.05,
                           help="share of the images held out for validation (at least one)")
    # data
    patch_size: int = opt(64, flag="--patch-size", label="Patch size", minimum=8, maximum=1024, step=8,
                          help="side of the square training crops, in pixels")
    crops_per_image: int = opt(8, flag="--crops-per-image", label="Crops per image", minimum=1, maximum=1000,
                               help="an epoch = this many random crops of every training image")
    steps_per_epoch: int | None = opt(None, flag="--steps-per-epoch", label="Steps per epoch", minimum=1, maximum=10**7,
                                      help="overrides crops per image when set (empty: images x crops per image / batch size)")
    val_patch_size: int = 96
    val_max_crops: int = 132  # bounds validation time; at least one crop per degradation x severity
    sensor_noise: float = opt(3.0, flag="--sensor-noise", label="Sensor noise (max sigma, 0-255)", minimum=0.0, maximum=20.0,
                              step=0.5, help="faint noise, sigma uniform in [0, this] on the 0-255 scale, added to every "
                                             "sample, so a little grain alone does not read as low light (0: off)")
    clean_fraction: float = opt(0.1, flag="--clean-fraction", label="Undegraded share", minimum=0.0, maximum=0.9, step=0.05,
                                help="share of samples left undegraded (target = input), teaching the model to leave "
                                     "clean photos alone")
    rich_colour: float = opt(0.0, flag="--rich-colour", label="Colour-rich share", minimum=0.0, maximum=1.0, step=0.05,
                             help="share of crops cut from the image halved and saturated up to 2x "
                                  "(`denoise_core.data.saturate`), so fine colour detail that JPEG's 4:2:0 training "
                                  "photos lack is not learnt as noise (0: off)")
    late_patch_size: int = opt(0, flag="--late-patch-size", label="Late patch size", minimum=0, maximum=1024,
                               help="patch size for the last 'late epochs' epochs (0: the patch size throughout)")
    late_epochs: int = opt(0, flag="--late-epochs", label="Late epochs", minimum=0, maximum=100_000)
    num_workers: int | None = opt(None, flag="--workers", label="Loader workers", minimum=0, maximum=64,
                                  help="DataLoader workers (empty: min(4, cores - 1))")
    # degradations and adaptive weights
    degradations: list[str] = opt(default_factory=lambda: list(RECIPE_DEGRADATIONS), flag="--degradations",
                                  label="Degradations", parse=name_list, help="the synthetic degradations drawn for "
                                  "training crops (comma-separated on the command line; default: all but the tone "
                                  "ones, low_light, overexposure and color_cast, jpeg_heavy and camera_coarse)")
    adaptive: bool = opt(True, flag="--uniform", label="Adaptive degradation weights", invert=True,
                         help="off (--uniform): every degradation is drawn equally often")
    temperature: float = opt(1.0, flag="--temperature", label="Sampler temperature", minimum=0.01, maximum=10.0, step=0.1,
                             help="lower: weights follow difficulty more sharply; higher: closer to uniform")
    floor: float = opt(0.02, flag="--floor", label="Sampler floor", minimum=0.0, maximum=0.09, step=0.01, fmt="%.2f",
                       help="minimum weight of every degradation, so none is forgotten")
    smoothing: float = 0.0
    difficulty: str = opt("relative", choices=("relative", "absolute"))
    weight_rule: str = opt("softmax", flag="--weight-rule", label="Weight rule", choices=("softmax", "dro"),
                           help="softmax: weights from the latest difficulties; dro: online group DRO (Sagawa et al. "
                                "2020), weights that keep growing toward the worst degradation (sampler docstring)")
    dro_step: float = opt(0.1, flag="--dro-step", label="DRO step", minimum=1e-4, maximum=10.0,
                          help="group DRO's step size eta (with --weight-rule dro)")
    update_every: int | None = opt(None, flag="--update-every", label="Weight update every", minimum=1, maximum=10**7,
                                   help="steps between weight updates (empty: once per epoch)")
    prior: dict[str, float] | None = opt(default_factory=lambda: dict(RECIPE_PRIOR), flag="--prior",
                                         label="Degradation prior", parse=share_map,
                                         help="relative share per degradation on top of the adaptive rule (1 for one "
                                              "not named; none: 1 each; the default's shares apply to those of its "
                                              "degradations chosen)")
    # model and loss
    width: int = opt(32, flag="--width", label="Model width", minimum=4, maximum=256, step=4,
                     help="channels of the first U-Net level (doubles at each level)")
    depth: int = opt(3, flag="--depth", label="Model depth", minimum=1, maximum=6, help="down-sampling levels of the U-Net")
    block: str = opt("res", flag="--block", label="Block", choices=("naf", "res"),
                     help="res: plain residual 3x3 convolutions (about 2x the steps/s of naf in bf16 on a CPU); "
                          "naf: NAFNet blocks")
    stem: str = opt("conv", flag="--stem", label="Stem", choices=("conv", "unshuffle"),
                    help="unshuffle: FFDNet's pixel-unshuffle, every level at half resolution")
    channels: int = opt(3, flag="--channels", label="Channels", choices=(1, 3))
    noise_map: bool = opt(True, flag="--no-noise-map", label="Noise-level input", invert=True,
                          help="the model is told each photo's noise level (a map, as FFDNet), so a restore can be asked "
                               "for more or less; off (--no-noise-map): blind. Fine-tuning a blind model grows the input")
    # blocks per encoder level / in the middle / per decoder level; None: the recipe's (RECIPE_BLOCKS),
    # or, when fine-tuning, the init checkpoint's (more blocks than it has grows it: `model.load_grown`)
    enc_blocks: list[int] | None = opt(None, flag="--enc-blocks", label="Encoder blocks", parse=int_list,
                                       help="blocks per encoder level, N,N,... (default 2,2,2; with --init: the checkpoint's, more grows it)")
    middle_blocks: int | None = opt(None, flag="--middle-blocks", label="Middle blocks", minimum=0, maximum=64,
                                    help="blocks in the middle (default 2)")
    dec_blocks: list[int] | None = opt(None, flag="--dec-blocks", label="Decoder blocks", parse=int_list,
                                       help="blocks per decoder level, N,N,... (default 2,2,1)")
    alpha: float = opt(0.95, flag="--alpha", label="Loss alpha", minimum=0.0, maximum=1.0, step=0.05,
                       help="loss = alpha x MSE + (1 - alpha) x (1 - SSIM)")
    loss_norm: str = opt("log", flag="--loss-norm", label="Loss normalisation", choices=("none", "log"),
                         help="log: each sample's loss as log(loss + floor), equal weight per dB (NAFNet's PSNR loss)")
    log_floor: float = opt(LOG_LOSS_EPS, flag="--log-floor", label="Log-loss floor", minimum=1e-8, maximum=1.0, fmt="%.0e",
                           help="the floor added before the log (1e-4: samples better than ~40 dB stop gaining weight; "
                                "larger: less weight on nearly clean samples)")
    ema: float = opt(0.0, flag="--ema", label="EMA decay", minimum=0.0, maximum=0.99999, step=0.0001, fmt="%.4f",
                     help="exponential moving average of the weights, e.g. 0.999 (0: off); validation and best.pt use it")
    # optimisation
    weight_decay: float = 0.0
    scheduler: str = opt("cosine", choices=("cosine", "constant"))  # cosine (to 1% of the LR) or constant
    warmup_steps: int = 100
    grad_clip: float = 1.0
    amp: str = opt("auto", flag="--amp", label="Mixed precision", choices=("auto", "off", "bf16", "fp16"),
                   help="auto: bf16 (or fp16) on CUDA, bf16 on CPUs with native bf16 (AVX-512 BF16 or AMX), "
                        "off elsewhere")
    channels_last: bool | None = None  # None: on for CUDA and CPU (faster for these convolutions on both)
    compile: bool = opt(False, flag="--compile", label="torch.compile", help="torch.compile the model")
    # fine-tuning: start from this checkpoint's weights ("default": the shipped model); its
    # architecture replaces width/depth/block/channels (and the block counts left at None);
    # optimizer, schedule and weights start fresh
    init_from: str | None = opt(None, flag="--init", label="Fine-tune from",
                                help="start from this checkpoint's weights ('default': the shipped model)")
    # bookkeeping
    seed: int = opt(0, flag="--seed", label="Seed", minimum=0, maximum=2**31 - 1)
    device: str = opt("auto", flag="--device", label="Device",
                      help="auto, cpu, cuda (or cuda:N), mps; auto: the GPU when there is one (cuda, then mps), else the CPU")
    log_every: int = 10
    keep_epochs: int = 3
    resume: bool = opt(False, flag="--resume", label="Resume", help="continue last.pt in the output folder up to --epochs")
    progress: bool = False

    def __post_init__(self) -> None:
        self.degradations = degradations.validate_names(self.degradations)
        if self.prior == RECIPE_PRIOR:  # the default: the shares of the degradations chosen
            self.prior = {k: v for k, v in RECIPE_PRIOR.items() if k in self.degradations}
        checks = {name: option.accepts(getattr(self, name)) for name, option in train_options().items()}
        checks.update({
            "learning_rate": self.learning_rate > 0,
            "clean_fraction": 0.0 <= self.clean_fraction < 1.0,
            "late_patch_size": self.late_patch_size == 0 or self.late_patch_size >= 8,
            "ema": 0.0 <= self.ema < 1.0,
            "enc_blocks": self.enc_blocks is None or all(n >= 0 for n in self.enc_blocks),
            "dec_blocks": self.dec_blocks is None or all(n >= 0 for n in self.dec_blocks),
        })
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid training option(s): " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))

    def block_counts(self) -> dict[str, Any]:
        """The block counts set explicitly (not None)."""
        counts = {"enc_blocks": self.enc_blocks, "middle_blocks": self.middle_blocks, "dec_blocks": self.dec_blocks}
        return {k: v for k, v in counts.items() if v is not None}

    def model_config(self) -> ModelConfig:
        """The architecture of a model trained from scratch: block counts left at None are the recipe's."""
        return ModelConfig(channels=self.channels, width=self.width, depth=self.depth, block=self.block,
                           stem=self.stem, noise_map=self.noise_map, **{**RECIPE_BLOCKS, **self.block_counts()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_options() -> dict:
    """`TrainConfig`'s described options (field name -> `denoise_core.options.Option`), in field order."""
    return options_of(TrainConfig)


# What an option meant in a run saved before the option existed, where that differs from today's default
# (the defaults became the shipped recipe on 2026-12-04; every run since stores every option).
BEFORE_OPTION = {"sensor_noise": 0.0, "clean_fraction": 0.0, "loss_norm": "none", "prior": None, "noise_map": False,
                 "block": "naf", "temperature": 0.5, "rich_colour": 0.0}

# Options that may differ between a run and its resumption.
RESUMABLE_CHANGES = {"epochs", "resume", "progress", "num_workers", "device", "log_every", "keep_epochs", "image_dir", "save_path"}


def _stop_requested(out: Path, flag: threading.Event) -> bool:
    return flag.is_set() or (out / STOP_FILE).exists()


@contextlib.contextmanager
def _stop_signals(flag: threading.Event):
    """SIGTERM/SIGINT set ``flag`` instead of killing, so the run ends cleanly after the step."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: flag.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker_init(worker_id: int) -> None:
    # A stop signal sent to the whole process group is for the main process, which
    # finishes the step and exits cleanly; a worker dying on it would fail the run.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _write_status(out: Path, state: str, **extra: Any) -> None:
    atomic_write_json(out / STATUS_FILE, {"state": state, "pid": os.getpid(), "updated": time.time(), **extra})


def _lr_lambda(cfg: TrainConfig, total_steps: int):
    def factor(step: int) -> float:
        warm = min(cfg.warmup_steps, max(1, total_steps // 10))
        if step < warm:
            return (step + 1) / warm
        if cfg.scheduler == "constant":
            return 1.0
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

    return factor


_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def amp_dtype(amp: str, device_type: str, cpu_bf16: bool | None = None) -> torch.dtype | None:
    """The autocast dtype training uses (None: fp32). ``auto``: the GPU's choice on CUDA (bf16 where supported,
    else fp16), bf16 on a CPU with native bf16 (AVX-512 BF16 or AMX), fp32 elsewhere. ``cpu_bf16`` overrides the CPU probe (`device.cpu_has_bf16`)."""
    if device_type == "cpu":
        native = cpu_has_bf16() if cpu_bf16 is None else cpu_bf16
        if amp == "bf16" and not native:
            log.warning("this CPU has no native bf16 (AVX-512 BF16 / AMX): training in fp32 instead")
        return torch.bfloat16 if amp in ("auto", "bf16") and native else None
    if amp == "off" or (amp == "auto" and device_type != "cuda"):
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _ema_warmup_fn(decay: float):
    """EMA update with the decay warmed up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (timm's
    ModelEmaV3): a fixed 0.999 would still give the random initial weights a third of the average after
    1,000 steps."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        for e, p in zip(ema_params, params):
            e.lerp_(p, 1 - d)

    return update


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _all_reduce(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        t = t.to(device)
        dist.all_reduce(t)
        return t.cpu()
    return t


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    names: list[str],
    loss_fn: RestorationLoss,
    device: torch.device,
    batch_size: int = 4,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Validation loss/PSNR/SSIM overall and per degradation (with the degraded input's own figures)."""
    degraded, clean, idx = val
    model.eval()
    rows = {"loss": [], "psnr": [], "ssim": [], "input_psnr": [], "input_ssim": []}
    for start in range(0, len(idx), batch_size):
        x = degraded[start : start + batch_size].to(device)
        y = clean[start : start + batch_size].to(device)
        out = model(x).float().clamp(0, 1)
        rows["loss"].append(loss_fn.per_image(out, y).cpu())
        rows["psnr"].append(psnr_per_image(out, y).cpu())
        rows["ssim"].append(ssim_per_image(out, y).cpu())
        x = x[:, : y.shape[1]]  # the image, without a noise map
        rows["input_psnr"].append(psnr_per_image(x, y).cpu())
        rows["input_ssim"].append(ssim_per_image(x, y).cpu())
    model.train()
    cols = {k: torch.cat(v).double() for k, v in rows.items()}
    overall = {"val_loss": cols["loss"].mean().item(), "val_psnr": cols["psnr"].mean().item(), "val_ssim": cols["ssim"].mean().item()}
    per_deg = {}
    for d, name in [*enumerate(names), (CLEAN, "clean")]:
        mask = idx == d
        if mask.any():
            per_deg[name] = {k if k.startswith("input") else f"val_{k}": cols[k][mask].mean().item() for k in cols}
    return overall, per_deg


def train(
    image_dir: str | Path,
    epochs: int = 30,
    batch_size: int = 16,
    learning_rate: float = 1e-4,
    val_ratio: float = 0.15,
    save_path: str | Path = "weights",
    **options: Any,
) -> dict[str, Any]:
    """Train a restoration U-Net on the images under ``image_dir``; see `TrainConfig` for options.

    Returns a summary: ``best_epoch``, ``best_val_loss``, ``epochs_done``, ``state``
    (finished or stopped), ``history`` (per-epoch records) and ``save_path``.
    """
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown training option(s): {', '.join(unknown)}")
    cfg = TrainConfig(
        image_dir=str(image_dir), save_path=str(save_path), epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, val_ratio=val_ratio, **options,
    )
    return Trainer(cfg).run()


def epoch_steps(cfg: TrainConfig, train_images: int, world: int = 1) -> int:
    """Optimisation steps per epoch: ``steps_per_epoch``, else every training image's crops in whole batches."""
    if cfg.steps_per_epoch:
        return cfg.steps_per_epoch
    per_step = cfg.batch_size * world
    return max(1, train_images * cfg.crops_per_image // per_step)


@dataclass
class StartPlan:
    """How a run starts: ``kind`` new, resumed or fine-tuned; ``cfg`` the settings it runs with (a resumed
    run keeps its stored ones, a fine-tuned run adopts its checkpoint's architecture); the state it starts from."""

    kind: str
    cfg: TrainConfig
    resume_state: dict | None = None
    init_state: dict | None = None


def plan_start(cfg: TrainConfig, out: Path) -> StartPlan:
    """Decide how the run in ``out`` starts, from ``cfg`` and the folder's last.pt; reads, never writes."""
    state, cfg = _resume_state(cfg, out)
    if state is not None:
        return StartPlan("resumed", cfg, resume_state=state)
    init, cfg = _init_state(cfg)
    return StartPlan("fine-tuned" if init is not None else "new", cfg, init_state=init)


def _resume_state(cfg: TrainConfig, out: Path) -> tuple[dict | None, TrainConfig]:
    """last.pt's state when resuming (else None), and the config to run with."""
    last = out / LAST_FILE
    if not cfg.resume:
        if last.exists():
            raise FileExistsError(
                f"{out} already holds a training run; resume it (resume=True / --resume) "
                "or choose another output folder"
            )
        return None, cfg
    if not last.exists():
        log.info("no last.pt in %s: starting a new run", out)
        return None, cfg
    state = load_checkpoint(last)
    if "optimizer" not in state:
        raise CheckpointError(f"{last} has no optimizer state; it cannot be resumed")
    old = state["train_config"]
    # An option newer than the stored run counts as it was before it existed: off (`BEFORE_OPTION`), else its default.
    defaults = {**TrainConfig().to_dict(), **BEFORE_OPTION}
    changed = sorted(k for k, v in cfg.to_dict().items() if k not in RESUMABLE_CHANGES and old.get(k, defaults[k]) != v)
    if changed:
        # The stored run decides everything but the epoch count and housekeeping.
        log.warning("resuming with the run's stored settings; ignoring changed option(s): %s", ", ".join(changed))
        kept = {k: old.get(k, d) for k, d in defaults.items() if k not in RESUMABLE_CHANGES}
        cfg = TrainConfig(**{**cfg.to_dict(), **kept})
    return state, cfg


def _init_state(cfg: TrainConfig) -> tuple[dict | None, TrainConfig]:
    """The checkpoint a fine-tuning run starts from (else None), and the config with its architecture adopted."""
    if not cfg.init_from:
        return None, cfg
    from .loading import DEFAULT_CHECKPOINT

    path = DEFAULT_CHECKPOINT if cfg.init_from == "default" else Path(cfg.init_from)
    state = load_checkpoint(path)
    try:
        arch = ModelConfig(**state["model_config"])
        weights = state.get("ema_model", state["model"])  # a run's averaged weights when it kept them
        build_model(arch).load_state_dict(weights)  # fail here, before the images load
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path.name}: cannot fine-tune from it ({str(exc)[:200]})") from exc
    adopted = {"channels": arch.channels, "width": arch.width, "depth": arch.depth, "block": arch.block,
               "stem": arch.stem}
    differing = {k: v for k, v in adopted.items() if getattr(cfg, k) != v}
    if differing:
        log.info("fine-tuning %s: using its architecture %s", path.name, differing)
        cfg = TrainConfig(**{**cfg.to_dict(), **adopted})
    grown = ModelConfig(**{**arch.to_dict(), **cfg.block_counts(), "noise_map": arch.noise_map or cfg.noise_map})
    if grown != arch:
        try:
            check_growth(arch, grown)  # fail here too, before the images load
        except ValueError as exc:
            raise ValueError(f"cannot fine-tune {path.name} with these block counts: {exc}") from exc
        if grown.noise_map and not arch.noise_map:
            log.info("growing %s: a noise-map input (its weights start at zero)", path.name)
        log.info("growing %s: blocks %s -> %s (new blocks start as the identity)", path.name,
                 [arch.enc_blocks, arch.middle_blocks, arch.dec_blocks],
                 [grown.enc_blocks, grown.middle_blocks, grown.dec_blocks])
    log.info("initialising from %s (epoch %s of its run)", path, state.get("epoch", "?"))
    return {"model": weights, "model_config": grown, "init_config": arch}, cfg


def planned_model_config(cfg: TrainConfig) -> ModelConfig:
    """The architecture a new run of ``cfg`` trains: a fine-tune's checkpoint's (grown as asked), else ``cfg``'s."""
    init_state, _ = _init_state(cfg)
    return init_state["model_config"] if init_state is not None else cfg.model_config()


class RunRecorder:
    """The run folder's records besides the checkpoints: status.json, events.jsonl, history.xlsx, the STOP
    file and the model card, and their repair after a kill. Only the main process records."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def clear_stop(self) -> None:
        (self.out / STOP_FILE).unlink(missing_ok=True)

    def status(self, state: str, **extra: Any) -> None:
        _write_status(self.out, state, **extra)

    def event(self, event: dict[str, Any]) -> None:
        append_event(self.out, event)

    def epoch(self, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """After an epoch's checkpoints: the workbook, then the epoch event."""
        write_workbook(self.out / WORKBOOK_FILE, history)
        append_event(self.out, {"type": "epoch", **record})

    def config(self, cfg: TrainConfig, model_config: ModelConfig) -> None:
        atomic_write_json(self.out / CONFIG_FILE, {**cfg.to_dict(), "model_config": model_config.to_dict()})

    def reconcile(self, resume_state: dict | None, history: list[dict[str, Any]]) -> None:
        """After a kill, make the event log, workbook and best.pt agree with last.pt, and drop torn temp files."""
        for pattern in (".*.tmp", "checkpoints/.*.tmp"):
            for tmp in self.out.glob(pattern):  # left by a write that was killed before os.replace
                tmp.unlink(missing_ok=True)
        repair_events(self.out)
        self._repair_best(resume_state)
        logged = {int(e["epoch"]) for e in read_events(self.out) if e["type"] == "epoch"}
        for record in history:
            if record["epoch"] not in logged:
                append_event(self.out, {"type": "epoch", **record})
        if history:
            write_workbook(self.out / WORKBOOK_FILE, history)

    def _repair_best(self, s: dict | None) -> None:
        """Rewrite best.pt from last.pt when a kill came between saving the two."""
        if s is None or int(s["best_epoch"]) != int(s["epoch"]):
            return
        best = self.out / BEST_FILE
        try:
            current = load_checkpoint(best)["epoch"] if best.exists() else None
        except CheckpointError:
            current = None
        if current != s["epoch"]:
            log.warning("best.pt is behind last.pt's best epoch %d (killed while saving): rewriting it", s["epoch"])
            save_checkpoint(best, model_file_from_resume(s))

    def model_card(self) -> None:
        """MODEL_CARD.md for the finished run's best checkpoint; a failure here is logged, never fatal."""
        from .model_card import write_model_card

        try:
            write_model_card(self.out)
        except Exception as exc:  # noqa: BLE001 -- the run itself is complete and saved
            log.warning("could not write the model card of %s: %s", self.out, exc)


def loader_workers(cfg: TrainConfig) -> int:
    """DataLoader workers of ``cfg``'s run: ``num_workers``, or min(4, cores - 1) when it is not set."""
    return cfg.num_workers if cfg.num_workers is not None else min(4, max(0, (os.cpu_count() or 1) - 1))

class Trainer:
    """One training run; `run` reads top to bottom."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.save_path)
        self.rank, self.world, self.local_rank = _dist_info()
        self.main = self.rank == 0
        self.stop_flag = threading.Event()
        self.recorder = RunRecorder(self.out)

    # -- setup -------------------------------------------------------------
    def setup(self, image_limit: int | None = None) -> None:
        """Everything before the first step. ``image_limit``: load only the first images found (a timing
        probe, `denoise_core.timing`; the epoch length still counts them all)."""
        cfg = self.cfg
        self.owns_group = self.world > 1 and not dist.is_initialized()
        if self.owns_group:
            backend = "nccl" if torch.cuda.is_available() and cfg.device in ("auto", "cuda") else "gloo"
            dist.init_process_group(backend)
        self.device = pick_device(cfg.device, self.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        tune_malloc()  # on a CPU, +8-9 % steps/s (`denoise_core.allocator`)
        self.out.mkdir(parents=True, exist_ok=True)
        plan = plan_start(cfg, self.out)
        # The one place the config changes: a resumed run keeps its stored settings, a fine-tune adopts its architecture.
        self.cfg = cfg = plan.cfg
        self.start_kind = plan.kind
        self.resume_state, self.init_state = plan.resume_state, plan.init_state
        if self.resume_state is not None:
            self.model_config = ModelConfig(**self.resume_state["model_config"])
        elif self.init_state is not None:
            self.model_config = self.init_state["model_config"]
        else:
            self.model_config = cfg.model_config()
        if self.main:
            # Before DDP's first collective, so no rank can see a STOP left by an earlier run.
            self.recorder.clear_stop()

        paths = find_images(cfg.image_dir)
        images, kept, self.skipped = load_images(paths[:image_limit], channels=cfg.channels)
        # Split after the unreadable files are left out; the studio's previews read the result from the
        # run's start event ("val_files") instead of splitting again.
        train_idx, val_idx = split_indices(len(images), cfg.val_ratio, cfg.seed)
        self.train_images = [images[i] for i in train_idx]
        self.val_images = [images[i] for i in val_idx]
        self.val_files = [Path(kept[i]).relative_to(cfg.image_dir).as_posix() for i in val_idx]
        self.n_images = (len(train_idx), len(val_idx))

        self.names = cfg.degradations
        self.sampler = AdaptiveSampler(
            self.names, temperature=cfg.temperature, floor=cfg.floor, smoothing=cfg.smoothing,
            difficulty=cfg.difficulty, adaptive=cfg.adaptive, prior=cfg.prior, rule=cfg.weight_rule,
            dro_step=cfg.dro_step,
        )
        self.steps_per_epoch = epoch_steps(cfg, len(train_idx), self.world)
        samples = self.steps_per_epoch * cfg.batch_size * self.world
        self.epoch_sampler = EpochSampler(len(self.train_images), samples, self.sampler, cfg.seed, cfg.batch_size,
                                          self.rank, self.world, clean_fraction=cfg.clean_fraction)
        workers = loader_workers(cfg)
        self.loader = DataLoader(
            KeyedDataset(TrainCrops(self.train_images, self.names, cfg.patch_size, cfg.sensor_noise,
                                    noise_map=self.model_config.noise_map, rich_colour=cfg.rich_colour)),
            batch_sampler=KeyBatchSampler(self.epoch_sampler, cfg.batch_size),
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_worker_init,
        )
        val_patch = min(cfg.val_patch_size, *(min(im.shape[-2:]) for im in self.val_images))
        self.val = make_validation_set(self.val_images, self.names, max(val_patch, 16), cfg.seed, cfg.val_max_crops,
                                       sensor_noise=cfg.sensor_noise, clean_crops=cfg.clean_fraction > 0,
                                       noise_map=self.model_config.noise_map, rich_colour=cfg.rich_colour > 0)

        torch.manual_seed(cfg.seed)
        self.model = build_model(self.model_config).to(self.device)
        if self.init_state is not None:
            # checked by _load_init_state; the same as load_state_dict when nothing grows
            load_grown(self.model, self.init_state["model"], self.init_state["init_config"])
        self.channels_last = cfg.channels_last if cfg.channels_last is not None else self.device.type in ("cuda", "cpu")
        if self.channels_last:
            # The convolutions only: the (1, C, 1, 1) residual scales would get channels_last
            # strides that their gradients never have, which DDP reports as a layout mismatch.
            for module in self.model.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.to(memory_format=torch.channels_last)
        self.loss_fn = RestorationLoss(cfg.alpha)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(cfg, self.total_steps))
        self.amp_dtype = amp_dtype(cfg.amp, self.device.type)
        if self.resume_state is not None and "amp_dtype" not in self.resume_state and self.device.type != "cuda":
            self.amp_dtype = None  # saved before "auto" meant bf16 on a CPU with it: the run continues in fp32
        elif self.resume_state is not None:
            self.amp_dtype = _DTYPES[self.resume_state["amp_dtype"]]  # as it started, whatever "auto" finds now
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema = None
        if cfg.ema:
            from torch.optim.swa_utils import AveragedModel

            self.ema = AveragedModel(self.model, multi_avg_fn=_ema_warmup_fn(cfg.ema), use_buffers=True)

        self.start_epoch, self.best_val_loss, self.best_epoch, self.history = 1, math.inf, 0, []
        if self.resume_state is not None:
            s = self.resume_state
            self.model.load_state_dict(s["model"])
            self.optimizer.load_state_dict(s["optimizer"])
            self.scheduler.load_state_dict(s["scheduler"])
            self.scaler.load_state_dict(s["scaler"])
            if self.ema is not None:
                self.ema.load_state_dict(s["ema"])
            self.sampler.load_state_dict(s["sampler"])
            if not self.main:
                self.sampler.reset_stats()  # rank 0's copy holds the global partial sums (see _sync_partial_stats)
            set_rng_state(s["rng"])
            self.start_epoch = int(s["epoch"]) + 1
            self.best_val_loss, self.best_epoch = float(s["best_val_loss"]), int(s["best_epoch"])
            self.history = list(s["history"])
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if cfg.compile:
            self.net = torch.compile(self.net)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights validated and saved as the run's model: the average when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    @staticmethod
    def _state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    # -- per-epoch pieces ------------------------------------------------------
    def _train_epoch(self, epoch: int, bar: Any) -> dict[str, float]:
        cfg = self.cfg
        self.epoch_sampler.set_epoch(epoch)
        late = cfg.late_patch_size and epoch > cfg.epochs - cfg.late_epochs
        self.epoch_sampler.patch_size = cfg.late_patch_size if late else None
        loss_sum = torch.zeros(2, dtype=torch.float64)  # (sum of per-image losses, count)
        start = time.time()
        for step, (x, y, idx) in enumerate(self.loader, 1):
            per_image = self.train_step(x, y, idx)
            loss = per_image.mean()
            loss_sum += torch.tensor([per_image.detach().sum().item(), len(per_image)], dtype=torch.float64)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
            if cfg.update_every and step % cfg.update_every == 0:
                self._update_weights()
            if self.main and step % cfg.log_every == 0:
                elapsed = time.time() - start
                append_event(self.out, {
                    "type": "step", "epoch": epoch, "step": step, "steps": self.steps_per_epoch,
                    "loss": loss.item(), "lr": self.scheduler.get_last_lr()[0], "seconds": elapsed,
                    "eta_epoch": elapsed / step * (self.steps_per_epoch - step),
                })
            if self._stop_agreed():
                raise TrainingStopped
        total = _all_reduce(loss_sum, self.device)
        return {"train_loss": (total[0] / total[1].clamp(min=1)).item()}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a batch; returns the per-image losses (detached)."""
        cfg = self.cfg
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        if self.channels_last:
            x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            out = self.net(x)
        per_image = self.loss_fn.per_image(out.float(), y)
        objective = torch.log(per_image + cfg.log_floor).mean() if cfg.loss_norm == "log" else per_image.mean()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        if cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # fp16: the scaler skips the optimiser step when the gradients overflowed, and lowers its scale; the schedule
        # waits for that step (as accelerate does) rather than run ahead of the weights with a warning from torch.
        if scale is None or self.scaler.get_scale() >= scale:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        with torch.no_grad():
            input_loss = self.loss_fn.per_image(x[:, : y.shape[1]].float().clamp(0, 1), y)
        self.sampler.record(idx, per_image, input_loss)
        return per_image.detach()

    def validate(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """The evaluated weights on the validation crops: overall and per-degradation metrics."""
        return evaluate(self.eval_model, self.val, self.names, self.loss_fn, self.device)

    def _stop_agreed(self) -> bool:
        """Whether to stop now; under DDP every rank gets the same answer (one rank seeing a
        STOP file or a signal that the others have not would otherwise hang them all)."""
        stop = _stop_requested(self.out, self.stop_flag)
        if self.world > 1:
            stop = bool(_all_reduce(torch.tensor([float(stop)]), self.device).item() > 0)
        return stop

    def _sync_partial_stats(self) -> None:
        """Under DDP, gather the degradation losses recorded since the last weight update on
        rank 0 (zero elsewhere), so that the sampler state rank 0 saves is the global one."""
        if self.world > 1:
            total = _all_reduce(self.sampler.stats_tensor(), self.device)
            if self.main:
                self.sampler.load_stats_tensor(total)
            else:
                self.sampler.reset_stats()

    def _update_weights(self) -> None:
        self.sampler.load_stats_tensor(_all_reduce(self.sampler.stats_tensor(), self.device))
        self.sampler.update()

    def _save(self, epoch: int, record: dict[str, Any], improved: bool) -> None:
        common = model_file(self._state_of(self.eval_model), self.model_config.to_dict(), epoch, self.names,
                            {k: record[k] for k in ("val_loss", "val_psnr", "val_ssim")}, self.cfg.to_dict())
        ckpt_dir = self.out / CHECKPOINTS_DIR
        ckpt_dir.mkdir(exist_ok=True)
        save_checkpoint(ckpt_dir / f"epoch_{epoch:04d}.pt", common)
        for old in sorted(ckpt_dir.glob("epoch_*.pt"))[: -self.cfg.keep_epochs or None]:
            old.unlink(missing_ok=True)
        save_checkpoint(self.out / LAST_FILE, resume_file(
            common, trained={k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            ema=self.ema.state_dict() if self.ema is not None else None,
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(),
            sampler=self.sampler.state_dict(), rng=rng_state(), best_val_loss=self.best_val_loss,
            best_epoch=self.best_epoch, history=self.history, train_config=self.cfg.to_dict(),
            amp_dtype=str(self.amp_dtype or torch.float32).removeprefix("torch."),
        ))
        # last.pt is the commit point: best.pt is written after it, so best.pt never runs ahead of
        # the resumable state; a kill in between is repaired on resume (RunRecorder.reconcile).
        if improved:
            save_checkpoint(self.out / BEST_FILE, common)
        self.recorder.epoch(record, self.history)

    # -- the run -----------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.setup()
        cfg = self.cfg
        if self.main:
            self.recorder.clear_stop()
            self.recorder.config(cfg, self.model_config)
            self.recorder.reconcile(self.resume_state, self.history)
            resumed = self.start_kind == "resumed"
            self.recorder.event({"type": "status", "status": "resumed" if resumed else "started", "epoch": self.start_epoch - 1,
                                    "epochs": cfg.epochs, "steps_per_epoch": self.steps_per_epoch, "device": str(self.device),
                                    "threads": torch.get_num_threads(),
                                    "world_size": self.world, "parameters": count_parameters(self.model),
                                    "train_images": self.n_images[0], "val_images": self.n_images[1],
                                    "skipped": [str(p) for p in self.skipped], "val_files": self.val_files})
            self.recorder.status("running", epoch=self.start_epoch - 1, epochs=cfg.epochs)
            log.info("training on %s: %d train / %d val images, %d steps per epoch, %d parameters",
                     self.device, *self.n_images, self.steps_per_epoch, count_parameters(self.model))
        bar = None
        if cfg.progress and self.main:
            from tqdm import tqdm

            done = (self.start_epoch - 1) * self.steps_per_epoch
            bar = tqdm(total=self.total_steps, initial=done, unit="step", dynamic_ncols=True)
        state = "finished"
        epoch = self.start_epoch - 1
        try:
            with _stop_signals(self.stop_flag):
                for epoch in range(self.start_epoch, cfg.epochs + 1):
                    t0 = time.time()
                    train_metrics = self._train_epoch(epoch, bar)
                    t1 = time.time()
                    self._sync_partial_stats()
                    lr = self.scheduler.get_last_lr()[0]
                    overall, per_deg = self.validate()
                    times = {"seconds": time.time() - t0, "train_seconds": t1 - t0, "val_seconds": time.time() - t1}
                    weights_used = self.sampler.weights_dict()
                    if not cfg.update_every:
                        self._update_weights()
                    for name, d in zip(self.names, self.sampler.difficulty.tolist()):
                        if name in per_deg:
                            per_deg[name]["difficulty"] = d
                    improved = overall["val_loss"] < self.best_val_loss
                    if improved:
                        self.best_val_loss, self.best_epoch = overall["val_loss"], epoch
                    record = {"epoch": epoch, **train_metrics, **overall, "lr": lr, **times,
                              "steps": self.steps_per_epoch, "weights": weights_used,
                              "next_weights": self.sampler.weights_dict(), "per_degradation": per_deg}
                    self.history.append(record)
                    if self.main:
                        self._save(epoch, record, improved)
                        self.recorder.status("running", epoch=epoch, epochs=cfg.epochs)
                        log.info("epoch %d/%d: train %.4f, val %.4f, %.2f dB, SSIM %.4f%s", epoch, cfg.epochs,
                                 record["train_loss"], record["val_loss"], record["val_psnr"], record["val_ssim"],
                                 " (best)" if improved else "")
                    if self._stop_agreed():
                        raise TrainingStopped
        except TrainingStopped:
            state = "stopped"
            epoch = self.history[-1]["epoch"] if self.history else 0
            log.info("stop requested: run stopped after epoch %d (last.pt holds epoch %d)", epoch, epoch)
        except BaseException as exc:
            if self.main:
                reason = f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(Exception):
                    self.recorder.event({"type": "status", "status": "failed", "epoch": epoch, "error": reason})
                    self.recorder.status("failed", epoch=epoch, epochs=cfg.epochs, error=reason)
            raise
        finally:
            if bar is not None:
                bar.close()
            if self.owns_group:
                dist.destroy_process_group()
        if self.main:
            self.recorder.clear_stop()
            done = self.history[-1]["epoch"] if self.history else 0
            self.recorder.event({"type": "status", "status": state, "epoch": done, "best_epoch": self.best_epoch,
                                 "best_val_loss": self.best_val_loss})
            self.recorder.status(state, epoch=done, epochs=cfg.epochs, best_epoch=self.best_epoch)
            if state == "finished":
                self.recorder.model_card()
        return {"state": state, "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "epochs_done": self.history[-1]["epoch"] if self.history else 0, "history": self.history,
                "save_path": str(self.out)}
