"""Command line: ``python -m denoise_core {train,restore,bench,export,space} ...`` (also installed as ``denoise``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .device import DEVICE_CHOICES
from .inference import BACKENDS


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .options import add_arguments
    from .training import TrainConfig

    p = sub.add_parser("train", help=SUMMARIES["train"],
                       description="Every option below is a field of denoise_core.training.TrainConfig (flags, help and "
                                   "ranges are generated from it); --config reads them from a JSON file, flags override.")
    p.add_argument("--config", default=None, metavar="JSON",
                   help="a run's config.json (or any JSON object of TrainConfig fields); the flags given override it")
    add_arguments(p, TrainConfig)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--estimate", action="store_true",
                   help="time a few steps of this run and print the expected time per epoch and for the run, then exit "
                        "(about 10 s on a CPU; nothing is written)")
    p.add_argument("--minutes", type=float, default=None, metavar="M",
                   help="set --epochs so the run takes about M minutes, from steps timed just now (the learning-rate "
                        "schedule then ends when the time does)")


def _run_train(args: argparse.Namespace) -> int:
    import json
    from dataclasses import fields

    from .samples import sample_image_dir
    from .training import TrainConfig, train

    names = {f.name for f in fields(TrainConfig)}
    values: dict = {}
    if args.config:
        try:
            loaded = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{args.config}: cannot read the config ({exc})") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a JSON object of training options")
        values = {k: v for k, v in loaded.items() if k in names}  # a run's config.json also holds its model_config
    values.update({k: v for k, v in vars(args).items() if k in names})
    data = values.pop("image_dir", None)
    if not data:
        raise ValueError("--data is required (or a --config that names image_dir)")
    values["progress"] = not args.no_progress
    image_dir = sample_image_dir() if data == "samples" else Path(data)
    if args.estimate:
        from .timing import measure

        print(measure(TrainConfig(image_dir=str(image_dir), **values)).summary())
        return 0
    if args.minutes is not None:
        values["epochs"] = epochs_for_minutes(TrainConfig(image_dir=str(image_dir), **values), args.minutes)
    result = train(image_dir, **values)
    logging.getLogger("denoise_core").info(
        "%s after epoch %d; best epoch %d (val loss %.4f); outputs in %s",
        result["state"], result["epochs_done"], result["best_epoch"], result["best_val_loss"], result["save_path"],
    )
    return 0


def epochs_for_minutes(cfg, minutes: float) -> int:
    """Epochs of ``cfg``'s run that fit in ``minutes``, from steps timed now. Enough steps are timed to drain the
    loader's prefetched batches (2 per worker), so a run whose loader is slower than its device is timed by the loader."""
    from .timing import format_seconds, measure
    from .training import loader_workers

    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}")
    estimate = measure(cfg, steps=max(6, 4 * loader_workers(cfg)))
    epochs = max(1, int(minutes * 60 // estimate.epoch_seconds))
    logging.getLogger("denoise_core").info("%d epochs fit in %s (%s per epoch, timed just now on %s)", epochs,
                                           format_seconds(minutes * 60), format_seconds(estimate.epoch_seconds),
                                           estimate.detail.rsplit(" ", 1)[-1])
    return epochs


def _add_restore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore", help=SUMMARIES["restore"],
                       description="restore INPUT into OUTPUT: a file into a file (format from its suffix), or a folder "
                                   "into a folder (the same tree, same names). EXIF, ICC profile and DPI are kept.")
    p.add_argument("input", help="image file, or folder of images (searched recursively)")
    p.add_argument("output", help="output file (.png .jpg .tif .webp; an existing folder: the input's name in it), "
                                  "or output folder for a folder input; missing folders are created")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: the shipped model)")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="0: the input unchanged, 1: the full restore (default), between: a mix of the two")
    p.add_argument("--noise-level", default="auto", metavar="auto|N",
                   help="how much noise to remove, as a noise sigma on the 0-255 scale (more removes more and smooths "
                        "more; 0 keeps grain), or auto (default): the level estimated on each photo")
    p.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG and WebP quality 1-100 (default 95; JPEG in 4:4:4)")
    p.add_argument("--format", default="keep", choices=("keep", "png"), dest="fmt",
                   help="folder restores: keep each file's format (default) or write PNG")
    p.add_argument("--skip-existing", action="store_true", help="folder restores: leave outputs that already exist (continue a batch)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--tile", type=int, default=512, help="tile size for big images (0: whole image)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="inference backend (auto: PyTorch in bf16 on a CPU with native bf16, else onnxruntime on "
                        "the CPU when installed, else PyTorch; a single photo on the CPU: onnxruntime, which "
                        "skips the 2 s import of torch once its graphs are cached)")
    p.add_argument("--ensemble", action="store_true",
                   help="average the restores of the 8 flips/rotations: 8x slower, a little better")
    p.add_argument("--correct-tone", action="store_true",
                   help="also fix exposure and colour (for under-exposed photos); by default tones and colours are kept")
    p.add_argument("--no-progress", action="store_true")


def _run_restore(args: argparse.Namespace) -> int:
    from .images import IMAGE_EXTENSIONS
    from .noise_level import parse_level
    from .restoration import check_strength

    check_strength(args.strength)
    parse_level(args.noise_level)
    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be from 1 to 100, got {args.quality}")
    if args.tile < 0:
        raise ValueError(f"--tile must be 0 (whole image) or a positive size, got {args.tile}")
    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise ValueError(f"{src}: no such file or folder")
    options = dict(device=args.device, tile=args.tile or None, backend=args.backend, ensemble=args.ensemble,
                   correct_tone=args.correct_tone, strength=args.strength, noise_level=args.noise_level)
    log = logging.getLogger("denoise_core")
    if src.is_dir():
        from .batch import restore_folder

        if dst.exists() and not dst.is_dir():
            raise ValueError(f"{dst}: is a file; a folder input needs an output folder")
        if not dst.exists() and dst.suffix.lower() in IMAGE_EXTENSIONS:
            raise ValueError(f"{dst}: looks like a file name; a folder input needs an output folder")
        report = restore_folder(src, dst, args.checkpoint, fmt=args.fmt, skip_existing=args.skip_existing,
                                quality=args.quality, progress=not args.no_progress, **options)
        log.info("wrote %d image(s) to %s%s", len(report.written), dst,
                 f", left {len(report.skipped)} already there" if report.skipped else "")
        if report.failed:
            print(f"error: {len(report.failed)} file(s) could not be restored:", file=sys.stderr)
            for path, reason in report.failed:
                print(f"  {path}: {reason}", file=sys.stderr)
            return 2
        return 0
    from .images import pixel_count
    from .inference import startup_backend
    from .restoration import restore_file

    if dst.is_dir():
        dst = dst / src.name
    options["backend"] = startup_backend(args.backend, args.device, pixel_count(src))  # small photo: start-up dominates
    out = restore_file(src, dst, args.checkpoint, quality=args.quality, **options)
    log.info("wrote %s (noise level %s)", out, out_level(src, args.noise_level))
    return 0


def out_level(src: Path, noise_level: str) -> str:
    """The noise level a restore of ``src`` is told, in words (estimated again for ``auto``: 0.1 s at 12 MP)."""
    from .noise_level import parse_level

    if parse_level(noise_level) is not None:
        return f"{float(noise_level):g}, as asked"
    from .images import open_image
    from .restoration import estimate_noise_level

    return f"{estimate_noise_level(open_image(src)):.1f}, estimated"


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from .bench import METHODS, SETTINGS

    p = sub.add_parser("bench", help=SUMMARIES["bench"])
    p.add_argument("--data", required=True, help="folder of clean images; 'samples' for the bundled ones")
    p.add_argument("--out", required=True, help="output folder: results.csv, summary.md, chart.html, chart.png")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped model)")
    p.add_argument("--settings", default=None, help="comma-separated, from: " + ",".join(SETTINGS) + " (default: all but real; a folder of real pairs: real)")
    p.add_argument("--methods", default=None, help="comma-separated, from: " + ",".join(METHODS) + " (default: all but model_x8)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (sorted by path)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="device for the model")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows already measured in --out (same seed and data; model rows only for the same checkpoint)")
    p.add_argument("--no-progress", action="store_true")


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import METHODS, SETTINGS, parse_names, run_benchmark
    from .samples import sample_image_dir

    data = sample_image_dir() if args.data == "samples" else Path(args.data)
    out = Path(args.out)
    run_benchmark(
        data, out, checkpoint=args.checkpoint, settings=parse_names(args.settings, SETTINGS, "setting") if args.settings else None,
        methods=parse_names(args.methods, METHODS, "method") if args.methods else None, limit=args.limit,
        seed=args.seed, device=args.device, progress=not args.no_progress, resume=args.resume,
    )
    print((out / "summary.md").read_text())
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help=SUMMARIES["export"])
    p.add_argument("checkpoint", help="checkpoint file ('default': the shipped model)")
    p.add_argument("output", help="output .onnx file")
    p.add_argument("--dynamo", action="store_true", help="use the torch.export-based exporter (slower) instead of TorchScript")


def _run_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    ckpt = None if args.checkpoint == "default" else args.checkpoint
    out = export_onnx(ckpt, args.output, exporter="dynamo" if args.dynamo else "torchscript")
    print(f"wrote {out}: input x (B, C, H, W) float32 in [0, 1], H and W padded to the multiple in its metadata; output y")
    return 0


def _add_space(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help=SUMMARIES["space"])
    p.add_argument("out_dir", help="folder to create (must be missing or empty)")
    p.add_argument("--checkpoint", default=None, metavar="CKPT|RUN_ID",
                   help="the Space's default model: a checkpoint file or a run id of the data root (default: the shipped model)")
    p.add_argument("--push", default=None, metavar="USER/SPACE", help="upload the folder to this Space (created if missing)")
    p.add_argument("--private", action="store_true", help="with --push: create the Space private")
    p.add_argument("--open", action="store_true", dest="open_space",
                   help="with --push: let every visitor start, stop and delete runs (by default a pushed Space gets a "
                        "random admin token as its DENOISE_ADMIN_TOKEN secret, printed once)")


def _run_space(args: argparse.Namespace) -> int:
    from .space import build_space, push_space

    out = build_space(args.out_dir, args.checkpoint)
    files = [p for p in out.rglob("*") if p.is_file()]
    print(f"wrote {out}: {len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.1f} MB")
    if args.open_space and not args.push:
        raise ValueError("--open applies to --push")
    if args.push:
        url, admin = push_space(out, args.push, private=args.private, open_space=args.open_space)
        print(f"pushed: {url}")
        if admin:
            print(f"admin token (shown once; it unlocks training and deleting runs on the Space): {admin}")
        else:
            print("open Space: every visitor can start, stop and delete runs (DENOISE_OPEN=1; push without --open "
                  "to lock it with an admin token)")
    else:
        print(f"upload it with: python -m denoise_core space {out} --push USER/SPACE   (or `hf upload --repo-type space`)")
    return 0


def _add_train_exposure(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-exposure", help=SUMMARIES["train-exposure"])
    p.add_argument("--data", required=True, help="folder of clean, well-exposed images")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--val-ratio", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)


def _run_train_exposure(args: argparse.Namespace) -> int:
    from .exposure import train_exposure

    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    scores = train_exposure(args.data, args.out, steps=args.steps, val_ratio=args.val_ratio, seed=args.seed)
    print(f"wrote {args.out}: held-out curve PSNR, low light {scores['low_light']:.2f} dB, "
          f"well exposed {scores['clean']:.2f} dB")
    return 0


COMMANDS = {"train": (_add_train, _run_train), "train-exposure": (_add_train_exposure, _run_train_exposure),
            "restore": (_add_restore, _run_restore), "bench": (_add_bench, _run_bench),
            "export": (_add_export, _run_export), "space": (_add_space, _run_space)}
SUMMARIES = {
    "train": "train a restoration model on a folder of clean images",
    "train-exposure": "train the exposure head that correct_tone uses (a global curve per photo)",
    "restore": "restore an image file, or every image in a folder",
    "bench": "score the model and classical restorers on seeded degradations of clean images",
    "export": "export a checkpoint's model to ONNX (dynamic batch, height and width)",
    "space": "write a self-contained Hugging Face Space folder (and optionally upload it)",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s options are built (all when None), since some need heavy imports."""
    parser = argparse.ArgumentParser(prog="python -m denoise_core", description="Denoise Studio command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, _) in COMMANDS.items():
        if command in (None, name):
            add(sub)
        else:
            sub.add_parser(name, help=SUMMARIES[name])
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(chosen if chosen in COMMANDS else None).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return COMMANDS[args.command][1](args)
    # CheckpointError, DatasetError and ImageError are ValueErrors: caught here without importing their modules.
    except (FileExistsError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # a broken or partial install: say which package, not where it failed
        print(f"error: a required package does not import ({exc}); reinstall with `pip install -r requirements.txt`",
              file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory; try a smaller image or a smaller --tile", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied, ...: the OS's own words, with the file
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
