"""bench/ablation.py: the weighting experiment's statistics, and its pipeline end to end on two tiny trainings."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_image

ROOT = Path(__file__).parents[2]
spec = importlib.util.spec_from_file_location("ablation", ROOT / "bench" / "ablation.py")
ablation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ablation)


def synthetic_rows(offsets: dict[str, float], noise: float = 0.0, seeds=(0, 1), n_images: int = 30, seed_shift: float = 0.0):
    """uniform = input + 3 dB (+ per-image variation); each other scheme = uniform + its offset (+ noise)."""
    rng = np.random.default_rng(0)
    rows = []
    base = {s: 20.0 + 2 * i for i, s in enumerate(("gaussian_25", "jpeg_10", "low_light"))}
    inputs = {s: level + rng.normal(0, 1, n_images) for s, level in base.items()}  # one benchmark seed: same inputs
    for sd in seeds:
        for s in base:
            for i in range(n_images):
                img = f"{i}.png"
                inp = inputs[s][i]
                uni = inp + 3.0 + (0.5 if s == "jpeg_10" else 0.0) + seed_shift * sd
                rows.append(dict(scheme="input", seed=sd, setting=s, image=img, psnr=inp, ssim=0.5))
                rows.append(dict(scheme="uniform", seed=sd, setting=s, image=img, psnr=uni, ssim=0.8))
                for sc, off in offsets.items():
                    o = off[s] if isinstance(off, dict) else off
                    rows.append(dict(scheme=sc, seed=sd, setting=s, image=img, psnr=uni + o + rng.normal(0, noise), ssim=0.8))
        for i in range(n_images):  # clean: the input scores infinite PSNR, which the statistics must leave out
            rows.append(dict(scheme="input", seed=sd, setting="clean", image=f"{i}.png", psnr=np.inf, ssim=1.0))
            for sc in ("uniform", *offsets):
                rows.append(dict(scheme=sc, seed=sd, setting="clean", image=f"{i}.png", psnr=50.0, ssim=1.0))
    return pd.DataFrame(rows)


def test_a_constant_paired_difference_has_a_zero_width_interval_and_summary_figures_follow():
    stats = ablation.paired_stats(synthetic_rows({"dro": {"gaussian_25": 1.0, "jpeg_10": -0.25, "low_light": 0.0}}))
    ps = stats["settings"].set_index(["setting", "scheme"])
    assert ps.loc[("gaussian_25", "dro"), "diff"] == pytest.approx(1.0)
    assert ps.loc[("gaussian_25", "dro"), "lo"] == pytest.approx(1.0) and ps.loc[("gaussian_25", "dro"), "hi"] == pytest.approx(1.0)
    assert ps.loc[("jpeg_10", "dro"), "diff"] == pytest.approx(-0.25)
    assert ps.loc[("clean", "dro"), "diff"] == pytest.approx(0.0) and np.isnan(ps.loc[("clean", "uniform"), "input"])
    summ = stats["summary"].set_index("scheme")
    # Gains of uniform over the input: +3, +3.5, +3 -> worst +3; dro: +4, +3.25, +3 -> worst +3 (low_light).
    assert summ.loc["uniform", "worst_gain"] == pytest.approx(3.0)
    assert summ.loc["dro", "mean_diff"] == pytest.approx((1.0 - 0.25) / 3)
    assert summ.loc["dro", "worst_gain_diff"] == pytest.approx(0.0, abs=1e-9)
    assert summ.loc["dro", "worst_setting"] == "gaussian_25"  # the lowest mean PSNR of the degraded settings (about 24)
    text = ablation.markdown(stats)
    assert "| gaussian_25 |" in text and "+1.00 [+1.00, +1.00]*" in text


def test_the_interval_covers_a_noisy_difference_and_the_seed_spread_is_reported():
    stats = ablation.paired_stats(synthetic_rows({"softmax": 0.2}, noise=1.0, seed_shift=0.6))
    ps = stats["settings"].set_index(["setting", "scheme"])
    r = ps.loc[("gaussian_25", "softmax")]
    assert r["lo"] < 0.2 < r["hi"] and r["hi"] - r["lo"] < 1.0
    assert r["seed_spread"] >= 0.6 - 1e-9  # uniform's seeds differ by exactly 0.6; softmax's by 0.6 + noise
    # A 0.2 dB gain whose seeds differ by 0.6 dB is not "beyond the seed spread", whatever its interval says.
    assert "†" not in ablation._beyond(r["diff"], r["lo"], r["hi"], r["seed_spread"])
    assert ablation._beyond(1.0, 0.5, 1.5, 0.4) == "*†" and ablation._beyond(0.1, -0.2, 0.4, 0.0) == ""


def test_a_set_still_running_reports_what_it_has():
    """Partway through (softmax has only seed 0), the spread comes from the schemes with both seeds and the
    difference from the seeds that both schemes have."""
    rows = synthetic_rows({"softmax": 0.5}, seed_shift=0.6)
    rows = rows[~((rows["scheme"] == "softmax") & (rows["seed"] == 1))]
    stats = ablation.paired_stats(rows)
    r = stats["settings"].set_index(["setting", "scheme"]).loc[("gaussian_25", "softmax")]
    assert r["diff"] == pytest.approx(0.5) and r["seed_spread"] == pytest.approx(0.6) and np.isnan(r["psnr_seed1"])
    summ = stats["summary"].set_index("scheme")
    assert np.isnan(summ.loc["softmax", "mean_seed_spread"]) and summ.loc["uniform", "mean_seed_spread"] == pytest.approx(0.6)
    assert "| softmax |" in ablation.markdown(stats)


@pytest.mark.slow
def test_the_pipeline_trains_scores_reports_and_skips_what_is_done(tmp_path):
    rng = np.random.default_rng(5)
    (tmp_path / "train").mkdir()
    (tmp_path / "bench").mkdir()
    for i in range(5):
        Image.fromarray(make_image(rng, 48, 48)).save(tmp_path / "train" / f"{i}.png")
    for i in range(2):
        Image.fromarray(make_image(rng, 40, 44)).save(tmp_path / "bench" / f"b{i}.png")
    doc = tmp_path / "design.md"
    doc.write_text("intro\n<!-- ablation:start -->\nold table\n<!-- ablation:end -->\nafter\n")
    csv = tmp_path / "results" / "ablation.csv"
    cmd = [sys.executable, str(ROOT / "bench" / "ablation.py"), "run", "--data", str(tmp_path / "train"),
           "--bench-data", str(tmp_path / "bench"), "--runs", str(tmp_path / "runs"), "--schemes", "uniform,dro",
           "--seeds", "0", "--settings", "clean,gaussian_25,jpeg_10", "--csv", str(csv), "--doc", str(doc),
           "--train-args", "--epochs 2 --steps-per-epoch 2 --width 8 --depth 1 --patch-size 24 --batch-size 4 --val-ratio 0.4"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]

    rows = pd.read_csv(csv)
    assert list(rows.columns) == ["scheme", "seed", "setting", "image", "psnr", "ssim"]
    # 2 schemes on 3 settings + the input on the 2 degraded ones, 2 images, one seed; every model row a real score.
    assert len(rows) == 2 * 3 * 2 + 2 * 2 and set(rows["scheme"]) == {"uniform", "dro", "input"}
    model = rows[rows["scheme"] != "input"]
    assert np.isfinite(model["psnr"]).all() and (model["psnr"] > 5).all() and model["ssim"].between(0, 1).all()
    facts = json.loads(csv.with_name("ablation-runs.json").read_text())
    assert set(facts) == {"uniform-s0", "dro-s0"} and facts["dro-s0"]["steps"] == 4
    # Uniform's weights never move; DRO's do after its first update.
    assert len(set(facts["uniform-s0"]["final_weights"].values())) == 1
    assert len(set(facts["dro-s0"]["final_weights"].values())) > 1
    text = doc.read_text()
    assert "old table" not in text and text.startswith("intro\n<!-- ablation:start -->\n") and text.endswith("<!-- ablation:end -->\nafter\n")
    assert "| jpeg_10 |" in text and "dro − uniform" in text
    assert csv.with_suffix(".png").stat().st_size > 5000 and csv.with_suffix(".md").is_file()

    # Rerun: both are complete, so nothing is trained or scored again.
    mtime = (tmp_path / "runs" / "dro-s0" / "best.pt").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 of 2 trainings to run" in again.stderr
    assert (tmp_path / "runs" / "dro-s0" / "best.pt").stat().st_mtime_ns == mtime
    assert pd.read_csv(csv).equals(rows)
