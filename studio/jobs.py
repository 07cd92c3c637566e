"""Training jobs: ``python -m denoise_core train`` as a separate OS process.

The process runs in its own session (``start_new_session=True``), writes its
output to ``<run>/train.log`` and its progress to the run folder, so it
outlives Streamlit reruns, browser refreshes and a restart of the server; any
page reattaches to it by reading the run folder.

One job at a time per data root: `start_job` and `resume_job` hold an OS file
lock (``<root>/.job.lock``) while they check for a running job, launch the
process and record it (``<root>/active_job.json`` and ``<run>/job.json``), so
two Starts pressed at the same moment start exactly one job.

With ``nproc > 1`` the job is launched through ``torch.distributed.run``
(``torchrun``), one process per GPU.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from denoise_core.checkpoint import atomic_write_json
from denoise_core.data import find_images
from denoise_core.history import append_event, epoch_records, read_events
from denoise_core.runfiles import CONFIG_FILE, STOP_FILE
from denoise_core.timing import Estimate, format_seconds
from denoise_core.training import TrainConfig
from .workspace import (
    JOB_FILE, LOG_FILE, SAMPLES, RunState, WorkspaceError, data_root, dataset_path, list_runs, log_tail, new_run_id,
    process_alive, read_json, run_dir, run_state,
)

log = logging.getLogger(__name__)

LOCK_FILE = ".job.lock"
ACTIVE_FILE = "active_job.json"
LOCK_TIMEOUT = 30.0  # seconds to wait for another Start to finish launching
DEFAULTS_ENV = "DENOISE_TRAIN_DEFAULTS"
STOP_GRACE = 60.0  # seconds between the STOP file and SIGTERM; the trainer checks STOP after every step
STOP_WATCH_MAX = 3600.0  # how long a stop without SIGTERM (grace=None) is watched
PACKAGE_PARENT = Path(__file__).resolve().parent.parent

__all__ = [
    "JobError", "JobRunning", "JobParams", "Progress", "active_job", "default_params", "estimate_note", "log_tail",
    "measure_estimate",
    "progress", "recorded_estimate", "resume_job", "start_job", "stop_job", "train_command", "wait_for", "write_job_config", "FORM_FIELDS",
]


class JobError(RuntimeError):
    """A job cannot be started, stopped or resumed; the message says why."""


class JobRunning(JobError):
    """Another job is already running in this data root; ``run_id`` names it."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"a training job is already running: {run_id}")
        self.run_id = run_id


# The TrainConfig fields the Train page sets; their types, defaults, labels, help and ranges are TrainConfig's.
FORM_FIELDS = ("epochs", "batch_size", "learning_rate", "val_ratio", "patch_size", "crops_per_image", "steps_per_epoch",
               "width", "depth", "block", "alpha", "degradations", "adaptive", "temperature", "floor", "sensor_noise",
               "init_from", "device", "seed", "num_workers")


class _JobParamsBase:
    """What the Train page asks for: `FORM_FIELDS` of `TrainConfig`, plus ``dataset`` (a name from
    `workspace.list_datasets`) and ``nproc`` (processes under torchrun; 1 runs the trainer directly).
    ``init_from`` is None or "default" (the shipped model: the only checkpoint the app offers, so a job
    never reads a path outside the data root)."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> JobParams:
        """Build from a dict, ignoring keys that are not parameters (e.g. from an older job.json)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def train_options(self) -> dict[str, Any]:
        """The `TrainConfig` fields this job sets."""
        return {k: v for k, v in self.to_dict().items() if k not in ("dataset", "nproc")}

    def validate(self) -> None:
        """Raise ValueError for an option the trainer would refuse, before any process starts."""
        TrainConfig(**self.train_options())  # raises ValueError naming the bad options
        if self.init_from not in (None, "default"):
            raise ValueError(f"init_from must be None or 'default', got {self.init_from!r}")
        if not 1 <= self.nproc <= 64:
            raise ValueError(f"nproc must be between 1 and 64, got {self.nproc}")
        if not self.degradations:
            raise ValueError("choose at least one degradation")


# Where the Train page's defaults differ from TrainConfig's: a job fine-tunes the shipped model unless asked to
# start from scratch, since on a CPU a few dozen photos and minutes cannot train a model that matches it
# (docs/results/fine-tune.md); the library's train() starts from scratch unless given init_from.
JOB_DEFAULTS = {"init_from": "default"}


def _job_fields() -> list:
    by_name = {f.name: f for f in fields(TrainConfig)}
    out: list = [("dataset", str, field(default=SAMPLES))]
    for name in FORM_FIELDS:
        f = by_name[name]
        default = (field(default=JOB_DEFAULTS[name]) if name in JOB_DEFAULTS
                   else field(default_factory=f.default_factory) if f.default_factory is not MISSING
                   else field(default=f.default))
        out.append((name, f.type, default))
    return out + [("nproc", int, field(default=1))]


JobParams = make_dataclass("JobParams", _job_fields(), bases=(_JobParamsBase,))
JobParams.__module__ = __name__


def default_params() -> JobParams:
    """`JobParams` defaults, overridden by the JSON object in ``$DENOISE_TRAIN_DEFAULTS``.

    Example: ``DENOISE_TRAIN_DEFAULTS='{"epochs": 5, "width": 16}'``. The Train
    page starts from these values (tests use it for tiny jobs; a CPU-only Space
    can use it for shorter default runs). Unknown keys or bad values raise ValueError.
    """
    text = os.environ.get(DEFAULTS_ENV, "").strip()
    if not text:
        return JobParams()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{DEFAULTS_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"{DEFAULTS_ENV} must be a JSON object, got {type(values).__name__}")
    unknown = sorted(set(values) - {f.name for f in fields(JobParams)})
    if unknown:
        raise ValueError(f"{DEFAULTS_ENV} has unknown key(s): {', '.join(unknown)}")
    params = JobParams(**values)
    params.validate()
    return params


def train_command(run: Path, params: JobParams, resume: bool = False) -> list[str]:
    """The argv that trains the run whose ``config.json`` `write_job_config` wrote (via torchrun when ``nproc > 1``)."""
    if params.nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(params.nproc),
               "-m", "denoise_core", "train"]
    else:
        cmd = [sys.executable, "-m", "denoise_core", "train"]
    cmd += ["--config", str(run / CONFIG_FILE), "--no-progress"]
    return cmd + (["--resume"] if resume else [])


def write_job_config(run: Path, image_dir: Path, params: JobParams) -> Path:
    """The run's ``config.json`` with this job's options (kept keys such as the model config are
    preserved); the trainer reads it through ``train --config`` and rewrites it in full when it starts."""
    config = {**read_json(run / CONFIG_FILE), **params.train_options(), "image_dir": str(image_dir), "save_path": str(run)}
    atomic_write_json(run / CONFIG_FILE, config)
    return run / CONFIG_FILE


def _lock(root: Path) -> FileLock:
    return FileLock(str(root / LOCK_FILE), timeout=LOCK_TIMEOUT)


def active_job(root: str | Path | None = None) -> str | None:
    """The id of the job running (or starting) in this data root, or None."""
    root = data_root(root)
    run_id = read_json(root / ACTIVE_FILE).get("run_id")
    if not run_id:
        return None
    try:
        run = run_dir(root, run_id)
    except WorkspaceError:
        return None
    return run_id if run.is_dir() and run_state(run).active else None


def _reap(proc: subprocess.Popen) -> None:
    # Wait in a daemon thread so a finished child does not linger as a zombie
    # (a zombie's PID still "exists", and the run would look alive).
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


def _launch(root: Path, run: Path, image_dir: Path, params: JobParams, resume: bool) -> int:
    """Start the training process for ``run`` and record it; call with the lock held."""
    write_job_config(run, image_dir, params)
    cmd = train_command(run, params, resume)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH")) if p)
    previous = read_json(run / JOB_FILE)
    (run / STOP_FILE).unlink(missing_ok=True)
    with open(run / LOG_FILE, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(PACKAGE_PARENT), env=env, start_new_session=True,
        )
    _reap(proc)
    now = time.time()
    atomic_write_json(run / JOB_FILE, {
        "pid": proc.pid, "started": now, "created": previous.get("created", now), "resumed": resume,
        "image_dir": str(image_dir), "params": params.to_dict(), "command": cmd,
    })
    atomic_write_json(root / ACTIVE_FILE, {"run_id": run.name, "pid": proc.pid, "started": now})
    log.info("started training job %s (pid %d)", run.name, proc.pid)
    return proc.pid


def start_job(params: JobParams | dict[str, Any], root: str | Path | None = None, estimate: Estimate | None = None) -> str:
    """Start a new training run in its own process; returns its run id. ``estimate``, the time the Train page
    said to expect, goes into the run's events (``estimate``) before the process starts, to compare with its epochs.

    Raises `JobRunning` (with the running job's id) when a job is already
    running in this data root, ValueError / `DatasetError` / `WorkspaceError`
    for bad parameters or datasets (before any process starts).
    """
    params = params if isinstance(params, JobParams) else JobParams.from_dict(params)
    params.validate()
    root = data_root(root)
    image_dir = dataset_path(root, params.dataset)
    find_images(image_dir)  # a missing or empty folder fails here, with the trainer's message
    with _lock(root):
        running = active_job(root)
        if running:
            raise JobRunning(running)
        run_id = new_run_id(root, params.dataset)
        run = run_dir(root, run_id)
        run.mkdir(parents=True)
        if estimate is not None:
            append_event(run, estimate.event())
        _launch(root, run, image_dir, params, resume=False)
    return run_id


def _estimate_config(params: JobParams, root: Path) -> TrainConfig:
    return TrainConfig(**params.train_options(), image_dir=str(dataset_path(root, params.dataset)))


def recorded_estimate(params: JobParams | dict[str, Any], root: str | Path | None = None) -> Estimate | None:
    """The time of a run of ``params``, from an earlier run in this data root with the same timing-relevant
    settings on this machine (`denoise_core.timing.recorded`); None when there is none, or for a multi-GPU job."""
    import torch

    from denoise_core.device import pick_device
    from denoise_core.timing import recorded
    from denoise_core.training import planned_model_config

    params = params if isinstance(params, JobParams) else JobParams.from_dict(params)
    if params.nproc > 1:
        return None
    root = data_root(root)
    cfg = _estimate_config(params, root)
    runs = [s.path for s in list_runs(root)]
    return recorded(cfg, planned_model_config(cfg).to_dict(), pick_device(cfg.device).type, torch.get_num_threads(), runs)


def measure_estimate(params: JobParams | dict[str, Any], root: str | Path | None = None) -> Estimate:
    """The time of a run of ``params``, from a few of its steps timed now (`denoise_core.timing.measure`)."""
    from denoise_core.timing import measure

    params = params if isinstance(params, JobParams) else JobParams.from_dict(params)
    params.validate()
    return measure(_estimate_config(params, data_root(root)))


def _run_image_dir(root: Path, job: dict[str, Any], config: dict[str, Any]) -> Path:
    """The image folder a run was trained on, if it is still one the studio may read."""
    from denoise_core.samples import sample_image_dir

    recorded = job.get("image_dir") or config.get("image_dir")
    if not recorded:
        raise JobError("the run does not record its image folder; start a new run instead")
    path = Path(recorded).resolve()
    if path == sample_image_dir().resolve():
        return path
    if not path.is_relative_to(root):
        raise JobError(f"the run's image folder {path} is outside the data root")
    if not path.is_dir():
        raise JobError(f"the run's image folder {path} no longer exists")
    return path


def resume_job(run: str | Path, epochs: int | None = None, root: str | Path | None = None, device: str | None = None) -> str:
    """Continue a stopped, died, failed or finished run from its last complete epoch; returns its run id.

    ``epochs``: the new total (default: the run's own); it must exceed the epochs
    already done, so a finished run needs a larger one. The run's stored
    settings decide everything else.
    """
    root = data_root(root)
    run = run_dir(root, Path(run).name)
    if not run.is_dir():
        raise JobError(f"run {run.name} does not exist")
    job = read_json(run / JOB_FILE)
    config = read_json(run / CONFIG_FILE)
    params = JobParams.from_dict(job.get("params") or {k: v for k, v in config.items() if k != "image_dir"})
    if epochs is not None:
        params.epochs = int(epochs)
    if device is not None:
        params.device = device
    params.validate()
    image_dir = _run_image_dir(root, job, config)
    with _lock(root):
        running = active_job(root)
        state = run_state(run)
        if running or state.active:
            raise JobRunning(running or run.name)
        done = max((int(r["epoch"]) for r in epoch_records(run)), default=0)
        if params.epochs <= done:
            raise JobError(f"run {run.name} already has {done} epochs; resume it with more than {done}")
        _launch(root, run, image_dir, params, resume=True)
    return run.name


def _terminate(pid: int, started: float | None) -> None:
    """SIGTERM the job's process group (trainer, DataLoader workers, torchrun workers)."""
    if not process_alive(pid, started):
        return
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    log.info("sent SIGTERM to job process group %d", pid)


def _enforce_stop(run: Path, pid: int | None, started: float | None, grace: float | None, renew: bool) -> None:
    """Watch a stopping job: with ``renew`` (Stop pressed during its start-up), renew the STOP file once the
    trainer reports running (it clears stale STOP files when it starts, which would swallow that Stop), and
    SIGTERM it if it still runs after ``grace`` seconds. A job already running needs no renewal: renewing
    then could land after the trainer cleared the file on stopping, leaving it behind."""
    deadline = time.monotonic() + (grace if grace is not None else STOP_WATCH_MAX)
    renewed = not renew
    while time.monotonic() < deadline:
        state = run_state(run)
        if not state.active:
            return
        if state.state == "running" and not renewed:
            (run / STOP_FILE).touch()
            renewed = True
        time.sleep(0.5)
    if grace is not None and pid:
        _terminate(pid, started)


def stop_job(run: str | Path, grace: float | None = STOP_GRACE) -> RunState:
    """Ask a running job to stop after its current step (STOP file); SIGTERM it if it still runs after ``grace`` s.

    Returns at once (a daemon thread watches the job); ``grace=0`` signals
    immediately, ``None`` never signals. Either way the trainer ends cleanly
    with state ``stopped`` and ``last.pt`` at its last complete epoch.
    """
    run = Path(run)
    state = run_state(run)
    if not state.active:
        return state
    (run / STOP_FILE).touch()
    job = read_json(run / JOB_FILE)
    pid, started = (job.get("pid"), job.get("started")) if job.get("pid") == state.pid else (state.pid, None)
    if grace is not None and grace <= 0 and pid:
        _terminate(pid, started)
    else:
        renew = state.state != "running"
        threading.Thread(target=_enforce_stop, args=(run, pid, started, grace, renew), name=f"stop-{run.name}",
                         daemon=True).start()
    log.info("stop requested for %s", run.name)
    return state


def wait_for(run: str | Path, timeout: float = 120.0, poll: float = 0.5) -> RunState:
    """Block until the run is no longer starting/running (or ``timeout`` s pass); returns its state."""
    deadline = time.monotonic() + timeout
    state = run_state(run)
    while state.active and time.monotonic() < deadline:
        time.sleep(poll)
        state = run_state(run)
    return state


@dataclass(frozen=True)
class Progress:
    """Live progress of a run, from its event log."""

    state: str
    epoch: int  # the epoch in progress (or the last one done when idle)
    epochs: int | None
    step: int  # steps done in ``epoch``
    steps: int | None  # steps per epoch
    fraction: float  # 0..1 of all steps
    eta_seconds: float | None
    loss: float | None  # latest training loss
    device: str | None

    def label(self) -> str:
        parts = [f"epoch {self.epoch}/{self.epochs or '?'}"]
        if self.steps:
            parts.append(f"step {self.step}/{self.steps}")
        if self.eta_seconds is not None:
            parts.append(f"ETA {format_seconds(self.eta_seconds)}")
        return " · ".join(parts)


def estimate_note(events: list[dict[str, Any]]) -> str | None:
    """The time estimated before Start against the first epoch's, from a run's events (None without an estimate)."""
    said = next((e for e in events if e["type"] == "estimate"), None)
    if said is None:
        return None
    note = f"Estimated before the start: {format_seconds(said['epoch_seconds'])} per epoch ({said['source']})"
    first = next((e for e in events if e["type"] == "epoch"), None)
    if first is not None and said["epoch_seconds"] > 0:
        note += (f"; the first epoch took {format_seconds(first['seconds'])}, "
                 f"{first['seconds'] / said['epoch_seconds']:.2f}× the estimate")
    return note + "."


def progress(run: str | Path, events: list[dict[str, Any]] | None = None) -> Progress:
    """Epoch, step, steps per epoch and ETA of a run, from its ``events.jsonl`` (pass ``events`` if already read)."""
    run = Path(run)
    state = run_state(run)
    events = read_events(run) if events is None else events
    starts = [e for e in events if e["type"] == "status" and e.get("status") in ("started", "resumed")]
    start = starts[-1] if starts else {}
    epochs = start.get("epochs", state.epochs)
    steps = start.get("steps_per_epoch")
    records = {int(e["epoch"]): e for e in events if e["type"] == "epoch"}
    done = max(records, default=0)
    step_events = [e for e in events if e["type"] == "step" and e.get("time", 0) >= start.get("time", 0)]
    last = step_events[-1] if step_events else None
    step = int(last["step"]) if last and int(last["epoch"]) == done + 1 else 0
    total = (epochs or 0) * (steps or 0)
    fraction = min(1.0, (done * steps + step) / total) if total else 0.0
    if state.state == "finished":
        fraction = 1.0
    eta = None
    if state.active and epochs:
        recent = [records[e]["seconds"] for e in sorted(records)[-3:] if e > 0]
        per_epoch = sum(recent) / len(recent) if recent else None
        if last and step and steps:
            per_epoch = per_epoch or float(last["seconds"]) / step * steps
            eta = float(last.get("eta_epoch", 0.0)) + (epochs - done - 1) * per_epoch
        elif per_epoch:
            eta = (epochs - done) * per_epoch
        else:  # no step timed yet: the estimate recorded at Start, less the time since
            said = next((e for e in events if e["type"] == "estimate"), None)
            if said and start:
                per_step = said["step_seconds"] * (steps or said["steps_per_epoch"]) + said["val_seconds"]
                eta = max(0.0, (epochs - done) * per_step - (time.time() - float(start.get("time", time.time()))))
    loss = float(last["loss"]) if last else (records[done]["train_loss"] if done else None)
    current = done if not state.active or done >= (epochs or done) else done + 1
    return Progress(state.state, current, epochs, step, steps, fraction, eta, loss, start.get("device"))
