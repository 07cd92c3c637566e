"""Background training jobs: real tiny `python -m denoise_core train` processes."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from studio import jobs, workspace
from denoise_core.checkpoint import load_checkpoint
from denoise_core.history import epoch_records, read_events
from studio.jobs import JobParams, JobRunning
from studio_helpers import TINY_JOB, make_root, wait_until


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    return make_root(tmp_path, monkeypatch)


def run_path(root: Path, run_id: str) -> Path:
    return workspace.run_dir(root, run_id)


def test_a_job_runs_in_its_own_process_to_the_end(root):
    run_id = jobs.start_job(JobParams(**TINY_JOB), root)
    run = run_path(root, run_id)
    job = json.loads((run / "job.json").read_text())
    assert job["pid"] != os.getpid() and job["command"][:4] == [sys.executable, "-m", "denoise_core", "train"]
    assert jobs.active_job(root) == run_id
    state = jobs.wait_for(run, timeout=180)
    assert state.state == "finished", jobs.log_tail(run, 20)
    assert jobs.active_job(root) is None
    assert [r["epoch"] for r in epoch_records(run)] == [1, 2]
    load_checkpoint(run / "best.pt")
    # The CLI logs its last line after the run's status says finished: wait for the process to exit first.
    deadline = time.monotonic() + 30
    while workspace.process_alive(job["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any("finished after epoch 2" in line for line in jobs.log_tail(run, 5))
    p = jobs.progress(run)
    assert (p.state, p.epoch, p.epochs, p.steps, p.fraction, p.eta_seconds) == ("finished", 2, 2, 2, 1.0, None)
    summary = workspace.list_runs(root)[0]
    assert (summary.run_id, summary.dataset, summary.epochs_done, summary.status) == (run_id, "tiny", 2, "finished")
    with pytest.raises(jobs.JobError, match="already has 2 epochs"):
        jobs.resume_job(run_id, root=root)


def _first_epoch_or_fail(run):
    """Whether the run has an epoch record; fails at once (with its log) if the job ended first."""
    if epoch_records(run):
        return True
    state = workspace.run_state(run)
    assert state.active, (state, jobs.log_tail(run, 20))
    return False


def test_two_simultaneous_starts_create_exactly_one_job_and_stop_works(root):
    barrier = threading.Barrier(2)
    results: list[object] = []

    def press_start() -> None:
        barrier.wait()
        try:
            results.append(jobs.start_job(JobParams(**{**TINY_JOB, "epochs": 500}), root))
        except JobRunning as exc:
            results.append(exc)

    threads = [threading.Thread(target=press_start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, JobRunning)]
    assert len(started) == 1 and len(refused) == 1
    assert refused[0].run_id == started[0]
    assert [p.name for p in (root / "runs").iterdir()] == started
    run = run_path(root, started[0])
    with pytest.raises(JobRunning):
        jobs.resume_job(started[0], root=root)  # cannot resume a running job either
    # Stop as soon as the trainer has done some work; the STOP file alone must end it (no signal).
    wait_until(lambda: _first_epoch_or_fail(run), timeout=180, context=lambda: (workspace.run_state(run), jobs.log_tail(run, 20)))
    jobs.stop_job(run, grace=None)
    state = jobs.wait_for(run, timeout=120)
    assert state.state == "stopped", (state, jobs.log_tail(run, 20))
    done = epoch_records(run)[-1]["epoch"]
    assert 1 <= done < 500
    assert load_checkpoint(run / "last.pt")["epoch"] == done
    assert not (run / "STOP").exists()
    assert jobs.active_job(root) is None


def test_a_killed_job_shows_as_died_and_resumes_where_it_was(root):
    run_id = jobs.start_job(JobParams(**{**TINY_JOB, "epochs": 500}), root)
    run = run_path(root, run_id)
    wait_until(lambda: len(epoch_records(run)) >= 2, timeout=180)
    pid = json.loads((run / "job.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)
    state = wait_until(lambda: (s := workspace.run_state(run)).state == "died" and s, timeout=30)
    assert "resume" in state.error and jobs.active_job(root) is None
    assert workspace.list_runs(root)[0].status == "died"
    done = load_checkpoint(run / "last.pt")["epoch"]
    assert jobs.resume_job(run_id, epochs=done + 2, root=root) == run_id
    assert workspace.run_state(run).active
    state = jobs.wait_for(run, timeout=180)
    assert state.state == "finished", jobs.log_tail(run, 20)
    assert [r["epoch"] for r in epoch_records(run)] == list(range(1, done + 3))
    statuses = [e["status"] for e in read_events(run) if e["type"] == "status"]
    assert statuses[0] == "started" and statuses[-2:] == ["resumed", "finished"]
    job = json.loads((run / "job.json").read_text())
    assert job["resumed"] and job["created"] < job["started"]


def test_a_job_that_fails_at_start_reports_the_trainers_error(root):
    lonely = root / "datasets" / "lonely"
    lonely.mkdir()
    (root / "datasets" / "tiny" / "img0.png").rename(lonely / "only.png")
    run_id = jobs.start_job(JobParams(**{**TINY_JOB, "dataset": "lonely"}), root)
    state = jobs.wait_for(run_path(root, run_id), timeout=180)
    assert state.state == "failed"
    assert "need at least 2 readable images" in state.error


def test_a_job_with_two_processes_trains_under_torchrun(root):
    # On this CPU-only machine DDP uses gloo; on a host with several GPUs the page offers nproc = GPUs.
    run_id = jobs.start_job(JobParams(**{**TINY_JOB, "batch_size": 2, "nproc": 2}), root)
    run = run_path(root, run_id)
    assert jobs.wait_for(run, timeout=180).state == "finished", jobs.log_tail(run, 20)
    started = next(e for e in read_events(run) if e["type"] == "status" and e["status"] == "started")
    assert started["world_size"] == 2
    assert [r["epoch"] for r in epoch_records(run)] == [1, 2]


def test_bad_parameters_are_refused_before_any_process_starts(root):
    for bad in ({"epochs": 0}, {"alpha": 2.0}, {"degradations": ["nope"]}, {"degradations": []}, {"nproc": 0},
                {"dataset": "../datasets"}, {"dataset": "missing"}, {"init_from": "/etc/passwd"}, {"sensor_noise": -1.0}):
        with pytest.raises(ValueError):
            jobs.start_job(JobParams(**{**TINY_JOB, **bad}), root)
    (root / "datasets" / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        jobs.start_job(JobParams(**{**TINY_JOB, "dataset": "empty"}), root)
    assert list((root / "runs").iterdir()) == []


def test_job_writes_the_config_and_launches_train_with_it(tmp_path):
    from denoise_core.cli import _run_train, build_parser
    from denoise_core.training import TrainConfig

    params = JobParams(dataset="x", epochs=7, learning_rate=3e-4, degradations=["jpeg", "mixed"], adaptive=False,
                       device="cuda", steps_per_epoch=None, num_workers=0, patch_size=32, width=16, sensor_noise=2.5,
                       init_from="default")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model_config": {"width": 16}}))  # kept keys survive the rewrite
    jobs.write_job_config(run, tmp_path / "imgs", params)
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"] == {"width": 16} and config["image_dir"] == str(tmp_path / "imgs")
    assert {k: config[k] for k in jobs.FORM_FIELDS} == {k: getattr(params, k) for k in jobs.FORM_FIELDS}
    cmd = jobs.train_command(run, params)
    assert cmd[:4] == [sys.executable, "-m", "denoise_core", "train"]
    assert cmd[4:] == ["--config", str(run / "config.json"), "--no-progress"]
    args = build_parser("train").parse_args(cmd[3:])
    assert args.config == str(run / "config.json") and not hasattr(args, "epochs")  # everything comes from the file
    # What `train --config` hands the trainer is exactly the job's options (the training itself is stubbed).
    seen = {}

    def fake_train(image_dir, **options):
        seen.update(image_dir=str(image_dir), **options)
        return {"state": "finished", "epochs_done": 0, "best_epoch": 0, "best_val_loss": 0.0, "save_path": str(run)}

    import denoise_core.training as training

    original = training.train
    training.train = fake_train
    try:
        _run_train(args)
    finally:
        training.train = original
    assert seen["image_dir"] == str(tmp_path / "imgs") and seen["save_path"] == str(run)
    assert TrainConfig(**{k: v for k, v in seen.items() if k != "image_dir"}, image_dir=seen["image_dir"]).epochs == 7
    assert (seen["learning_rate"], seen["adaptive"], seen["sensor_noise"], seen["init_from"]) == (3e-4, False, 2.5, "default")
    assert build_parser("train").parse_args(jobs.train_command(run, params, resume=True)[3:]).resume
    params.nproc = 4
    cmd = jobs.train_command(run, params)
    assert cmd[:9] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
                       "-m", "denoise_core", "train"]


def test_job_params_are_train_config_fields():
    """One source: the Train page's parameters are TrainConfig fields with TrainConfig's defaults, except that a
    job fine-tunes the shipped model by default."""
    from dataclasses import fields

    from denoise_core.training import TrainConfig

    defaults = TrainConfig()
    assert jobs.JOB_DEFAULTS == {"init_from": "default"} and JobParams().init_from == "default"
    for f in fields(JobParams):
        if f.name not in ("dataset", "nproc", *jobs.JOB_DEFAULTS):
            assert getattr(JobParams(), f.name) == getattr(defaults, f.name), f.name


def test_default_params_from_the_environment(monkeypatch):
    monkeypatch.delenv(jobs.DEFAULTS_ENV, raising=False)
    assert jobs.default_params() == JobParams()
    monkeypatch.setenv(jobs.DEFAULTS_ENV, json.dumps({"epochs": 3, "width": 8}))
    assert (jobs.default_params().epochs, jobs.default_params().width, jobs.default_params().depth) == (3, 8, JobParams().depth)
    for bad, message in (("{not json", "not valid JSON"), ("[1]", "JSON object"), ('{"epoch": 3}', "unknown key"),
                         ('{"epochs": -1}', "epochs")):
        monkeypatch.setenv(jobs.DEFAULTS_ENV, bad)
        with pytest.raises(ValueError, match=message):
            jobs.default_params()


def test_progress_and_eta_from_step_events(tmp_path):
    from denoise_core.history import append_event

    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "updated": 1e12, "epoch": 1, "epochs": 4}))
    append_event(run, {"type": "status", "status": "started", "epoch": 0, "epochs": 4, "steps_per_epoch": 10, "device": "cpu"})
    append_event(run, {"type": "epoch", "epoch": 1, "seconds": 30.0, "train_loss": 0.5})
    append_event(run, {"type": "step", "epoch": 2, "step": 4, "steps": 10, "loss": 0.25, "seconds": 8.0, "eta_epoch": 12.0})
    p = jobs.progress(run)
    assert (p.state, p.epoch, p.epochs, p.step, p.steps, p.loss) == ("running", 2, 4, 4, 10, 0.25)
    assert p.fraction == pytest.approx(14 / 40)
    assert p.eta_seconds == pytest.approx(12.0 + 2 * 30.0)  # rest of epoch 2, then epochs 3 and 4
    assert p.label() == "epoch 2/4 · step 4/10 · ETA 1m 12s"
    assert jobs.format_seconds(3725) == "1h 02m"


def test_eta_before_the_first_step_comes_from_the_estimate_and_the_note_compares_it(tmp_path):
    from denoise_core.history import append_event
    from denoise_core.timing import Estimate

    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "updated": 1e12, "epoch": 0, "epochs": 3}))
    said = Estimate(step_seconds=0.5, val_seconds=5.0, steps_per_epoch=10, epochs=3, source="measured", detail="x")
    append_event(run, said.event())
    append_event(run, {"type": "status", "status": "started", "epoch": 0, "epochs": 3, "steps_per_epoch": 10, "device": "cpu"})
    p = jobs.progress(run)
    assert p.eta_seconds == pytest.approx(3 * 10.0, abs=2.0)  # 3 epochs of 10 x 0.5 + 5 s, less the second passed
    assert jobs.estimate_note(read_events(run)) == "Estimated before the start: 10s per epoch (measured)."
    append_event(run, {"type": "epoch", "epoch": 1, "seconds": 12.0, "train_loss": 0.5})
    assert jobs.estimate_note(read_events(run)).endswith("the first epoch took 12s, 1.20× the estimate.")


def test_an_earlier_run_with_the_same_settings_gives_a_recorded_estimate(root):
    params = JobParams(**TINY_JOB)
    assert jobs.recorded_estimate(params, root) is None  # nothing ran yet
    measured = jobs.measure_estimate(params, root)
    assert measured.source == "measured" and measured.step_seconds > 0 and measured.val_seconds > 0
    assert measured.steps_per_epoch == 2 and measured.epochs == 2
    run = run_path(root, jobs.start_job(params, root, estimate=measured))
    assert jobs.wait_for(run, timeout=180).state == "finished", jobs.log_tail(run, 20)
    events = read_events(run)
    assert events[0]["type"] == "estimate" and events[0]["epoch_seconds"] == pytest.approx(measured.epoch_seconds)
    assert "the estimate" in jobs.estimate_note(events)

    again = jobs.recorded_estimate(JobParams(**{**TINY_JOB, "epochs": 10}), root)
    assert again is not None and again.source == "recorded" and run.name in again.detail
    records = epoch_records(run)
    assert again.step_seconds == pytest.approx(records[1]["train_seconds"] / records[1]["steps"])  # after the warm-up epoch
    assert again.run_seconds == pytest.approx(10 * again.epoch_seconds)
    # another batch size, another architecture or a fine-tune times differently: no recorded figure
    for other in ({"batch_size": 2}, {"width": 16}, {"init_from": "default"}):
        assert jobs.recorded_estimate(JobParams(**{**TINY_JOB, **other}), root) is None, other
