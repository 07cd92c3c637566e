"""The data root: path safety, datasets, run states and summaries, deletion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from studio import workspace
from denoise_core.history import append_event
from denoise_core.samples import sample_image_dir
from studio.workspace import WorkspaceError
from studio_helpers import make_root, wait_until


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    return make_root(tmp_path, monkeypatch)


def test_data_root_comes_from_the_environment_and_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("DENOISE_DATA_ROOT", str(tmp_path / "elsewhere"))
    root = workspace.data_root()
    assert root == (tmp_path / "elsewhere").resolve()
    assert (root / "runs").is_dir() and (root / "datasets").is_dir()
    monkeypatch.delenv("DENOISE_DATA_ROOT")
    monkeypatch.chdir(tmp_path)
    assert workspace.data_root() == (tmp_path / "data").resolve()


def test_safe_path_accepts_paths_inside_the_root(root):
    assert workspace.safe_path(root, "datasets", "tiny", "img0.png") == root.resolve() / "datasets/tiny/img0.png"
    assert workspace.safe_path(root, "runs", "not-yet") == root.resolve() / "runs/not-yet"
    assert workspace.safe_path(root, "datasets/../runs") == root.resolve() / "runs"  # stays inside: fine


@pytest.mark.parametrize("parts", [("..",), ("runs", "..", ".."), ("../etc/passwd",), ("datasets", "../../x")])
def test_safe_path_refuses_dot_dot_out_of_the_root(root, parts):
    with pytest.raises(WorkspaceError, match="outside the data root"):
        workspace.safe_path(root, *parts)


@pytest.mark.parametrize("part", ["/etc/passwd", "\\\\server\\share", "C:\\Windows", "c:/x"])
def test_safe_path_refuses_absolute_paths(root, part):
    with pytest.raises(WorkspaceError, match="absolute"):
        workspace.safe_path(root, "datasets", part)


def test_safe_path_refuses_symlinks_pointing_out(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (root / "datasets" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(WorkspaceError, match="outside"):
        workspace.safe_path(root, "datasets", "link", "secret.png")
    (root / "datasets" / "inner").symlink_to(root / "datasets" / "tiny", target_is_directory=True)
    assert workspace.safe_path(root, "datasets", "inner").name == "tiny"  # a link within the root is fine


def test_safe_path_refuses_nul_and_empty_parts(root):
    for bad in ("a\x00b", ""):
        with pytest.raises(WorkspaceError):
            workspace.safe_path(root, bad)


@pytest.mark.parametrize("name", ["../x", ".hidden", "a/b", "", "-flag", "a b", "x" * 101])
def test_names_are_single_plain_components(root, name):
    with pytest.raises(WorkspaceError):
        workspace.check_name(name)
    with pytest.raises(WorkspaceError):
        workspace.run_dir(root, name)


def test_dataset_path(root):
    assert workspace.dataset_path(root, "samples") == sample_image_dir()
    assert workspace.dataset_path(root, "tiny") == root.resolve() / "datasets" / "tiny"
    with pytest.raises(WorkspaceError, match="does not exist"):
        workspace.dataset_path(root, "missing")
    with pytest.raises(WorkspaceError):
        workspace.dataset_path(root, "../runs")


def test_list_datasets_skips_temp_folders_and_links_out(root, tmp_path):
    (root / "datasets" / ".unpack-x-123").mkdir()
    (root / "datasets" / "notes.txt").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "datasets" / "escape").symlink_to(outside, target_is_directory=True)
    found = workspace.list_datasets(root)
    assert found[0].name == "samples" and found[0].bundled and found[0].images > 5
    assert [d.name for d in found[1:]] == ["tiny"]
    assert found[1].images == 6 and not found[1].bundled
    assert [d.name for d in workspace.list_datasets(root, include_samples=False)] == ["tiny"]


def test_slugify_makes_valid_names():
    for text in ("My Photos (2024).zip", "../../evil.zip", "....zip", "ünïcode.zip"):
        workspace.check_name(workspace.slugify(text))
    assert workspace.slugify("My Photos.zip") == "My-Photos"


def test_log_tail_reads_the_end_of_the_log(tmp_path):
    (tmp_path / "train.log").write_text("".join(f"line {i}\n" for i in range(100)) + "\n\n")
    assert workspace.log_tail(tmp_path, 3) == ["line 97", "line 98", "line 99"]
    assert workspace.log_tail(tmp_path / "missing", 3) == []


# -- run states -------------------------------------------------------------------------------------


def _status(run: Path, state: str, pid: int, updated: float | None = None, **extra) -> None:
    run.mkdir(parents=True, exist_ok=True)
    payload = {"state": state, "pid": pid, "updated": updated or time.time(), "epoch": 1, "epochs": 3, **extra}
    (run / "status.json").write_text(json.dumps(payload))


def _job(run: Path, pid: int, started: float | None = None) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "job.json").write_text(json.dumps({"pid": pid, "started": started or time.time(), "params": {"epochs": 3}}))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_process_alive_sees_zombies_and_recycled_pids_as_dead():
    assert workspace.process_alive(os.getpid())
    assert not workspace.process_alive(None)
    assert not workspace.process_alive(_dead_pid())
    # A process that started after the time it should already have existed at is a recycled PID.
    # (Measured from this process's own start, not from now: the suite may run for over an hour on a busy machine.)
    born = psutil.Process().create_time()
    assert not workspace.process_alive(os.getpid(), not_after=born - 3600)
    assert workspace.process_alive(os.getpid(), not_after=born)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: becomes a zombie
    wait_until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE, timeout=30)
    assert not workspace.process_alive(proc.pid)
    proc.wait()


def test_run_state_running_died_and_final_states(tmp_path):
    run = tmp_path / "run"
    _status(run, "running", os.getpid())
    assert workspace.run_state(run).state == "running" and workspace.run_state(run).active
    _status(run, "running", _dead_pid())
    state = workspace.run_state(run)
    assert state.state == "died" and not state.active and "resume" in state.error
    for final in ("stopped", "finished"):
        _status(run, final, _dead_pid())
        assert workspace.run_state(run).state == final
    _status(run, "failed", _dead_pid(), error="OSError: disk full")
    assert workspace.run_state(run) == workspace.RunState("failed", None, 1, 3, "OSError: disk full")
    assert workspace.run_state(tmp_path / "empty").state == "unknown"


def test_run_state_of_a_launched_job_before_the_trainer_reports(tmp_path):
    run = tmp_path / "run"
    _status(run, "stopped", _dead_pid(), updated=time.time() - 60)  # an earlier, stopped process of the run
    _job(run, os.getpid())
    assert workspace.run_state(run).state == "starting" and workspace.run_state(run).pid == os.getpid()
    _job(run, _dead_pid())
    (run / "train.log").write_text("$ python -m denoise_core train ...\nerror: no images found in /x\n")
    state = workspace.run_state(run)
    assert state.state == "failed" and state.error == "error: no images found in /x"
    (run / "STOP").touch()
    assert workspace.run_state(run).state == "stopped"  # stopped during start-up


def _fake_run(root: Path, run_id: str, psnrs: list[float], state: str = "finished") -> Path:
    run = root / "runs" / run_id
    _status(run, state, _dead_pid(), epoch=len(psnrs))
    _job(run, _dead_pid(), started=time.time() - 100)
    (run / "config.json").write_text(json.dumps({"image_dir": str(root / "datasets" / "tiny"), "epochs": 5}))
    for epoch, psnr in enumerate(psnrs, 1):
        append_event(run, {"type": "epoch", "epoch": epoch, "val_loss": 1.0 / psnr, "val_psnr": psnr, "val_ssim": psnr / 100})
    return run


def test_list_runs_summarises_each_run(root):
    _fake_run(root, "a-run", [10.0, 14.0, 12.0])
    _fake_run(root, "b-run", [], state="running")
    (root / "runs" / ".hidden").mkdir()
    runs = workspace.list_runs(root)
    assert {r.run_id for r in runs} == {"a-run", "b-run"}
    a = next(r for r in runs if r.run_id == "a-run")
    assert (a.dataset, a.epochs_done, a.epochs_total, a.status) == ("tiny", 3, 5, "finished")
    assert a.best_val_psnr == 14.0 and a.best_val_ssim == pytest.approx(0.14)
    row = a.as_row()
    assert row["epochs"] == "3/5" and row["best val PSNR (dB)"] == 14.0 and row["status"] == "finished"
    b = next(r for r in runs if r.run_id == "b-run")
    assert b.status == "died" and b.best_val_psnr is None


def test_delete_run_refuses_running_runs_and_bad_names(root):
    run = _fake_run(root, "done", [10.0])
    busy = _fake_run(root, "busy", [10.0])
    _status(busy, "running", os.getpid())
    with pytest.raises(WorkspaceError, match="stop it"):
        workspace.delete_run(root, "busy")
    assert busy.is_dir()
    with pytest.raises(WorkspaceError):
        workspace.delete_run(root, "../datasets")
    with pytest.raises(WorkspaceError, match="does not exist"):
        workspace.delete_run(root, "nope")
    workspace.delete_run(root, "done")
    assert not run.exists() and (root / "datasets" / "tiny").is_dir()


def test_new_run_ids_are_unique_and_valid(root):
    first = workspace.new_run_id(root, "My Photos")
    (root / "runs" / first).mkdir()
    second = workspace.new_run_id(root, "My Photos")
    assert first != second and first.endswith("My-Photos")
    workspace.check_name(second)


def test_list_checkpoints_offers_each_runs_best(root):
    run = _fake_run(root, "with-best", [10.0])
    (run / "best.pt").write_bytes(b"placeholder")
    _fake_run(root, "without-best", [10.0])
    labels = [label for label, _ in workspace.list_checkpoints(root)]
    assert "run with-best (best.pt)" in labels and not any("without-best" in x for x in labels)
    assert workspace.restore_model(root) is not None
