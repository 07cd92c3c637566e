"""The Gradio restore UI: upload a degraded photo and get it restored, or degrade a clean one and measure.

`build_demo()` is a factory: importing this module loads no model and reads no
file. Both tabs restore with the library's default path (`denoise_core.inference.load_runner`:
bf16 PyTorch on a CPU with native bf16, else onnxruntime), loaded on the first request and cached.

Limits for a public deployment (environment variables change them):

======================  =========================  ==========================================
constant                env var                    meaning
======================  =========================  ==========================================
MAX_FILE_SIZE           DENOISE_UI_MAX_FILE_SIZE   largest upload Gradio accepts ("50mb")
MAX_RESTORE_PIXELS      DENOISE_UI_MAX_PIXELS      largest image the Restore tab restores
                                                   (16 MP); larger ones are refused with a
                                                   message (the CLI has no such cap)
MAX_TRY_PIXELS          (none)                     the Try tab shrinks clean images to this
                                                   (1 MP) before degrading them
CONCURRENCY_LIMIT       DENOISE_UI_CONCURRENCY     requests computed at the same time (2): each
                                                   holds at most a few full-size float copies of
                                                   its image, so memory stays bounded
QUEUE_SIZE              DENOISE_UI_QUEUE_SIZE      requests waiting beyond those (64); more get
                                                   Gradio's "queue is full" message
MAX_FILES               DENOISE_UI_MAX_FILES       photos in one Restore request (20); each
                                                   within MAX_RESTORE_PIXELS
======================  =========================  ==========================================

Images larger than the tile size (512 px) are restored in overlapping tiles.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from denoise_core import degradations

from . import workspace
from denoise_core.checkpoint import CheckpointError, load_checkpoint
from denoise_core.images import ImageError, open_image, output_suffix, save_image, to_float_rgb
from denoise_core.losses import psnr_per_image, ssim_per_image
from denoise_core.inference import load_runner
from denoise_core.noise_level import MAX_LEVEL, parse_level
from denoise_core.restoration import (DEFAULT_CHECKPOINT, DEFAULT_TILE, check_strength, estimate_noise_level, restore,
                                      restore_rgb)
from denoise_core.samples import sample_image_dir

log = logging.getLogger(__name__)

MAX_FILE_SIZE = os.environ.get("DENOISE_UI_MAX_FILE_SIZE", "50mb")
MAX_RESTORE_PIXELS = int(os.environ.get("DENOISE_UI_MAX_PIXELS", 16_000_000))
MAX_TRY_PIXELS = 1_000_000
CONCURRENCY_LIMIT = int(os.environ.get("DENOISE_UI_CONCURRENCY", 2))
QUEUE_SIZE = int(os.environ.get("DENOISE_UI_QUEUE_SIZE", 64))
MAX_FILES = int(os.environ.get("DENOISE_UI_MAX_FILES", 20))
FORMAT_CHOICES = [("PNG (lossless)", "png"), ("Same as each upload", "keep")]

DEFAULT_ID = "default"
NO_MODEL_MESSAGE = "No model yet: train one on the Train page."
DOWNLOAD_MAX_AGE_S = 3600


# --- checkpoints -------------------------------------------------------------------------------

def _run_checkpoint(root: Path, run_id: str) -> Path | None:
    """``<root>/runs/<run_id>/best.pt`` if it exists and resolves (symlinks followed) inside the data root."""
    try:
        path = workspace.safe_path(root, workspace.RUNS, workspace.check_name(run_id, "run id"), workspace.BEST_FILE)
    except workspace.WorkspaceError:
        return None
    return path if path.is_file() else None


def checkpoint_choices(root: Path | None = None) -> list[tuple[str, str]]:
    """(label, id) for the shipped default (when present) and every run's best.pt, newest first.

    The id is ``"default"`` or a run id; `resolve_checkpoint` turns it back into a file.
    """
    root = workspace.data_root(root)
    choices = []
    for label, path in workspace.list_checkpoints(root):
        if path == DEFAULT_CHECKPOINT:
            choices.append(("Shipped default model", DEFAULT_ID))
        elif _run_checkpoint(root, path.parent.name) is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
            choices.append((f"Run {path.parent.name} (best, {stamp})", path.parent.name))
    return choices


def resolve_checkpoint(choice: str | None, root: Path | None = None) -> Path:
    """The checkpoint file for a dropdown id; raises gr.Error with a message when there is none."""
    if not choice:
        raise gr.Error(NO_MODEL_MESSAGE)
    if choice == DEFAULT_ID:
        if not DEFAULT_CHECKPOINT.is_file():
            raise gr.Error(f"The shipped default model is not installed. {NO_MODEL_MESSAGE}")
        return DEFAULT_CHECKPOINT
    path = _run_checkpoint(workspace.data_root(root), str(choice))
    if path is None:
        raise gr.Error(f"No checkpoint for run {str(choice)[:80]!r}: it has no best.pt yet, or was deleted.")
    return path


def _model_status(choices: list[tuple[str, str]], selected: str | None = None) -> str:
    """One line saying which model restores, and why, for the selected id (default: the first choice)."""
    if not choices:
        return f"**{NO_MODEL_MESSAGE}**"
    selected = selected if selected is not None else choices[0][1]
    missing = "" if choices[0][1] == DEFAULT_ID else " (the shipped default model is not installed)"
    if selected == DEFAULT_ID:
        return "Restoring with the shipped default model; every run's best checkpoint is listed too." + _trained_for(DEFAULT_CHECKPOINT)
    path = _run_checkpoint(workspace.data_root(), str(selected))
    return f"Restoring with the best checkpoint of run **{selected}**{missing}." + (_trained_for(path) if path else "")


def _trained_for(path: Path) -> str:
    """' Trained for: <degradations> (epoch N).' from the checkpoint's own record; '' when unreadable."""
    try:
        return _trained_for_cached(str(path), path.stat().st_mtime_ns)
    except OSError:
        return ""


@functools.lru_cache(maxsize=16)
def _trained_for_cached(path: str, mtime_ns: int) -> str:
    try:
        state = load_checkpoint(path)
    except CheckpointError:
        return ""
    names = [str(n).replace("_", " ") for n in state.get("degradations") or []]
    if not names:
        return ""
    epoch = f" (epoch {state['epoch']})" if "epoch" in state else ""
    return f" Trained for: {', '.join(names)}{epoch}."


# --- image helpers -----------------------------------------------------------------------------

def _decode(path: str | None, max_pixels: int, what: str) -> Image.Image:
    if not path:
        raise gr.Error(f"Upload {what} first.")
    try:
        return open_image(path, max_pixels=max_pixels)
    except ImageError as exc:
        # The message names Gradio's temp file; show the user the bare reason.
        msg = str(exc).split(": ", 1)[-1]
        if max_pixels == MAX_RESTORE_PIXELS:  # the cap that applied is this UI's own
            msg = msg.replace("DENOISE_MAX_PIXELS", "DENOISE_UI_MAX_PIXELS")
        raise gr.Error(f"Cannot use this file: {msg}") from exc


def _for_display(img: Image.Image) -> Image.Image:
    """8-bit RGB or RGBA for the browser (the PNG download keeps the full mode)."""
    if img.mode in ("RGB", "RGBA"):
        return img
    if img.mode.startswith("I") or img.mode == "F":
        rgb, _ = to_float_rgb(img)
        return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")
    return img.convert("RGBA" if img.mode in ("LA", "PA", "P") else "RGB")


def _download_dir() -> Path:
    """A fresh private folder for one request's download, after pruning old ones."""
    parent = Path(tempfile.gettempdir()) / "denoise-studio-downloads"
    parent.mkdir(exist_ok=True)
    cutoff = time.time() - DOWNLOAD_MAX_AGE_S
    for old in parent.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=parent))


def _safe_stem(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60].strip("._") or "image"


def _download_name(src: str, fmt: str, taken: set[str]) -> str:
    """``<stem>_restored.<ext>``: PNG, or the upload's own format when asked and writable; unique within ``taken``."""
    ext = output_suffix(src, keep=fmt == "keep")
    stem, n = f"{_safe_stem(Path(src).stem)}_restored", 1
    name = stem + ext
    while name in taken:
        n += 1
        name = f"{stem}_{n}{ext}"
    taken.add(name)
    return name


def _restore_image(img: Image.Image, checkpoint: Path, ensemble: bool = False, correct_tone: bool = False,
                   strength: float = 1.0, noise_level: float | str = "auto") -> Image.Image:
    try:
        return restore(img, checkpoint, device="auto", tile=DEFAULT_TILE, ensemble=ensemble, correct_tone=correct_tone,
                       strength=strength, noise_level=noise_level)
    except CheckpointError as exc:
        raise gr.Error(f"The checkpoint cannot be used: {exc}") from exc
    except torch.OutOfMemoryError as exc:
        raise gr.Error("Out of memory restoring this image; try a smaller one.") from exc


# --- the two tabs ------------------------------------------------------------------------------

TONE_DEGRADATIONS = {"low_light", "overexposure", "color_cast"}


def _upload_paths(paths) -> list[str]:
    """The Restore tab's upload as a list of paths (one file or several)."""
    if not paths:
        return []
    items = paths if isinstance(paths, (list, tuple)) else [paths]
    return [str(getattr(p, "name", p)) for p in items if p]


def estimate_upload(paths):
    """Restore tab, on upload: the first photo's estimated noise level -> (the level slider, set to it; the text
    beside it). Run outside the queue: queued, a Restore clicked while it ran waited for minutes (Gradio 6, seen
    in the browser test)."""
    sources = _upload_paths(paths)
    if not sources:
        return gr.Slider(), "Denoise level: **auto** (estimated on each photo)."
    try:
        level = estimate_noise_level(_decode(sources[0], MAX_RESTORE_PIXELS, "a degraded photo"))
    except gr.Error:
        return gr.Slider(), "Denoise level: **auto**."
    return (gr.Slider(value=round(level, 1)),
            f"Estimated noise level of {Path(sources[0]).name}: **{level:.1f}** (0-255 scale).")


def restore_upload(paths, choice: str | None, best: bool = False, fix_tone: bool = False, strength: float = 1.0,
                   fmt: str = "png", level_auto: bool = True, level: float | None = None):
    """Restore tab: one or several uploads -> (before/after of the first, download, status text).

    The download is the restored photo (with the upload's EXIF, ICC profile and DPI), or a zip
    of all of them when several were sent; ``fmt``: ``png`` or ``keep`` (each upload's own format).
    ``best``: the self-ensemble (8 flipped/rotated passes averaged, `denoise_core.restoration.restore_tensor`);
    ``fix_tone``: let the model correct exposure and colour too (`restore`'s ``correct_tone``);
    ``strength``: 0 (the photo unchanged) to 1 (the full restore);
    ``level_auto``: tell the model each photo's estimated noise level, else ``level`` (a sigma, 0-255 scale).
    A file that cannot be read is reported in the text and the others are restored; when the
    only file fails, the error says why.
    """
    checkpoint = resolve_checkpoint(choice)
    sources = _upload_paths(paths)
    if not sources:
        raise gr.Error("Upload a degraded photo first.")
    if len(sources) > MAX_FILES:
        raise gr.Error(f"{len(sources)} photos sent; at most {MAX_FILES} at once (set DENOISE_UI_MAX_FILES to change it).")
    try:
        strength = check_strength(1.0 if strength is None else strength)
        noise_level = "auto" if level_auto in (None, True) or level is None else float(level)
        parse_level(noise_level)
    except ValueError as exc:
        raise gr.Error(str(exc).capitalize() + ".") from exc
    fmt = fmt if fmt in ("png", "keep") else "png"
    folder = _download_dir()
    taken: set[str] = set()
    written: list[Path] = []
    failed: list[str] = []
    first = None
    start = time.perf_counter()
    for src in sources:
        try:
            img = _decode(src, MAX_RESTORE_PIXELS, "a degraded photo")
        except gr.Error as exc:
            if len(sources) == 1:
                raise
            failed.append(f"{Path(src).name} ({str(exc.message).removeprefix('Cannot use this file: ')})")
            continue
        # Auto is this photo's estimate, passed on as a number: the same restore, and the note can say it.
        level = estimate_noise_level(img) if noise_level == "auto" else float(noise_level)
        out = _restore_image(img, checkpoint, ensemble=bool(best), correct_tone=bool(fix_tone), strength=strength,
                             noise_level=level)
        written.append(save_image(out, folder / _download_name(src, fmt, taken)))
        if first is None:
            first = (img, out)
            told = f"noise level {level:.1f} estimated" if noise_level == "auto" else f"noise level {level:g} as set"
    seconds = time.perf_counter() - start
    if not written:
        raise gr.Error("None of the photos could be restored: " + "; ".join(failed))
    img, out = first
    # The slider gets files of this request's own folder, which Gradio copies into its cache with
    # a staged write. Handed PIL images, it rewrites one cache file per distinct picture in place,
    # and of 20 concurrent restores of the same photo some download that file half-written.
    before, after = folder / "before.png", folder / "after.png"
    _for_display(img).save(before)
    _for_display(out).save(after)
    if len(written) == 1:
        download = written[0]
    else:
        download = folder / f"restored_{len(written)}_photos.zip"
        with zipfile.ZipFile(download, "w", zipfile.ZIP_STORED) as z:  # the photos are compressed already
            for path in written:
                z.write(path, path.name)
    w, h = img.size
    if len(sources) == 1:
        note = f"Restored {w}x{h} ({img.mode}) in {seconds:.1f} s"
    else:
        note = f"Restored {len(written)} of {len(sources)} photos in {seconds:.1f} s (shown: the first, {w}x{h})"
    note += f", {told}"
    if best:
        note += ", averaging 8 flipped and rotated passes"
    note += ", exposure and colour corrected" if fix_tone else ", tones and colours kept"
    if strength < 1.0:
        note += f", at strength {strength:.2f}"
    if max(w, h) > DEFAULT_TILE:
        note += f", in overlapping {DEFAULT_TILE}px tiles"
    kind = "a lossless PNG in the original mode" if fmt == "png" else "in each upload's own format"
    note += f". The download{' (a zip)' if len(written) > 1 else ''} is {kind}, with the photo's EXIF, colour profile and DPI."
    if failed:
        note += " Not restored: " + "; ".join(failed) + "."
    return (str(before), str(after)), str(download), note


def _sample_paths() -> dict[str, Path]:
    folder = sample_image_dir()
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".jpeg")}


def _shrink(img: Image.Image) -> tuple[Image.Image, str]:
    w, h = img.size
    if w * h <= MAX_TRY_PIXELS:
        return img, ""
    scale = (MAX_TRY_PIXELS / (w * h)) ** 0.5
    small = img.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.LANCZOS)
    return small, f" Resized from {w}x{h} to {small.width}x{small.height} for this demo."


def degrade_and_restore(path: str | None, sample: str | None, name: str, severity: float, seed: float, choice: str | None):
    """Try tab: clean -> degraded (seeded) -> restored, with PSNR/SSIM of both against the clean image."""
    checkpoint = resolve_checkpoint(choice)
    if name not in degradations.REGISTRY:
        raise gr.Error(f"Unknown degradation {str(name)[:40]!r}.")
    if path:
        img = _decode(path, MAX_RESTORE_PIXELS, "a clean image")
    else:
        samples = _sample_paths()
        if sample not in samples:
            raise gr.Error("Upload a clean image or pick one of the samples.")
        img = open_image(samples[sample])
    img, note = _shrink(img)
    rgb, alpha = to_float_rgb(img)
    if alpha is not None:  # composite on white: the model restores colour only
        rgb = rgb * alpha[..., None] + (1.0 - alpha[..., None])
    if min(rgb.shape[:2]) < 3:
        raise gr.Error("The image is too small to measure SSIM (needs at least 3x3 pixels).")
    clean = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    generator = torch.Generator().manual_seed(int(seed))
    degraded = degradations.apply(name, clean, float(np.clip(severity, 0.0, 1.0)), generator)
    try:
        run = load_runner(checkpoint, "auto")  # the library's default backend
    except CheckpointError as exc:
        raise gr.Error(f"The checkpoint cannot be used: {exc}") from exc
    # A tone degradation is there to be corrected; for the others the Restore tab's default applies.
    fix_tone = name in TONE_DEGRADATIONS
    restored = restore_rgb(run, degraded, correct_tone=fix_tone)
    if fix_tone:
        note = " Exposure and colour correction on, as for a photo with this problem." + note
    rows = []
    for label, y in (("degraded", degraded), ("restored", restored)):
        rows.append([label, round(float(psnr_per_image(y, clean)[0]), 2), round(float(ssim_per_image(y, clean)[0]), 4)])
    gain = rows[1][1] - rows[0][1]
    status = f"{name} at severity {severity:.2f}, seed {int(seed)}: restoring changed PSNR by {gain:+.2f} dB.{note}"

    def to_pil(t: torch.Tensor) -> Image.Image:
        return Image.fromarray((t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), "RGB")

    table = {"headers": ["image", "PSNR (dB)", "SSIM"], "data": rows}
    return to_pil(clean), to_pil(degraded), to_pil(restored), table, status


# --- the Blocks --------------------------------------------------------------------------------

def _refresh_models():
    choices = checkpoint_choices()
    value = choices[0][1] if choices else None
    return gr.Dropdown(choices=choices, value=value), _model_status(choices)


def build_demo(title: str = "Denoise Studio: restore") -> gr.Blocks:
    """The Gradio UI (queue configured). Mount it with ``gr.mount_gradio_app(app, demo, path, max_file_size=MAX_FILE_SIZE)``."""
    choices = checkpoint_choices()
    samples = list(_sample_paths())
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        with gr.Row():
            model = gr.Dropdown(
                elem_id="model-choice",
                choices=choices, value=choices[0][1] if choices else None, label="Model",
                info="The shipped default, or the best checkpoint of a training run.",
                allow_custom_value=True,  # ids are checked by resolve_checkpoint, so runs made later also work
                scale=4,
            )
            refresh = gr.Button("Refresh models", scale=1, size="sm")
        status = gr.Markdown(_model_status(choices), elem_id="model-status")

        with gr.Tab("Restore"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Degraded photos (one or several)", file_types=["image"], type="filepath",
                                     file_count="multiple", elem_id="restore-upload")
                    strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength", elem_id="restore-strength",
                                         info="0 keeps the photo as it is, 1 is the full restore; in between mixes the two.")
                    level_auto = gr.Checkbox(True, label="Denoise level: auto", elem_id="restore-level-auto",
                                             info="On: each photo's own noise level, estimated. Off: the level below.")
                    level = gr.Slider(0.0, round(MAX_LEVEL * 255), value=10.0, step=0.5, label="Denoise level",
                                      elem_id="restore-level",
                                      info="The noise to remove, as a sigma on the 0-255 scale: higher removes more "
                                           "(and smooths more), 0 keeps grain. Moving it turns auto off.")
                    level_note = gr.Markdown("Denoise level: **auto** (estimated on each photo).", elem_id="restore-level-note")
                    fix_tone = gr.Checkbox(False, label="Fix exposure and colour", elem_id="restore-fix-tone",
                                           info="Off: the photo keeps its tones and colours and only the damage is "
                                                "removed. Tick it for dark, under-exposed (low-light) photos.")
                    best = gr.Checkbox(False, label="Best quality", elem_id="restore-best",
                                       info="Averages 8 flipped and rotated passes: about 8x slower, a little cleaner.")
                    fmt = gr.Radio(FORMAT_CHOICES, value="png", label="Download as", elem_id="restore-format",
                                   info="EXIF, colour profile and DPI are kept either way; several photos come as a zip.")
                    run = gr.Button("Restore", variant="primary", elem_id="restore-button")
                    download = gr.DownloadButton("Download restored", elem_id="restore-download")
                    note = gr.Markdown(elem_id="restore-note")
                with gr.Column(scale=2):
                    slider = gr.ImageSlider(
                        label="Before / after", type="pil", format="png", buttons=["download", "fullscreen"], elem_id="restore-slider",
                    )
            upload.change(estimate_upload, [upload], [level, level_note], api_visibility="private", queue=False)
            level.release(lambda: False, None, [level_auto], api_visibility="private", queue=False)
            run.click(restore_upload, [upload, model, best, fix_tone, strength, fmt, level_auto, level],
                      [slider, download, note], api_name="restore")

        with gr.Tab("Try a degradation"):
            with gr.Row():
                with gr.Column(scale=1):
                    clean_upload = gr.File(label="Clean image (optional)", file_types=["image"], type="filepath")
                    sample = gr.Dropdown(
                        choices=samples, value="astronaut.png" if "astronaut.png" in samples else (samples[0] if samples else None),
                        label="...or a sample image",
                    )
                    name = gr.Dropdown(choices=list(degradations.NAMES), value="gaussian_noise", label="Degradation")
                    severity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Severity")
                    seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, maximum=2**31 - 1)
                    go = gr.Button("Degrade and restore", variant="primary")
                with gr.Column(scale=3):
                    with gr.Row():
                        clean_out = gr.Image(label="Clean", format="png", type="pil")
                        degraded_out = gr.Image(label="Degraded", format="png", type="pil")
                        restored_out = gr.Image(label="Restored", format="png", type="pil")
                    metrics = gr.Dataframe(label="Against the clean image", headers=["image", "PSNR (dB)", "SSIM"], interactive=False)
                    try_note = gr.Markdown(elem_id="try-note")
            go.click(
                degrade_and_restore, [clean_upload, sample, name, severity, seed, model],
                [clean_out, degraded_out, restored_out, metrics, try_note], api_name="degrade_and_restore",
            )

        model.input(lambda c: _model_status(checkpoint_choices(), c), model, status, api_visibility="private", queue=False)
        refresh.click(_refresh_models, None, [model, status], api_visibility="private", queue=False)
        demo.load(_refresh_models, None, [model, status], api_visibility="private", queue=False)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    return demo


__all__ = [
    "CONCURRENCY_LIMIT", "MAX_FILE_SIZE", "MAX_FILES", "MAX_RESTORE_PIXELS", "QUEUE_SIZE", "NO_MODEL_MESSAGE",
    "build_demo", "checkpoint_choices", "degrade_and_restore", "resolve_checkpoint", "restore_upload",
]
