import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest
import torch

from conftest import TINY
from denoise_core import train
from denoise_core.checkpoint import load_checkpoint
from denoise_core.data import DatasetError
from denoise_core.history import epoch_records, read_events
from denoise_core.restoration import load_model
from denoise_core.training import Trainer

NAMES = ["gaussian_noise", "jpeg", "gaussian_blur"]
OPTS = dict(TINY, degradations=NAMES)
VOLATILE = {"seconds", "train_seconds", "val_seconds", "time"}


def strip(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def test_two_epochs_write_every_output(image_dir, tmp_path):
    out = tmp_path / "run"
    result = train(image_dir, epochs=2, learning_rate=1e-3, val_ratio=0.3, save_path=out, **OPTS)
    assert result["state"] == "finished" and result["epochs_done"] == 2
    for name in ("best.pt", "last.pt", "config.json", "events.jsonl", "history.xlsx", "status.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_0001.pt", "epoch_0002.pt"]
    wb = openpyxl.load_workbook(out / "history.xlsx")
    assert wb.sheetnames == ["metrics", "weights", "per_degradation"]
    metrics = list(wb["metrics"].values)
    assert metrics[0] == ("epoch", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr", "seconds")
    assert [row[0] for row in metrics[1:]] == [1, 2]
    weights = list(wb["weights"].values)
    assert weights[0] == ("epoch", *NAMES) and len(weights) == 3
    assert all(abs(sum(row[1:]) - 1) < 1e-6 for row in weights[1:])
    per_deg = list(wb["per_degradation"].values)
    assert len(per_deg) == 1 + 2 * (len(NAMES) + 1)  # and the undegraded crops (clean_fraction 0.1 by default)
    events = read_events(out)
    types = [e["type"] for e in events]
    assert types[0] == "status" and events[0]["status"] == "started" and events[-1]["status"] == "finished"
    assert types.count("epoch") == 2 and "step" in types and all("epoch" in e for e in events)
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
    last = load_checkpoint(out / "last.pt")
    assert {"model", "optimizer", "scheduler", "scaler", "sampler", "rng", "epoch", "best_val_loss", "model_config", "train_config"} <= set(last)
    assert set(result["history"][0]["per_degradation"]) == {*NAMES, "clean"}


def _stop_after_first_epoch(monkeypatch):
    """Request a stop (the STOP file) right after epoch 1 is saved, as a user pressing Stop would."""
    original = Trainer._save

    def save(self, epoch, record, improved):
        original(self, epoch, record, improved)
        if epoch == 1:
            (self.out / "STOP").touch()

    monkeypatch.setattr(Trainer, "_save", save)


def test_stop_then_resume_equals_straight_run(image_dir, tmp_path, monkeypatch):
    straight = train(image_dir, epochs=3, learning_rate=1e-3, val_ratio=0.3, save_path=tmp_path / "a", **OPTS)
    with monkeypatch.context() as m:
        _stop_after_first_epoch(m)
        stopped = train(image_dir, epochs=3, learning_rate=1e-3, val_ratio=0.3, save_path=tmp_path / "b", **OPTS)
    assert stopped["state"] == "stopped" and stopped["epochs_done"] == 1
    assert json.loads((tmp_path / "b" / "status.json").read_text())["state"] == "stopped"
    assert not (tmp_path / "b" / "STOP").exists()
    assert not (tmp_path / "b" / "MODEL_CARD.md").exists()  # written only when a run finishes
    resumed = train(image_dir, epochs=3, learning_rate=1e-3, val_ratio=0.3, save_path=tmp_path / "b", resume=True, **OPTS)
    assert resumed["state"] == "finished" and (tmp_path / "b" / "MODEL_CARD.md").is_file()
    assert strip(resumed["history"]) == strip(straight["history"])
    assert strip(epoch_records(tmp_path / "b")) == strip(epoch_records(tmp_path / "a"))
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["sampler"]["weights"], b["sampler"]["weights"])
    statuses = [e["status"] for e in read_events(tmp_path / "b") if e["type"] == "status"]
    assert statuses == ["started", "stopped", "resumed", "finished"]


def test_resume_extends_a_finished_run(image_dir, tmp_path):
    train(image_dir, epochs=1, val_ratio=0.3, save_path=tmp_path / "e", **OPTS)
    result = train(image_dir, epochs=2, val_ratio=0.3, save_path=tmp_path / "e", resume=True, **OPTS)
    assert [r["epoch"] for r in result["history"]] == [1, 2]


def test_refuses_to_overwrite_a_run_without_resume(image_dir, tmp_path):
    train(image_dir, epochs=1, val_ratio=0.3, save_path=tmp_path / "r", **OPTS)
    with pytest.raises(FileExistsError, match="resume"):
        train(image_dir, epochs=1, val_ratio=0.3, save_path=tmp_path / "r", **OPTS)


def test_validation_loss_falls_over_ten_epochs(image_dir, tmp_path):
    opts = dict(OPTS, steps_per_epoch=6, degradations=["gaussian_noise"])
    result = train(image_dir, epochs=10, learning_rate=3e-3, val_ratio=0.3, save_path=tmp_path / "l", **opts)
    val = [r["val_loss"] for r in result["history"]]
    assert val[-1] < 0.8 * val[0], val
    assert result["best_epoch"] > 1


def test_empty_folder_and_corrupt_files(tmp_path, image_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        train(tmp_path / "empty", epochs=1, save_path=tmp_path / "o", **OPTS)
    (image_dir / "bad.png").write_bytes(b"not a png")
    result = train(image_dir, epochs=1, val_ratio=0.3, save_path=tmp_path / "c", **OPTS)
    started = read_events(tmp_path / "c")[0]
    assert result["state"] == "finished" and any(s.endswith("bad.png") for s in started["skipped"])
    with pytest.raises(TypeError, match="unknown training option"):
        train(image_dir, epochs=1, save_path=tmp_path / "x", not_an_option=1)


def _spawn(image_dir: Path, out: Path, epochs: int, resume: bool) -> subprocess.Popen:
    code = (
        "import sys, json; sys.path.insert(0, 'tests'); from conftest import TINY; from denoise_core import train; "
        f"train({str(image_dir)!r}, epochs={epochs}, learning_rate=1e-3, val_ratio=0.3, save_path={str(out)!r}, "
        f"resume={resume}, **dict(TINY, steps_per_epoch=12, degradations={NAMES!r}))"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[2])


def test_sigkill_mid_epoch_then_resume(image_dir, tmp_path, reap):
    out = tmp_path / "k"
    proc = reap(_spawn(image_dir, out, 4, False))
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until epoch 2 is under way
        if any(e["type"] == "step" and e["epoch"] == 2 for e in read_events(out)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    proc = reap(_spawn(image_dir, out, 4, True))
    assert proc.wait(timeout=240) == 0
    epochs = [r["epoch"] for r in epoch_records(out)]
    assert epochs == [1, 2, 3, 4]
    assert load_checkpoint(out / "last.pt")["epoch"] == 4 and load_checkpoint(out / "best.pt")
    statuses = [e["status"] for e in read_events(out) if e["type"] == "status"]
    assert statuses == ["started", "resumed", "finished"]


def test_the_readme_call_works_as_written(tmp_path, monkeypatch):
    # Two tiny images keep the README's 30 epochs at one batch each; the call itself is the README's, verbatim.
    import numpy as np
    from PIL import Image

    from conftest import make_image

    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.fromarray(make_image(rng, 20, 24)).save(tmp_path / "photos" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    image_dir = "photos"
    result = train(image_dir=image_dir, epochs=30, batch_size=16, learning_rate=1e-4, val_ratio=0.15, save_path="weights")
    assert result["epochs_done"] == 30 and result["state"] == "finished"
    assert (tmp_path / "weights" / "best.pt").is_file() and (tmp_path / "weights" / "history.xlsx").is_file()


def test_compiled_training_saves_plain_checkpoints(image_dir, tmp_path):
    """torch.compile wraps the network, not the saved model: checkpoints load into a plain UNet."""
    out = tmp_path / "compiled"
    result = train(image_dir, epochs=1, val_ratio=0.3, save_path=out, compile=True, **TINY)
    assert result["state"] == "finished"
    state = load_checkpoint(out / "best.pt")
    assert not any(k.startswith("_orig_mod") for k in state["model"])
    model = load_model(out / "best.pt")
    y = model(torch.rand(1, model.config.in_channels, 21, 19))  # the image and its noise map
    assert y.shape == (1, 3, 21, 19) and torch.isfinite(y).all()


def test_fine_tune_starts_from_a_checkpoint(image_dir, tmp_path):
    base = tmp_path / "base"
    train(image_dir, epochs=1, learning_rate=1e-3, val_ratio=0.3, save_path=base,
          **{**OPTS, "width": 4, "enc_blocks": [1, 1], "dec_blocks": [1, 1]})
    start = load_checkpoint(base / "best.pt")
    # width 8 asked, width 4 adopted from the checkpoint; a tiny LR keeps the weights where they started
    tuned = tmp_path / "tuned"
    train(image_dir, epochs=1, learning_rate=1e-12, val_ratio=0.3, save_path=tuned,
          **{**OPTS, "width": 8, "warmup_steps": 1, "init_from": str(base / "best.pt"), "degradations": ["jpeg", "mixed"]})
    after = load_checkpoint(tuned / "best.pt")
    assert after["model_config"] == start["model_config"] and after["model_config"]["width"] == 4
    assert json.loads((tuned / "config.json").read_text())["width"] == 4
    for k, v in start["model"].items():
        torch.testing.assert_close(after["model"][k], v, atol=1e-6, rtol=0)
    # the optimizer, schedule and degradation weights start fresh
    last = load_checkpoint(tuned / "last.pt")
    assert last["epoch"] == 1 and last["degradations"] == ["jpeg", "mixed"]
    # resuming the fine-tuned run keeps its own weights, not the init ones again
    train(image_dir, epochs=2, learning_rate=1e-3, val_ratio=0.3, save_path=tuned, resume=True,
          **{**OPTS, "init_from": str(base / "best.pt"), "degradations": ["jpeg", "mixed"]})
    assert load_checkpoint(tuned / "last.pt")["epoch"] == 2


def test_fine_tune_can_grow_the_model_by_blocks(image_dir, tmp_path):
    base = tmp_path / "base"
    train(image_dir, epochs=1, learning_rate=1e-3, val_ratio=0.3, save_path=base,
          **{**OPTS, "width": 4, "enc_blocks": [1, 1], "dec_blocks": [1, 1]})
    grown = tmp_path / "grown"
    train(image_dir, epochs=1, learning_rate=1e-12, val_ratio=0.3, save_path=grown,
          **{**OPTS, "warmup_steps": 1, "init_from": str(base / "best.pt"), "middle_blocks": 4, "enc_blocks": [1, 3]})
    cfg = load_checkpoint(grown / "best.pt")["model_config"]
    assert (cfg["width"], cfg["middle_blocks"], cfg["enc_blocks"], cfg["dec_blocks"]) == (4, 4, [1, 3], [1, 1])
    assert "| started from | `best.pt`, fine-tuned |" in (grown / "MODEL_CARD.md").read_text()  # the run's card says so
    x = torch.rand(1, 4, 24, 32)  # the image and its noise map
    with torch.no_grad():  # the new blocks start as the identity and a tiny LR keeps everything in place
        torch.testing.assert_close(load_model(grown / "best.pt")(x), load_model(base / "best.pt")(x), atol=1e-5, rtol=0)
    # resuming keeps the grown architecture
    train(image_dir, epochs=2, learning_rate=1e-3, val_ratio=0.3, save_path=grown, resume=True,
          **{**OPTS, "init_from": str(base / "best.pt"), "middle_blocks": 4, "enc_blocks": [1, 3]})
    assert load_checkpoint(grown / "last.pt")["model_config"]["middle_blocks"] == 4
    # shrinking is refused before any image is read
    with pytest.raises(ValueError, match="can only grow"):
        train(tmp_path / "no-images-here", epochs=1, save_path=tmp_path / "shrunk",
              **{**OPTS, "init_from": str(base / "best.pt"), "middle_blocks": 1})
    with pytest.raises(ValueError, match="middle_blocks"):
        train(image_dir, epochs=1, save_path=tmp_path / "bad", **{**OPTS, "middle_blocks": -1})


def test_fine_tune_from_a_broken_checkpoint_is_a_clear_error(image_dir, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="bad.pt"):
        train(image_dir, epochs=1, save_path=tmp_path / "run", **{**OPTS, "init_from": str(bad)})
    assert not (tmp_path / "run" / "last.pt").exists()
    # weights that do not fit their stored architecture are refused before any image is read
    from denoise_core.checkpoint import save_checkpoint
    from denoise_core.model import ModelConfig, build_model

    small = build_model(ModelConfig(width=4, depth=2)).state_dict()
    save_checkpoint(tmp_path / "mismatch.pt", {"model": small, "model_config": ModelConfig(width=8, depth=2).to_dict()})
    with pytest.raises(Exception, match="mismatch.pt: cannot fine-tune"):
        train(tmp_path / "no-images-here", epochs=1, save_path=tmp_path / "run2", **{**OPTS, "init_from": str(tmp_path / "mismatch.pt")})


def test_resuming_a_run_older_than_an_option_keeps_its_default(image_dir, tmp_path, caplog):
    out = tmp_path / "run"
    train(image_dir, epochs=1, learning_rate=1e-3, val_ratio=0.3, save_path=out, **OPTS)
    last = load_checkpoint(out / "last.pt")
    del last["train_config"]["init_from"]  # as written before this option
    torch.save(last, out / "last.pt")
    caplog.set_level("WARNING", logger="denoise_core")
    train(image_dir, epochs=2, learning_rate=1e-3, val_ratio=0.3, save_path=out, resume=True, **OPTS)
    assert "ignoring changed" not in caplog.text
    # an option whose default changed since counts as it was before it existed (off), and asking for it on
    # resume is refused in favour of the stored run
    last = load_checkpoint(out / "last.pt")
    del last["train_config"]["sensor_noise"]
    torch.save(last, out / "last.pt")
    train(image_dir, epochs=3, learning_rate=1e-3, val_ratio=0.3, save_path=out, resume=True, **OPTS)
    assert "ignoring changed option(s): sensor_noise" in caplog.text
    assert load_checkpoint(out / "last.pt")["train_config"]["sensor_noise"] == 0.0


def test_sensor_noise_option_is_checked():
    from denoise_core.training import TrainConfig

    with pytest.raises(ValueError, match="sensor_noise"):
        TrainConfig(sensor_noise=-1)


def test_a_step_the_fp16_scaler_skips_does_not_advance_the_schedule(image_dir, tmp_path):
    """An overflowing fp16 step is skipped by the GradScaler; the learning-rate schedule waits for it (no torch warning
    about a scheduler stepping before its optimiser), and the next good step advances both."""
    import warnings

    from denoise_core.training import TrainConfig

    trainer = Trainer(TrainConfig(image_dir=str(image_dir), save_path=str(tmp_path / "run"), val_ratio=0.3, **OPTS))
    trainer.setup()
    trainer.epoch_sampler.set_epoch(1)
    batches = iter(trainer.loader)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    scheduled = trainer.scheduler.last_epoch
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=3e38)  # the scaled loss (|loss| > 1.2) overflows: skipped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train_step(*next(batches))
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]
    assert trainer.scheduler.last_epoch == scheduled and trainer.scaler.get_scale() < 3e38
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    trainer.train_step(*next(batches))
    assert trainer.scheduler.last_epoch == scheduled + 1
    assert not all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
