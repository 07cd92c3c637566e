"""Faults: SIGKILL at random moments, and a failing write while saving."""

import errno
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest

from conftest import TINY
from denoise_core import train
from denoise_core.checkpoint import load_checkpoint
from denoise_core.history import read_events

import denoise_core.training as trainer_module  # noqa: E402

NAMES = ["gaussian_noise", "jpeg"]
EPOCHS = 100  # long enough that 20 kills land before the run could finish, even on idle cores
TRIALS = 20


def _spawn(image_dir: Path, out: Path) -> subprocess.Popen:
    code = (
        "import sys; sys.path.insert(0, 'tests'); from conftest import TINY; from denoise_core import train; "
        f"train({str(image_dir)!r}, epochs={EPOCHS}, learning_rate=1e-3, val_ratio=0.3, save_path={str(out)!r}, resume=True, "
        f"**dict(TINY, steps_per_epoch=4, keep_epochs=2, degradations={NAMES!r}))"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _check_run_folder(out: Path) -> int:
    """Invariants that must hold at any moment after a kill; returns the epoch in last.pt."""
    epoch_lines = [e["epoch"] for e in read_events(out) if e["type"] == "epoch"]
    assert epoch_lines == list(range(1, len(epoch_lines) + 1)), epoch_lines  # continuous, unduplicated
    if not (out / "last.pt").exists():
        assert not epoch_lines
        return 0
    last = load_checkpoint(out / "last.pt")
    assert [r["epoch"] for r in last["history"]] == list(range(1, last["epoch"] + 1))
    # last.pt is saved first: best.pt may lag last's best epoch by a kill, never run ahead.
    assert load_checkpoint(out / "best.pt")["epoch"] <= last["best_epoch"] <= last["epoch"]
    # The log may lag last.pt by the one epoch being written when the kill came, never lead it.
    assert last["epoch"] - 1 <= len(epoch_lines) <= last["epoch"]
    return last["epoch"]


def _status_count(out: Path) -> int:
    return sum(e["type"] == "status" for e in read_events(out))


def test_sigkill_at_random_moments_then_resume(image_dir, tmp_path, reap):
    out = tmp_path / "run"
    rng = random.Random(1234)
    epochs_seen = []
    for _ in range(TRIALS):
        starts = _status_count(out)
        proc = reap(_spawn(image_dir, out))
        # Wait until this process is training (its started/resumed line), then kill at a random moment.
        deadline = time.time() + 120
        while _status_count(out) == starts and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        epochs_seen.append(_check_run_folder(out))
        if epochs_seen[-1] == EPOCHS:
            break
    proc = reap(_spawn(image_dir, out))
    assert proc.wait(timeout=300) == 0
    assert _check_run_folder(out) == EPOCHS
    assert not list(out.glob("**/.*.tmp"))
    last = load_checkpoint(out / "last.pt")
    assert load_checkpoint(out / "best.pt")["epoch"] == last["best_epoch"]
    wb = openpyxl.load_workbook(out / "history.xlsx")
    assert [row[0] for row in list(wb["metrics"].values)[1:]] == list(range(1, EPOCHS + 1))
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
    assert len(epochs_seen) == TRIALS, epochs_seen  # every kill landed before the run could finish


def _sheets(path: Path) -> dict:
    wb = openpyxl.load_workbook(path)
    return {name: list(wb[name].values) for name in wb.sheetnames}


def test_failing_checkpoint_write_keeps_previous_files_and_marks_failed(image_dir, tmp_path, monkeypatch):
    out = tmp_path / "full"
    opts = dict(TINY, degradations=NAMES)
    train(image_dir, epochs=1, val_ratio=0.3, save_path=out, **opts)
    last_before = (out / "last.pt").read_bytes()
    book_before = _sheets(out / "history.xlsx")
    real_save = trainer_module.save_checkpoint

    def disk_full(path, state):
        if Path(path).name == "last.pt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(path, state)

    monkeypatch.setattr(trainer_module, "save_checkpoint", disk_full)
    with pytest.raises(OSError, match="No space left"):
        train(image_dir, epochs=2, val_ratio=0.3, save_path=out, resume=True, **opts)
    assert (out / "last.pt").read_bytes() == last_before
    assert _sheets(out / "history.xlsx") == book_before  # same content (xlsx bytes embed a timestamp)
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "No space left" in status["error"]
    failed = [e for e in read_events(out) if e.get("status") == "failed"]
    assert failed and "No space left" in failed[-1]["error"]
    monkeypatch.undo()
    result = train(image_dir, epochs=2, val_ratio=0.3, save_path=out, resume=True, **opts)
    assert result["state"] == "finished" and [r["epoch"] for r in result["history"]] == [1, 2]


def test_kill_between_last_and_best_is_repaired_on_resume(image_dir, tmp_path, monkeypatch):
    out = tmp_path / "torn"
    opts = dict(TINY, degradations=NAMES)
    real_save = trainer_module.save_checkpoint

    def killed_before_best(path, state):
        if Path(path).name == "best.pt":
            raise KeyboardInterrupt  # stands in for a SIGKILL right after last.pt was replaced
        real_save(path, state)

    monkeypatch.setattr(trainer_module, "save_checkpoint", killed_before_best)
    with pytest.raises(KeyboardInterrupt):
        train(image_dir, epochs=1, val_ratio=0.3, save_path=out, **opts)
    monkeypatch.undo()
    assert load_checkpoint(out / "last.pt")["best_epoch"] == 1 and not (out / "best.pt").exists()
    train(image_dir, epochs=1, val_ratio=0.3, save_path=out, resume=True, **opts)
    best, last = load_checkpoint(out / "best.pt"), load_checkpoint(out / "last.pt")
    assert best["epoch"] == 1
    assert all((best["model"][k] == last["model"][k]).all() for k in last["model"])
