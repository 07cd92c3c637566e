"""Model cards (``MODEL_CARD.md``) generated from a checkpoint and the run that made it.

The card uses the Hugging Face Hub's model-card front matter (license, tags, datasets,
metrics), so it renders there. Everything in it is read from files: the checkpoint
(architecture, epoch, degradations, validation metrics), the run folder when there is one
(``config.json``: data, options; ``events.jsonl``: image counts, device, steps, wall time,
per-degradation validation, the adaptive weights), and benchmark outputs whose
``bench.json`` names this checkpoint's SHA-256.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .checkpoint import CheckpointError, atomic_write_bytes, file_sha256, load_checkpoint
from .runfiles import BENCH_DIR, CONFIG_FILE, EVENTS_FILE, MODEL_CARD_FILE

log = logging.getLogger(__name__)

CODE_LICENSE = "apache-2.0"
# What the shipped default was trained on; a user's run says its own folder instead.
BSDS_NOTE = ("CBSD432 is the 432 colour BSDS500 images outside CBSD68 (Berkeley Segmentation Dataset, © UC Berkeley, "
             "for non-commercial research and educational use).")


def _events(run: Path) -> list[dict]:
    from .history import read_events

    return read_events(run) if (run / EVENTS_FILE).is_file() else []


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def benchmark_tables(checkpoint: Path, places: list[Path]) -> list[tuple[str, str]]:
    """(title, Markdown table) for each benchmark run on ``checkpoint``: a folder holding ``bench.json`` and
    ``results.csv`` (what ``bench --out`` writes), or a pair ``NAME-bench.json`` / ``NAME-results.csv``."""
    import pandas as pd

    from .checkpoint import weights_sha256

    sha, model_sha = file_sha256(checkpoint), weights_sha256(checkpoint)
    found = []
    for place in places:
        pairs = [(place / "bench.json", place / "results.csv")] if (place / "bench.json").is_file() else [
            (j, j.with_name(j.name.replace("-bench.json", "-results.csv"))) for j in sorted(place.glob("*-bench.json"))]
        for identity, results in pairs:
            meta = _read_json(identity)
            same = meta.get("checkpoint_sha256") == sha or meta.get("weights_sha256") == model_sha
            if not same or not results.is_file():
                continue
            df = pd.read_csv(results)
            from .bench import SETTINGS

            rows = df[df.method.isin(["identity", "model"])].groupby(["setting", "method"]).psnr.mean().unstack("method")
            rows = rows.reindex([s for s in SETTINGS if s in rows.index] + [s for s in rows.index if s not in SETTINGS])
            count = df[df.method == "model"].groupby("setting").image.nunique()
            lines = ["| setting | images | input PSNR (dB) | restored PSNR (dB) |", "|---|---:|---:|---:|"]
            small = []
            for setting, row in rows.iterrows():
                if pd.isna(row.get("model")):
                    continue
                inp = "—" if pd.isna(row.get("identity")) else f"{row['identity']:.2f}"
                lines.append(f"| {setting} | {count.get(setting, 0)} | {inp} | {row['model']:.2f} |")
                if not pd.isna(row.get("identity")) and row["model"] - row["identity"] < 0.1:
                    small.append(f"{setting} ({row['model'] - row['identity']:+.2f} dB)")
            if small:
                lines += ["", "Where it barely helps or does harm (under +0.1 dB over the input): " + ", ".join(small) + "."]
            found.append((f"{Path(meta.get('data', '?')).name} (seed {meta.get('seed', 0)})", "\n".join(lines)))
    return found


def model_card(
    checkpoint: str | Path,
    run: str | Path | None = None,
    *,
    title: str | None = None,
    bench_places: list[Path] | None = None,
    data_note: str | None = None,
) -> str:
    """The Markdown model card of ``checkpoint`` (trained in the run folder ``run``, when given)."""
    from .model import build_model, count_parameters

    checkpoint = Path(checkpoint)
    try:
        state = load_checkpoint(checkpoint)
    except CheckpointError:
        raise
    cfg = state.get("model_config") or {}
    params = count_parameters(build_model(cfg)) if cfg else 0
    run = Path(run) if run else None
    config = _read_json(run / CONFIG_FILE) if run else {}
    events = _events(run) if run else []
    started = next((e for e in events if e.get("type") == "status" and e.get("status") in ("started", "resumed")), {})
    epochs = [e for e in events if e.get("type") == "epoch"]
    last = epochs[-1] if epochs else {}
    best_epoch = state.get("epoch")
    best = next((e for e in epochs if e.get("epoch") == best_epoch), last)
    degradations = state.get("degradations") or config.get("degradations") or []
    data_dir = config.get("image_dir")
    data_name = Path(data_dir).name if data_dir else "unknown"
    wall = (last.get("time", 0) - events[0].get("time", 0)) if epochs and events else None
    steps = sum(int(e.get("steps", 0)) for e in epochs) or None
    weights = last.get("next_weights") or last.get("weights") or {}
    title = title or f"Denoise Studio model: {run.name if run else checkpoint.stem}"
    tags = ["image-restoration", "image-denoising", "deblurring", "jpeg-artifact-removal", "u-net", "denoise-studio"]

    out = ["---", f"license: {CODE_LICENSE}", "library_name: pytorch", "pipeline_tag: image-to-image", "tags:"]
    out += [f"- {t}" for t in tags]
    out += ["datasets:", f"- {data_name}", "metrics:", "- psnr", "- ssim", "---", "", f"# {title}", ""]
    mapped = bool(cfg.get("noise_map"))
    told = ("It is told the photo's noise level (a noise-level map as an extra input, as FFDNet): estimated from the "
            "photo by default, or set by the user (`--noise-level N`, `restore(..., noise_level=N)`) to remove more or "
            "less. " if mapped else "")
    out += ["An all-in-one restoration model (one network for every degradation below, not told which one it "
            "faces), trained with Denoise Studio on synthetic degradations of clean photos. " + told +
            "Restore with `python -m denoise_core restore IN OUT --checkpoint THIS_FILE` or "
            "`denoise_core.restore(image, THIS_FILE)`.", ""]
    out += ["## Model", "", "| item | value |", "|---|---|"]
    block = {"naf": "NAF blocks (depthwise conv, simple gate, channel attention)", "res": "residual 3×3-conv blocks"}
    out.append(f"| architecture | U-Net with skip connections, {block.get(cfg.get('block'), cfg.get('block', '?'))}, "
               f"width {cfg.get('width')}, depth {cfg.get('depth')}, encoder blocks {cfg.get('enc_blocks')}, middle "
               f"{cfg.get('middle_blocks')}, decoder {cfg.get('dec_blocks')}, {cfg.get('stem', 'conv')} stem |")
    out.append(f"| parameters | {params:,} |")
    out.append(f"| channels | {cfg.get('channels', 3)}" + (" in and out, plus a noise-level map in" if mapped else "") + " |")
    out.append(f"| file | `{checkpoint.name}`, {checkpoint.stat().st_size / 1e6:.1f} MB, SHA-256 `{file_sha256(checkpoint)[:16]}…` |")
    out += ["", "## Training", "", "| item | value |", "|---|---|"]
    if data_dir:
        split = (f"{started.get('train_images')} training / {started.get('val_images')} validation images, split by "
                 f"image (seed {config.get('seed', 0)})") if started else "?"
        out.append(f"| data | `{data_name}` ({split}) |")
    if config:
        out.append(f"| recipe | batch {config.get('batch_size')} × {config.get('patch_size')} px crops, AdamW at "
                   f"{config.get('learning_rate')} with warm-up and cosine decay, amp {config.get('amp')}, loss "
                   f"{config.get('alpha')}·MSE + {1 - float(config.get('alpha', 0.95)):.2f}·(1 − SSIM)"
                   f"{', log-normalised' if config.get('loss_norm') == 'log' else ''} |")
        init = config.get("init_from")
        out.append("| started from | " + ("scratch (random weights)" if not init else
                   "the shipped default model, fine-tuned" if init == "default" else
                   f"`{Path(init).name}`, fine-tuned") + " |")
        extras = [f"{k} {config[k]}" for k in ("sensor_noise", "clean_fraction", "rich_colour", "ema", "prior")
                  if config.get(k)]
        if extras:
            out.append(f"| options | {', '.join(extras)} |")
    if epochs:
        out.append(f"| schedule | {last.get('epoch')} of {config.get('epochs', '?')} epochs, {steps:,} steps"
                   + (f", {wall / 3600:.1f} h wall time" if wall else "") + f", on {started.get('device', '?')} |")
    averaged = state.get("averaged") or {}
    this = f"epoch {best_epoch}" + (" (lowest validation loss)" if run else "")
    if averaged:
        alpha = float(averaged["alpha"])
        this = (f"{alpha:g} × {this} + {1 - alpha:g} × the model it started from (weight averaging, WiSE-FT; "
                f"`training/average.py`)")
    out.append(f"| this checkpoint | {this} |")
    out += ["", "## Degradations", "",
            "Sampled per training crop with adaptive weights that move toward the degradations the model finds "
            "hardest; the weights at the end of training:", "",
            "| degradation | final weight |", "|---|---:|"]
    for name in degradations:
        w = weights.get(name)
        out.append(f"| {name} | {'—' if w is None else f'{w:.3f}'} |")
    per = averaged.get("per_degradation") or best.get("per_degradation") or {}
    metrics = state.get("metrics") or {}
    out += ["", "## Validation (" + ("the averaged weights" if averaged else f"epoch {best_epoch}") + ")", ""]
    if metrics:
        out.append(f"Overall: loss {metrics.get('val_loss', float('nan')):.4f}, PSNR {metrics.get('val_psnr', float('nan')):.2f} dB, "
                   f"SSIM {metrics.get('val_ssim', float('nan')):.4f} on the held-out images' fixed crops.")
        out.append("")
    if per:
        out += ["| degradation | input PSNR (dB) | restored PSNR (dB) | restored SSIM |", "|---|---:|---:|---:|"]
        for name, m in per.items():
            inp = "—" if m.get("input_psnr", 0) >= 99 else f"{m.get('input_psnr', float('nan')):.2f}"
            out.append(f"| {name} | {inp} | {m.get('val_psnr', float('nan')):.2f} | {m.get('val_ssim', float('nan')):.4f} |")
    places = list(bench_places or [])
    if run and (run / BENCH_DIR).is_dir():
        places += [p for p in sorted((run / BENCH_DIR).iterdir()) if p.is_dir()]
    tables = benchmark_tables(checkpoint, places)
    if tables:
        how = "its noise level estimated from each input" if mapped else "the model blind"
        out += ["", "## Benchmark", "", f"`python -m denoise_core bench`, {how}, tones kept (mean PSNR over images):"]
        for name, table in tables:
            out += ["", f"**{name}**", "", table]
    out += ["", "## Intended use and limits", "",
            "- For photos with the damage it was trained on: " + (", ".join(d.replace("_", " ") for d in degradations) or "?")
            + (". It is told how much noise there is (estimated unless set), not the kind of damage."
               if mapped else ". It is blind: it is not told the kind or strength of the damage, and a specialised "
               "denoiser told the noise level (BM3D, FFDNet) can do better on pure noise."),
            ("- Trained on synthetic degradations, camera noise among them (unprocessed to raw, Bayer shot and read "
             "noise, demosaicked and processed back, at times enlarged or JPEG-compressed); real motion blur and "
             "other codecs differ from them. Real-noise results are in the project's docs/results."
             if "camera_noise" in degradations else
             "- Trained on synthetic degradations; real camera noise, real motion blur and heavy compression by other "
             "codecs differ from them, and results there are not measured."),
            "- Tone and colour: by default `restore` keeps the photo's global tone and colour and removes only the "
            "damage; with `correct_tone=True` (the studio's \"Fix exposure and colour\") one global curve per photo "
            "(per-channel gains and a gamma, estimated from its pixel statistics by `denoise_core.exposure`) is "
            "applied to the photo before the restore; it is meant for under-exposed photos and moves well-exposed "
            "ones a little.",
            "- Not for forensic, medical or scientific measurement: restored detail is a model's estimate.",
            "", "## Licences", "",
            "- Code and weights: Apache-2.0 (the project's `LICENSE`).",
            f"- Training data: {data_note or f'the images in `{data_name}`; their own terms apply to this model.'}", ""]
    return "\n".join(out)


def write_model_card(run: str | Path, checkpoint: str | Path | None = None, **kwargs) -> Path:
    """Write ``<run>/MODEL_CARD.md`` for the run's best checkpoint (or ``checkpoint``), atomically."""
    from .runfiles import BEST_FILE

    run = Path(run)
    path = run / MODEL_CARD_FILE
    atomic_write_bytes(path, model_card(checkpoint or run / BEST_FILE, run, **kwargs).encode())
    return path


__all__ = ["BSDS_NOTE", "CODE_LICENSE", "benchmark_tables", "model_card", "write_model_card"]
