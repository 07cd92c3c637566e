"""The data root: where the studio keeps datasets and training runs.

Layout (the root comes from ``DENOISE_DATA_ROOT``, default ``./data``)::

    <root>/datasets/<name>/...     uploaded or copied image folders
    <root>/runs/<run_id>/          one training run (see `denoise_core.training`)

Every path the studio derives from user input goes through `safe_path`, which
refuses anything that resolves outside the root. The bundled sample images
(`denoise_core.samples.sample_image_dir`) are the one place outside the root
that is read, never written.

A run's state comes from its ``status.json`` (written by the trainer), its
``job.json`` (written by `studio.jobs` when it launches the process) and
whether the recorded process is still alive. A run whose files say "running"
while its process is gone is reported as ``died``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from denoise_core.images import IMAGE_EXTENSIONS
from denoise_core.history import epoch_records
from denoise_core.runfiles import BEST_FILE, CONFIG_FILE, JOB_FILE, LOG_FILE, STATUS_FILE

log = logging.getLogger(__name__)

DATA_ROOT_ENV = "DENOISE_DATA_ROOT"
DEFAULT_DATA_ROOT = "./data"
RUNS = "runs"
DATASETS = "datasets"
SAMPLES = "samples"  # dataset name of the bundled sample images

# Run ids and dataset names: one path component, no leading dot (temp folders use one).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

RUN_STATES = ("starting", "running", "stopped", "failed", "finished", "died", "unknown")


class WorkspaceError(ValueError):
    """A path or name that the studio refuses; the message says why."""


def data_root(root: str | Path | None = None) -> Path:
    """The absolute data root (``root``, else ``$DENOISE_DATA_ROOT``, else ``./data``), created with its subfolders."""
    path = Path(root if root is not None else os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT).expanduser().resolve()
    (path / RUNS).mkdir(parents=True, exist_ok=True)
    (path / DATASETS).mkdir(parents=True, exist_ok=True)
    return path


def safe_path(root: str | Path, *parts: str | Path) -> Path:
    """``root / parts`` resolved, refusing absolute parts and anything that lands outside ``root``.

    Symlinks are followed before the check, so a link inside the root that points
    out is refused too. The path need not exist.
    """
    base = Path(root).resolve()
    for part in parts:
        text = str(part)
        if not text or "\x00" in text:
            raise WorkspaceError(f"invalid path component {text!r}")
        if Path(text).is_absolute() or text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
            raise WorkspaceError(f"absolute paths are not allowed here: {text!r}")
    target = base.joinpath(*map(str, parts)).resolve()
    if target != base and not target.is_relative_to(base):
        shown = "/".join(map(str, parts))
        raise WorkspaceError(f"{shown!r} points outside the data root {base}")
    return target


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it is a plain folder name (letters, digits, ``._-``; no leading dot); else `WorkspaceError`."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise WorkspaceError(
            f"invalid {what} {name!r}: use 1-100 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
        )
    return name


def slugify(text: str, fallback: str = "dataset") -> str:
    """A `check_name`-safe version of free text (e.g. an uploaded file's name)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).stem).strip(".-_")[:60]
    return slug or fallback


def runs_dir(root: str | Path) -> Path:
    return safe_path(root, RUNS)


def datasets_dir(root: str | Path) -> Path:
    return safe_path(root, DATASETS)


def run_dir(root: str | Path, run_id: str) -> Path:
    """The folder of run ``run_id`` under ``<root>/runs`` (need not exist)."""
    return safe_path(root, RUNS, check_name(run_id, "run id"))


# -- datasets ---------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset the Train page can offer."""

    name: str
    path: Path
    images: int
    bundled: bool = False


def count_images(folder: Path) -> int:
    """Image files under ``folder`` by extension (recursive; not decoded)."""
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def list_datasets(root: str | Path, include_samples: bool = True) -> list[DatasetInfo]:
    """The bundled samples (first, read-only) and every folder under ``<root>/datasets``."""
    from denoise_core.samples import sample_image_dir

    found = []
    if include_samples:
        samples = sample_image_dir()
        found.append(DatasetInfo(SAMPLES, samples, count_images(samples), bundled=True))
    base = datasets_dir(root)
    for entry in sorted(base.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir() or not _NAME.match(entry.name):
            continue  # temp folders of an unpack in progress, stray files
        try:
            path = safe_path(root, DATASETS, entry.name)  # a symlink pointing out is skipped
        except WorkspaceError:
            log.warning("ignoring dataset %s: it points outside the data root", entry)
            continue
        found.append(DatasetInfo(entry.name, path, count_images(path)))
    return found


def dataset_path(root: str | Path, name: str) -> Path:
    """The folder of dataset ``name``: the bundled samples for ``"samples"``, else ``<root>/datasets/<name>``."""
    if name == SAMPLES:
        from denoise_core.samples import sample_image_dir

        return sample_image_dir()
    path = safe_path(root, DATASETS, check_name(name, "dataset name"))
    if not path.is_dir():
        raise WorkspaceError(f"dataset {name!r} does not exist in {datasets_dir(root)}")
    return path


def dataset_label(root: str | Path, image_dir: str | Path) -> str:
    """A short name for a run's image folder: ``samples``, the dataset name, or the folder name."""
    from denoise_core.samples import sample_image_dir

    path = Path(image_dir).resolve()
    if path == sample_image_dir().resolve():
        return SAMPLES
    base = datasets_dir(root)
    if path.is_relative_to(base) and path != base:
        return path.relative_to(base).parts[0]
    return path.name


# -- run state ----------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} when it is missing or unreadable (files are replaced atomically)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def process_alive(pid: int | None, not_after: float | None = None) -> bool:
    """Whether process ``pid`` exists and is not a zombie.

    ``not_after``: a time the process must already have existed at, which
    guards against a recycled PID belonging to some newer, unrelated process.
    """
    if not pid:
        return False
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if not_after is not None and proc.create_time() > not_after + 1.0:
            return False
        return True
    except (psutil.Error, ValueError, OSError):
        return False


@dataclass(frozen=True)
class RunState:
    """Where a run stands, from its files and process."""

    state: str  # one of RUN_STATES
    pid: int | None = None  # the process to signal: the launched job, else the trainer
    epoch: int = 0
    epochs: int | None = None
    error: str | None = None

    @property
    def active(self) -> bool:
        """True while a process works on the run (starting or running)."""
        return self.state in ("starting", "running")


def run_state(run: str | Path) -> RunState:
    """The state of the run in folder ``run``.

    ``starting``: a job was launched and the trainer has not reported yet;
    ``running``; ``stopped``; ``failed`` (with ``error``); ``finished``;
    ``died``: the files say running but no process is left (killed, crash,
    power loss) - it can be resumed; ``unknown``: no status and no job.
    """
    run = Path(run)
    status = read_json(run / STATUS_FILE)
    job = read_json(run / JOB_FILE)
    job_pid = job.get("pid")
    job_alive = process_alive(job_pid, job.get("started"))
    status_time = float(status.get("updated", 0.0))
    epoch, epochs = int(status.get("epoch", 0) or 0), status.get("epochs", job.get("epochs"))
    # A job launched after the last status write has not reported yet (or failed before it could).
    if job and float(job.get("started", 0.0)) > status_time:
        if job_alive:
            return RunState("starting", job_pid, epoch, epochs)
        if (run / "STOP").exists():
            return RunState("stopped", None, epoch, epochs)
        return RunState("failed", None, epoch, epochs, error=_early_error(run))
    if not status:
        return RunState("unknown")
    state = str(status.get("state", "unknown"))
    if state == "running":
        trainer_alive = process_alive(status.get("pid"), status_time)
        if trainer_alive or job_alive:
            return RunState("running", job_pid if job_alive else status.get("pid"), epoch, epochs)
        return RunState("died", None, epoch, epochs, error="the training process is gone (killed or crashed); resume it")
    return RunState(state if state in RUN_STATES else "unknown", None, epoch, epochs, error=status.get("error"))


def _early_error(run: Path) -> str:
    """The reason a job ended before the trainer wrote a status: the log's last error line."""
    lines = [line.strip() for line in log_tail(run, 40)]
    for line in reversed(lines):
        if line.startswith("error:") or re.match(r"^[\w.]+(Error|Exception)\b", line):
            return line
    return "the training process ended before training started" + (f": {lines[-1]}" if lines else "")


def log_tail(run: str | Path, n: int = 30, max_bytes: int = 256_000) -> list[str]:
    """The last ``n`` lines of the run's ``train.log`` (reads at most ``max_bytes`` from its end)."""
    path = Path(run) / LOG_FILE
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").replace("\r", "\n").splitlines()
    return [line for line in lines if line.strip()][-n:]


# -- runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs table."""

    run_id: str
    path: Path
    created: datetime
    dataset: str
    epochs_done: int
    epochs_total: int | None
    best_val_psnr: float | None
    best_val_ssim: float | None
    status: str
    error: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "run": self.run_id, "date": self.created.strftime("%Y-%m-%d %H:%M"), "dataset": self.dataset,
            "epochs": f"{self.epochs_done}/{self.epochs_total or '?'}",
            "best val PSNR (dB)": None if self.best_val_psnr is None else round(self.best_val_psnr, 2),
            "best val SSIM": None if self.best_val_ssim is None else round(self.best_val_ssim, 4),
            "status": self.status,
        }


def run_summary(root: str | Path, run: str | Path) -> RunSummary:
    """Summary of the run in folder ``run``: date, dataset, epochs, best validation figures, state."""
    run = Path(run)
    config = read_json(run / CONFIG_FILE)
    job = read_json(run / JOB_FILE)
    state = run_state(run)
    records = epoch_records(run)
    best = min(records, key=lambda r: r.get("val_loss", float("inf"))) if records else None
    started = job.get("created") or job.get("started")
    created = datetime.fromtimestamp(float(started)) if started else datetime.fromtimestamp(run.stat().st_mtime)
    image_dir = config.get("image_dir") or (job.get("params") or {}).get("image_dir")
    return RunSummary(
        run_id=run.name,
        path=run,
        created=created,
        dataset=dataset_label(root, image_dir) if image_dir else "?",
        epochs_done=records[-1]["epoch"] if records else 0,
        epochs_total=config.get("epochs") or state.epochs or (job.get("params") or {}).get("epochs"),
        best_val_psnr=best.get("val_psnr") if best else None,
        best_val_ssim=best.get("val_ssim") if best else None,
        status=state.state,
        error=state.error,
    )


def list_runs(root: str | Path) -> list[RunSummary]:
    """Every run folder under ``<root>/runs``, newest first."""
    base = runs_dir(root)
    runs = []
    for entry in base.iterdir():
        if not entry.is_dir() or not _NAME.match(entry.name) or entry.is_symlink():
            continue
        try:
            runs.append(run_summary(root, entry))
        except OSError as exc:  # a folder deleted while listing
            log.debug("skipping %s: %s", entry, exc)
    return sorted(runs, key=lambda r: (r.created, r.run_id), reverse=True)


def new_run_id(root: str | Path, dataset: str) -> str:
    """A fresh run id ``YYYYmmdd-HHMMSS-<dataset>`` (with a counter if taken)."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{slugify(dataset)}"[:90]
    run_id, n = stem, 1
    while run_dir(root, run_id).exists():
        n += 1
        run_id = f"{stem}-{n}"
    return run_id


def delete_run(root: str | Path, run_id: str) -> None:
    """Delete a run folder; refused while a process is working on it."""
    path = run_dir(root, run_id)
    if not path.is_dir():
        raise WorkspaceError(f"run {run_id!r} does not exist")
    state = run_state(path)
    if state.active:
        raise WorkspaceError(f"run {run_id!r} is {state.state}; stop it before deleting it")
    shutil.rmtree(path)
    log.info("deleted run %s", path)


# -- checkpoints for restoring --------------------------------------------------------


def list_checkpoints(root: str | Path) -> list[tuple[str, Path]]:
    """(label, path) of usable models: the shipped default (if present), then each run's best.pt, newest first."""
    from denoise_core.loading import DEFAULT_CHECKPOINT

    found = []
    if DEFAULT_CHECKPOINT.is_file():
        found.append(("shipped default model", DEFAULT_CHECKPOINT))
    runs = [p for p in runs_dir(root).iterdir() if p.is_dir() and not p.is_symlink() and (p / BEST_FILE).is_file()]
    for run in sorted(runs, key=lambda p: (p / BEST_FILE).stat().st_mtime, reverse=True):
        found.append((f"run {run.name} (best.pt)", run / BEST_FILE))
    return found


def restore_model(root: str | Path) -> tuple[str, Path] | None:
    """The model Restore uses by default: the shipped one, else the newest run's best.pt, else None."""
    found = list_checkpoints(root)
    return found[0] if found else None
