import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).parents[2]


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "denoise_core", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_train_then_restore_from_the_command_line(image_dir, tmp_path):
    out = tmp_path / "run"
    tiny = ["--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "24", "--width", "8", "--depth", "2",
            "--workers", "0", "--degradations", "gaussian_noise,jpeg"]
    r = run("train", "--data", str(image_dir), "--out", str(out), "--epochs", "1", "--val-ratio", "0.3", *tiny,
            "--enc-blocks", "1,2", "--middle-blocks", "3")
    assert r.returncode == 0, r.stderr
    from denoise_core.checkpoint import load_checkpoint

    cfg = load_checkpoint(out / "best.pt")["model_config"]
    assert (cfg["enc_blocks"], cfg["middle_blocks"], cfg["dec_blocks"]) == ([1, 2], 3, [2, 2])  # decoder: the recipe's
    assert "step/s" in r.stderr or "s/step" in r.stderr  # tqdm progress bar
    assert (out / "best.pt").is_file()
    r = run("train", "--data", str(image_dir), "--out", str(out), "--epochs", "2", "--val-ratio", "0.3", "--resume", *tiny)
    assert r.returncode == 0, r.stderr
    r = run("restore", str(next(image_dir.glob("*.png"))), str(tmp_path / "restored.png"), "--checkpoint", str(out / "best.pt"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "restored.png").size == Image.open(next(image_dir.glob("*.png"))).size
    r = run("restore", str(next(image_dir.glob("*.png"))), str(tmp_path / "best.png"), "--checkpoint", str(out / "best.pt"),
            "--ensemble")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "best.png").size == Image.open(tmp_path / "restored.png").size


def test_clear_errors_not_tracebacks(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run("train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "no images" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "x.png").write_bytes(b"nope")
    r = run("train", "--data", str(tmp_path / "empty"), "--enc-blocks", "1,two")
    assert r.returncode == 2 and "comma-separated integers" in r.stderr and "Traceback" not in r.stderr
    r = run("restore", str(tmp_path / "x.png"), str(tmp_path / "y.png"))
    assert r.returncode == 2 and "not an image" in r.stderr and "Traceback" not in r.stderr
    r = run("restore", str(tmp_path / "x.png"), str(tmp_path / "y.png"), "--checkpoint", str(tmp_path / "none.pt"))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_minutes_sizes_the_schedule_from_steps_timed_past_the_prefetched_batches(monkeypatch):
    from denoise_core import cli, timing
    from denoise_core.training import TrainConfig

    timed = []

    def fake_measure(cfg, steps=6, warmup=2):
        timed.append(steps)
        return timing.Estimate(0.05, 2.0, cfg.steps_per_epoch, cfg.epochs, "measured", "steps timed on cuda")

    monkeypatch.setattr(timing, "measure", fake_measure)
    cfg = TrainConfig(image_dir="x", steps_per_epoch=200, num_workers=14)
    assert cli.epochs_for_minutes(cfg, 7) == 35  # 420 s / (200 × 0.05 + 2) s
    assert timed == [56]  # 14 workers × 2 prefetched batches, twice over
    assert cli.epochs_for_minutes(TrainConfig(image_dir="x", steps_per_epoch=200), 0.1) == 1  # at least one epoch


def test_train_for_minutes(image_dir, tmp_path):
    out = tmp_path / "run"
    r = run("train", "--data", str(image_dir), "--out", str(out), "--minutes", "0.05", "--val-ratio", "0.3",
            "--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "24", "--width", "8", "--depth", "2",
            "--workers", "0", "--degradations", "gaussian_noise,jpeg", "--no-progress")
    assert r.returncode == 0, r.stderr
    import re

    from denoise_core.checkpoint import load_checkpoint

    said = re.search(r"(\d+) epochs fit in 3s", r.stderr)
    assert said, r.stderr
    assert load_checkpoint(out / "last.pt")["epoch"] == int(said.group(1)) >= 2
    r = run("train", "--data", str(image_dir), "--out", str(tmp_path / "o"), "--minutes", "0")
    assert r.returncode == 2 and "--minutes must be positive" in r.stderr and "Traceback" not in r.stderr
