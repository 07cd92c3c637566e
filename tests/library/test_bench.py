import csv
import dataclasses
import hashlib
import json
import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.ndimage import convolve

from conftest import TINY, make_image
from denoise_core import bench, degradations, loading
from denoise_core.images import load_rgb_tensor
from denoise_core.cli import main
from denoise_core.training import train


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A width-8 model trained for one tiny epoch: only the plumbing is under test, not its quality."""
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(make_image(rng, 40, 44)).save(root / f"t{i}.png")
    train(root, epochs=1, val_ratio=0.25, save_path=root / "run", degradations=["gaussian_noise"], **TINY)
    return root / "run" / "best.pt"


@pytest.fixture
def bench_dir(tmp_path) -> Path:
    """Two small clean images, one of them in a subfolder."""
    rng = np.random.default_rng(2)
    root = tmp_path / "clean"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(make_image(rng, 40, 48)).save(root / "a.png")
    Image.fromarray(make_image(rng, 44, 36)).save(root / "sub" / "b.png")
    return root


def smooth_image(h: int = 64, w: int = 72) -> torch.Tensor:
    return torch.from_numpy(make_image(np.random.default_rng(3), h, w)).permute(2, 0, 1).float() / 255.0


def test_settings_table_matches_the_library():
    assert list(bench.SETTINGS) == ["clean", "gaussian_15", "gaussian_25", "gaussian_50", "poisson", "salt_pepper", "gaussian_blur",
                                    "motion_blur", "jpeg_10", "jpeg_30", "low_light", "downsample_2", "mixed",
                                    "camera_noise", "camera_jpeg", "noise_jpeg", "real"]
    steps = {name: dict(s.steps) for name, s in bench.SETTINGS.items()}
    for name, sigma in (("gaussian_15", 15), ("gaussian_25", 25), ("gaussian_50", 50)):
        assert steps[name]["gaussian_noise"] * 50 == pytest.approx(sigma)
    assert degradations.jpeg_quality(steps["jpeg_10"]["jpeg"]) == 10
    assert degradations.jpeg_quality(steps["jpeg_30"]["jpeg"]) == 30
    assert degradations.gaussian_blur_sigma(steps["gaussian_blur"]["gaussian_blur"]) == pytest.approx(1.6)
    assert steps["gaussian_blur"]["gaussian_noise"] * 50 == pytest.approx(2)
    assert degradations.downsample_factor(steps["downsample_2"]["downsample"]) == 2
    assert 0.2 * steps["salt_pepper"]["salt_pepper"] == pytest.approx(0.05)
    assert steps["noise_jpeg"]["gaussian_noise"] * 50 == pytest.approx(15)
    assert degradations.jpeg_quality(steps["noise_jpeg"]["jpeg"]) == 50
    for s in bench.SETTINGS.values():
        assert all(name in degradations.REGISTRY for name, _ in s.steps)
    assert steps["clean"] == {} and "clean" not in bench.METHODS["identity"].settings
    case = bench.degrade("clean", smooth_image(), 0, "x.png")
    assert np.array_equal(case.degraded, case.clean) and case.sigma is None
    for m in bench.METHODS.values():
        assert set(m.settings) <= set(bench.SETTINGS)
    # The one documented table lists every setting and method.
    for name in [*bench.SETTINGS, *bench.METHODS]:
        assert f"\n{name} " in bench.__doc__


def test_degradation_is_seeded_per_setting_and_image():
    x = smooth_image()
    a = bench.degrade("gaussian_25", x, seed=0, image="a.png")
    again = bench.degrade("gaussian_25", x, seed=0, image="a.png")
    other = bench.degrade("gaussian_25", x, seed=0, image="b.png")
    reseeded = bench.degrade("gaussian_25", x, seed=1, image="a.png")
    assert np.array_equal(a.degraded, again.degraded)
    assert not np.array_equal(a.degraded, other.degraded) and not np.array_equal(a.degraded, reseeded.degraded)
    assert a.degraded.shape == a.clean.shape == (64, 72, 3) and a.degraded.dtype == np.float32
    assert a.degraded.min() >= 0 and a.degraded.max() <= 1
    assert np.array_equal(a.clean, x.permute(1, 2, 0).numpy())
    assert a.sigma == pytest.approx(25 / 255)
    grey = bench.degrade("gaussian_25", torch.full((3, 64, 64), 0.5), 0, "g")
    assert np.std(grey.degraded - 0.5) == pytest.approx(25 / 255, rel=0.05)


@pytest.mark.parametrize("setting", ["gaussian_blur", "motion_blur"])
def test_true_kernel_reproduces_the_blur(setting):
    case = bench.degrade(setting, smooth_image(), 0, "img.png")
    assert case.psf.ndim == 2 and case.psf.shape[0] % 2 == 1 and case.psf.sum() == pytest.approx(1)
    reblurred = np.stack([convolve(case.clean[..., c], case.psf, mode="reflect") for c in range(3)], axis=-1)
    residual = (case.degraded - reblurred)[8:-8, 8:-8]
    assert residual.std() == pytest.approx(2 / 255, rel=0.25)  # only the 2/255 noise is left


def test_true_tone_curve_and_poisson_sigma():
    x = torch.full((3, 64, 64), 0.6)
    dark = bench.degrade("low_light", x, 0, "d")
    gain, gamma = dark.tone
    assert dark.degraded.mean() == pytest.approx(gain * 0.6**gamma, abs=2e-3)
    assert dark.sigma == pytest.approx(6 / 255)
    shot = bench.degrade("poisson", x, 0, "p")
    assert shot.sigma == pytest.approx(math.sqrt(0.6 / 100))
    assert np.std(shot.degraded) == pytest.approx(shot.sigma, rel=0.05)


@pytest.mark.parametrize(
    "method,setting",
    [("cbm3d", "gaussian_25"), ("ffdnet", "gaussian_25"), ("ffdnet", "gaussian_50"), ("nlm", "gaussian_25"), ("tv", "gaussian_25"), ("wavelet", "gaussian_25"),
     ("wavelet", "poisson"), ("median", "salt_pepper"), ("wiener", "gaussian_blur"), ("richardson_lucy", "gaussian_blur"),
     ("richardson_lucy", "motion_blur"), ("gamma", "low_light"), ("clahe", "low_light")],
)
def test_classical_methods_improve_on_their_setting(method, setting):
    case = bench.degrade(setting, smooth_image(), 0, "img.png")
    restored = bench.METHODS[method].run(case)
    assert restored.shape == case.clean.shape and restored.dtype == np.float32
    assert restored.min() >= 0 and restored.max() <= 1
    assert bench.score(case.clean, restored)[0] > bench.score(case.clean, case.degraded)[0] + 1.0


def test_bicubic_is_the_upsampled_input():
    case = bench.degrade("downsample_2", smooth_image(), 0, "img.png")
    assert np.array_equal(bench.METHODS["bicubic"].run(case), case.degraded)


def test_tone_shift_is_the_mean_channel_offset_in_levels():
    clean = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32) * 0.8 + 0.1
    shifted = clean + np.array([4, -2, 0], np.float32) / 255
    assert bench.tone_shift(clean, shifted) == pytest.approx(2.0, abs=1e-3)
    assert bench.tone_shift(clean, clean) == 0.0


def test_score_matches_known_values():
    clean = np.full((16, 16, 3), 0.5, np.float32)
    assert bench.score(clean, clean + 0.1)[0] == pytest.approx(20.0, abs=1e-4)  # MSE 0.01 at data range 1
    with np.errstate(divide="ignore"):
        assert bench.score(clean, clean) == (math.inf, pytest.approx(1.0))


def test_bench_command_writes_every_output(bench_dir, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    # Every method but cbm3d (about 4 s a call whatever the image size; covered above), plus median,
    # which applies to neither setting and must leave no rows.
    methods = "identity,model,nlm,tv,wavelet,median,wiener,richardson_lucy"
    code = main(["bench", "--data", str(bench_dir), "--checkpoint", str(tiny_checkpoint), "--settings",
                 "motion_blur,gaussian_25", "--methods", methods, "--out", str(out), "--no-progress"])
    assert code == 0
    assert "# Benchmark results" in capsys.readouterr().out

    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["method", "setting", "image", "psnr", "ssim", "tone", "seconds"]
        rows = list(reader)
    expected = {(m, s, img)
                for s, ms in (("gaussian_25", ["identity", "model", "nlm", "tv", "wavelet"]),
                              ("motion_blur", ["identity", "model", "wiener", "richardson_lucy"]))
                for m in ms for img in ("a.png", "sub/b.png")}
    assert len(rows) == len(expected) == 18
    assert {(r["method"], r["setting"], r["image"]) for r in rows} == expected
    for r in rows:
        assert 0 < float(r["psnr"]) < 100 and -1 <= float(r["ssim"]) <= 1 and float(r["seconds"]) >= 0
        assert 0 <= float(r["tone"]) < 255

    summary = (out / "summary.md").read_text()
    assert "| method | gaussian_25 | motion_blur |" in summary  # settings in table order, not command order
    assert "## Seconds per image" in summary and "| method | gaussian_25 | motion_blur | all |" in summary
    means = pd.read_csv(out / "results.csv").groupby(["setting", "method"])[["psnr", "ssim"]].mean()
    for setting in ("gaussian_25", "motion_blur"):
        best = means.loc[setting]["psnr"].idxmax()
        p, s = means.loc[(setting, best)]
        assert f"**{p:.2f} / {s:.3f}**" in summary
    quality = summary.split("## Tone shift")[0]
    assert "## Tone shift (levels)" in summary
    table = [line for line in quality.splitlines() if line.startswith("| ")]
    assert "\n".join(table).count("**") == 4  # one bold cell per setting (no ties here)
    assert quality.count("| median |") == 0  # it applies to neither setting
    wiener_row = next(line for line in quality.splitlines() if line.startswith("| wiener |"))
    assert wiener_row.split("|")[2].strip() == "–"  # wiener does not apply to gaussian_25

    html = (out / "chart.html").read_text()
    assert "plotly" in html.lower() and "richardson_lucy" in html and "gaussian_25" in html
    png = Image.open(out / "chart.png")
    assert png.format == "PNG" and png.width > 300

    # Seeded degradations: a second run sees the same inputs, so identity scores the same.
    again = bench.run_benchmark(bench_dir, tmp_path / "again", settings=["gaussian_25"], methods=["identity"], progress=False)
    first = pd.read_csv(out / "results.csv").query("method == 'identity' and setting == 'gaussian_25'")
    assert np.allclose(sorted(again["psnr"]), sorted(first["psnr"]))


def test_summary_bolds_the_best_psnr_and_ties():
    rows = [("identity", "downsample_2", 30.0), ("bicubic", "downsample_2", 30.0), ("model", "downsample_2", 29.0),
            ("identity", "jpeg_10", 25.0), ("model", "jpeg_10", 26.5)]
    df = pd.DataFrame([dict(method=m, setting=s, image="x", psnr=p, ssim=0.5, seconds=0.1) for m, s, p in rows])
    text = bench.summary_markdown(df)
    table = [line for line in text.split("## Seconds")[0].splitlines() if line.startswith("| ")]
    assert table[0] == "| method | jpeg_10 | downsample_2 |"
    assert table[1] == "| identity | 25.00 / 0.500 | **30.00 / 0.500** |"
    assert table[2] == "| model | **26.50 / 0.500** | 29.00 / 0.500 |"
    assert table[3] == "| bicubic | – | **30.00 / 0.500** |"


def test_model_left_out_without_any_checkpoint(bench_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "DEFAULT_CHECKPOINT", tmp_path / "missing.pt")
    df = bench.run_benchmark(bench_dir, tmp_path / "out", settings=["salt_pepper"], limit=1, progress=False)
    assert sorted(df["method"]) == ["identity", "median"] and list(df["image"].unique()) == ["a.png"]
    # Asked for explicitly, a missing model is an error, not a silent omission.
    code = main(["bench", "--data", str(bench_dir), "--methods", "model", "--settings", "salt_pepper",
                 "--out", str(tmp_path / "o2"), "--no-progress"])
    assert code == 2


def test_unknown_names_are_rejected(bench_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown setting"):
        bench.parse_names("gaussian_25,gaussian_99", bench.SETTINGS, "setting")
    code = main(["bench", "--data", str(bench_dir), "--methods", "bm4d", "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and "bm4d" in capsys.readouterr().err
    assert main(["bench", "--data", str(bench_dir), "--limit", "0", "--out", str(tmp_path / "o"), "--no-progress"]) == 2


def test_resume_keeps_measured_rows_and_rescores_a_new_checkpoint(bench_dir, tiny_checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "out"
    opts = dict(settings=["gaussian_25"], methods=["identity", "model", "tv"], progress=False)
    first = bench.run_benchmark(bench_dir, out, checkpoint=tiny_checkpoint, limit=1, **opts)
    assert len(first) == 3

    calls = []
    real_tv = bench.METHODS["tv"].run
    monkeypatch.setitem(bench.METHODS, "tv", dataclasses.replace(bench.METHODS["tv"], run=lambda case: calls.append(case.image) or real_tv(case)))
    # All images now: only the second image's rows are measured; the first image's are kept as they were.
    second = bench.run_benchmark(bench_dir, out, checkpoint=tiny_checkpoint, resume=True, **opts)
    assert calls == ["sub/b.png"]
    assert len(second) == 6
    kept = second[second["image"] == "a.png"].set_index("method")
    assert np.allclose(kept.loc[["identity", "model", "tv"], "seconds"], first.set_index("method").loc[["identity", "model", "tv"], "seconds"])
    assert len(pd.read_csv(out / "results.csv")) == 6

    # Another checkpoint: its model rows are measured again, the classical rows are kept.
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_checkpoint.read_bytes())
    state = torch.load(other, weights_only=True)
    state["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, other)
    calls.clear()
    third = bench.run_benchmark(bench_dir, out, checkpoint=other, resume=True, **opts)
    assert calls == [] and len(third) == 6
    changed = third.set_index(["method", "image"]).loc["model", "psnr"] - second.set_index(["method", "image"]).loc["model", "psnr"]
    assert (changed.abs() > 1e-6).all()
    assert json.loads((out / "bench.json").read_text())["checkpoint_sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()

    # The same model in another file (here with a recorded training config added): its rows are kept.
    same = tmp_path / "same.pt"
    torch.save({**torch.load(other, weights_only=True), "train_config": {"block": "res"}}, same)
    from denoise_core.checkpoint import weights_sha256

    assert weights_sha256(same) == weights_sha256(other) and same.read_bytes() != other.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(bench, "score", lambda *a, **k: pytest.fail("a kept row was measured again"))
        kept_again = bench.run_benchmark(bench_dir, out, checkpoint=same, resume=True, **opts)
    pd.testing.assert_frame_equal(kept_again.reset_index(drop=True), third.reset_index(drop=True), check_dtype=False)

    # Another seed is another benchmark: nothing is kept.
    fourth = bench.run_benchmark(bench_dir, out, checkpoint=other, resume=True, seed=1, **opts)
    assert sorted(calls) == ["a.png", "sub/b.png"] and len(fourth) == 6


def _bench_script(name: str):
    """The benchmark script of that name, as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[2] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _targets():
    return _bench_script("targets")


def test_targets_table_compares_with_the_best_full_coverage_baseline():
    targets = _targets()
    rows = []
    for image in ("a", "b"):
        rows += [dict(method="identity", setting="gaussian_25", image=image, psnr=20.0, ssim=0.4, tone=3.0, seconds=0.0),
                 dict(method="model", setting="gaussian_25", image=image, psnr=29.0, ssim=0.8, tone=1.0, seconds=1.0),
                 dict(method="tv", setting="gaussian_25", image=image, psnr=28.0, ssim=0.7, tone=0.5, seconds=0.1),
                 dict(method="ffdnet", setting="gaussian_25", image=image, psnr=31.5, ssim=0.9, tone=0.2, seconds=0.5),
                 dict(method="identity", setting="jpeg_10", image=image, psnr=26.0, ssim=0.7, tone=0.1, seconds=0.0),
                 dict(method="model", setting="jpeg_10", image=image, psnr=25.0, ssim=0.7, tone=0.3, seconds=1.0),
                 dict(method="model", setting="clean", image=image, psnr=44.0 + 2 * (image == "b"), ssim=0.99, tone=0.25,
                      seconds=1.0)]
    # cbm3d ran on one image only: not a baseline for the table, but timed on the cases it shares with the model.
    rows.append(dict(method="cbm3d", setting="gaussian_25", image="a", psnr=31.0, ssim=0.9, tone=0.1, seconds=20.0))
    table, checks = targets.target_table(pd.DataFrame(rows))
    # FFDNet is learned: beside the model in its own column, not the "best classical" one.
    assert "| gaussian_25 | 20.00 (0.400) | 29.00 (0.800) | 1.00 | tv 28.00 (0.700) | +1.00 | – | -2.50 |" in table
    assert "| jpeg_10 | 26.00 (0.700) | 25.00 (0.700) | 0.30 | – | – | – | – |" in table
    assert "| clean | – | 45.00 (0.990) | 0.25 |" in table
    assert "- clean: PSNR 45.00 dB (target >= 45), tone shift 0.25 levels (target <= 0.5): met" in checks
    assert "- model above the input: 1 of 2 (missed: jpeg_10)" in checks
    assert "- model above the best classical baseline: 1 of 1" in checks
    assert "- model above FFDNet (moonshot) on gaussian_15, gaussian_25, gaussian_50: 0 of 1 (missed: gaussian_25)" in checks
    assert not any("above CBM3D" in c for c in checks)  # it did not run on every image
    speed = checks[-1]
    assert "ffdnet 0.50 s vs model 1.00 s (0.5x)" in speed and "cbm3d 20.00 s vs model 1.00 s (20.0x)" in speed


def test_model_x8_is_the_self_ensemble_and_opt_in(bench_dir, tiny_checkpoint, tmp_path):
    df = bench.run_benchmark(bench_dir, tmp_path / "out", checkpoint=tiny_checkpoint, settings=["gaussian_25"],
                             methods=["identity", "model", "model_x8"], limit=1, progress=False)
    by = df.set_index("method")
    assert set(by.index) == {"identity", "model", "model_x8"}
    case = bench.degrade("gaussian_25", load_rgb_tensor(bench_dir / "a.png"), 0, "a.png")
    from denoise_core.restoration import restore

    expected = bench.score(case.clean, restore(case.degraded, tiny_checkpoint, device="cpu", ensemble=True))[0]
    assert by.loc["model_x8", "psnr"] == pytest.approx(expected, abs=1e-4)
    assert by.loc["model_x8", "psnr"] != pytest.approx(by.loc["model", "psnr"], abs=1e-4)
    assert "model_x8" not in bench.DEFAULT_METHODS and "model_x8" in bench.METHOD_COLORS


def test_targets_can_check_the_self_ensemble():
    targets = _targets()
    rows = [dict(method=m, setting="gaussian_25", image="a", psnr=p, ssim=0.5, tone=0.0, seconds=1.0)
            for m, p in (("identity", 20.0), ("model", 29.0), ("model_x8", 29.5), ("tv", 29.2))]
    plain, checks = targets.target_table(pd.DataFrame(rows))
    assert "| 29.00 (0.500) | 0.00 | tv 29.20 (0.500) | -0.20 |" in plain and "baseline: 0 of 1" in checks[1]
    x8, checks = targets.target_table(pd.DataFrame(rows), "model_x8")
    assert "| 29.50 (0.500) | 0.00 | tv 29.20 (0.500) | +0.30 |" in x8 and "baseline: 1 of 1" in checks[1]


def test_a_folder_of_real_pairs_is_scored_on_the_real_setting(tiny_checkpoint, tmp_path):
    rng = np.random.default_rng(4)
    root = tmp_path / "pairs"
    root.mkdir()
    for name in ("cam_1", "cam_2"):
        mean = make_image(rng, 40, 48)
        real = np.clip(mean + rng.normal(0, 8, mean.shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(mean).save(root / f"{name}_mean.png")
        Image.fromarray(real).save(root / f"{name}_real.png")
    Image.fromarray(make_image(rng, 40, 48)).save(root / "lonely_real.png")  # no mean beside it: not a pair
    df = bench.run_benchmark(root, tmp_path / "out", checkpoint=tiny_checkpoint, methods=["identity", "model", "ffdnet"],
                             progress=False)
    assert set(df["setting"]) == {"real"} and set(df["image"]) == {"cam_1_real.png", "cam_2_real.png"}
    ident = df[df["method"] == "identity"].set_index("image")["psnr"]
    real = np.asarray(Image.open(root / "cam_1_real.png"), np.float32) / 255
    mean = np.asarray(Image.open(root / "cam_1_mean.png"), np.float32) / 255
    assert ident["cam_1_real.png"] == pytest.approx(bench.score(mean, real)[0])  # the input scored against the mean
    case = bench.real_case(root / "cam_1_real.png", root / "cam_1_mean.png", "cam_1")
    assert case.sigma == pytest.approx(bench.estimated_sigma(real.transpose(2, 0, 1)))  # FFDNet told the estimate
    assert case.sigma >= 1 / 255
    with pytest.raises(ValueError, match="real setting|'real' setting only"):
        bench.run_benchmark(root, tmp_path / "o2", settings=["gaussian_25"], progress=False)


def test_the_real_setting_needs_pairs(bench_dir, tmp_path):
    with pytest.raises(ValueError, match="needs a folder of NAME_real"):
        bench.run_benchmark(bench_dir, tmp_path / "o", settings=["real"], methods=["identity"], progress=False)


def test_model_sigma_is_told_the_true_sigma(bench_dir, tiny_checkpoint, tmp_path, monkeypatch):
    from denoise_core import restoration

    told = []
    real_restore = restoration.restore

    def spy(image, checkpoint=None, **kw):
        told.append(kw.get("noise_level"))
        return real_restore(image, checkpoint, **kw)

    monkeypatch.setattr("denoise_core.restoration.restore", spy)
    df = bench.run_benchmark(bench_dir, tmp_path / "out", checkpoint=tiny_checkpoint, settings=["gaussian_15", "jpeg_10"],
                             methods=["model", "model_sigma"], progress=False)
    assert set(df.loc[df["method"] == "model_sigma", "setting"]) == {"gaussian_15"}  # only where sigma is known
    assert told.count(pytest.approx(15.0)) == 2 and told.count("auto") == 2 * 2 + 1  # + the warm-up call


def test_estimated_settings_tell_peers_the_estimate():
    clean = smooth_image()
    for setting in ("camera_noise", "camera_jpeg", "noise_jpeg"):
        case = bench.degrade(setting, clean, 0, "x")
        assert case.sigma == pytest.approx(bench.estimated_sigma(case.degraded.transpose(2, 0, 1)))
        assert bench.METHODS["ffdnet"].settings.count(setting) == 1


def test_real_noise_targets_say_met_and_missed_with_their_figures(tmp_path, capsys):
    targets = _bench_script("real_noise_targets")

    def csv(name, rows):
        path = tmp_path / name
        pd.DataFrame([dict(image="a", ssim=0.9, tone=0.1, seconds=s, method=m, setting=st, psnr=p) for m, st, p, s in rows]).to_csv(path, index=False)
        return path

    polyu = csv("p.csv", [("identity", "real", 36.0, 0), ("model", "real", 38.5, 0.2), ("cbm3d", "real", 38.6, 9)])
    new = csv("n.csv", [("model", "gaussian_25", 31.0, 0.1), ("ffdnet", "gaussian_25", 30.9, 0.4),
                        ("model_sigma", "gaussian_25", 31.1, 0.1), ("model", "jpeg_10", 27.0, 0.1),
                        ("identity", "jpeg_10", 25.0, 0), ("model", "clean", 50.0, 0.1), ("model", "poisson", 32.0, 0.1)])
    old = csv("o.csv", [("model", "jpeg_10", 26.5, 0.1), ("model", "poisson", 32.5, 0.1)])
    real = tmp_path / "r.csv"
    pd.DataFrame([dict(photo="Dog.png", method="model", noise_left=0.2, noisy_tiles=0.1),
                  dict(photo="Dog.png", method="ffdnet", noise_left=0.5, noisy_tiles=0.5)]).to_csv(real, index=False)
    targets.main(["--polyu", str(polyu), "--cbsd68", str(new), "--previous-cbsd68", str(old), "--real", str(real)])
    text = capsys.readouterr().out
    assert "+2.50; target +2.0): **met**" in text
    assert "above CBM3D told the estimated level (38.50 vs 38.60): **missed**" in text
    assert "38.0 dB on the real pairs (38.50): **met**" in text
    assert "gaussian_25: blind model 31.00 vs FFDNet told sigma 30.90 (+0.10): **met**" in text
    assert "FFDNet + 0.3 (+0.10): **missed**" in text
    assert "told sigma 31.10 vs blind 31.00 (+0.10): **met**" in text
    assert "jpeg_10: +2.00 dB over the input (target +1.5): **met**" in text
    assert "(changes: jpeg_10 +0.50, poisson -0.50): **missed**" in text
    assert "Dog.png: noise left 0.20" in text and "**met**" in text.split("Dog.png")[1]


def test_error_bands_add_up_to_the_mse_and_put_each_error_in_its_band():
    bands = _bench_script("error_bands").band_powers
    rng = np.random.default_rng(0)
    err = rng.normal(0, 0.02, (48, 64, 3))
    parts = bands(err)
    assert parts.shape == (5,) and np.all(parts >= 0)
    assert parts.sum() == pytest.approx((err**2).mean(), rel=1e-9)
    offset = np.full((48, 64, 3), 0.1)
    assert bands(offset)[0] == pytest.approx(0.01) and bands(offset)[1:].sum() == pytest.approx(0, abs=1e-12)
    yy, xx = np.mgrid[:48, :64]
    checker = np.repeat(((-1.0) ** (yy + xx))[..., None] * 0.05, 3, -1)  # period 2 px on both axes: the Nyquist corner
    assert bands(checker)[-1] == pytest.approx(0.0025)
    slow = np.repeat(np.cos(2 * np.pi * xx / 32)[..., None] * 0.05, 3, -1)  # period 32 px: the longest band
    assert bands(slow)[1] == pytest.approx(0.05**2 / 2)


def test_level_sweep_scores_each_scale_and_can_skip_the_ensemble(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(5)
    root = tmp_path / "pairs"
    root.mkdir()
    mean = make_image(rng, 40, 48)
    real = np.clip(mean + rng.normal(0, 8, mean.shape), 0, 255).round().astype(np.uint8)
    Image.fromarray(mean).save(root / "cam_1_mean.png")
    Image.fromarray(real).save(root / "cam_1_real.png")
    sweep = _bench_script("level_sweep")
    monkeypatch.setattr("sys.argv", ["level_sweep", "--data", str(root), "--checkpoint", str(tiny_checkpoint),
                                     "--scales", "1,2", "--no-ensemble"])
    sweep.main()
    text = capsys.readouterr().out
    said = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in text.splitlines() if line.startswith("| ")
            and "PSNR" not in line}
    assert set(said) == {"input", "1 × auto", "2 × auto"}
    assert said["input"] == pytest.approx(bench.score(mean / 255, real / 255)[0], abs=0.01)
    assert said["1 × auto"] != said["2 × auto"]  # the model is told the level


def test_colour_detail_counts_fine_detail_per_channel(tmp_path, capsys, monkeypatch):
    script = _bench_script("colour_detail")
    yy, xx = np.mgrid[:16, :16]
    checker = ((-1.0) ** (yy + xx)) * 0.1 + 0.5  # all its energy in the finest diagonal detail
    assert script.fine_energy(checker) == pytest.approx(4 * 0.1**2)  # the diagonal detail of each 2x2 block is 2 x 0.1
    assert script.fine_energy(np.full((16, 16), 0.3)) == 0
    gray = np.repeat(checker[..., None], 3, -1)
    _, cb, cr = script.colour_detail(gray)
    assert cb == pytest.approx(0, abs=1e-9) and cr == pytest.approx(0, abs=1e-9)  # no colour, no colour detail
    red = np.stack([checker, np.full_like(checker, 0.5), np.full_like(checker, 0.5)], -1)
    assert script.colour_detail(red)[2] > script.colour_detail(red)[1] > 0  # red varies Cr most
    Image.fromarray((red * 255).round().astype(np.uint8)).save(tmp_path / "red.png")
    monkeypatch.setattr("sys.argv", ["colour_detail", str(tmp_path), "--half"])
    script.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {tmp_path.name}")]
    assert len(rows) == 2 and float(rows[0].split("|")[5]) > 0.1


def test_colour_detail_splits_a_restores_error_into_brightness_and_colour(tiny_checkpoint, tmp_path, capsys,
                                                                           monkeypatch):
    script = _bench_script("colour_detail")
    rng = np.random.default_rng(2)
    clean = rng.random((16, 16, 3))
    assert script.channel_errors(clean, clean) == pytest.approx([0, 0, 0])
    brighter = script.channel_errors(np.full((8, 8, 3), 0.5), np.full((8, 8, 3), 0.6))
    assert brighter[0] > 0 and brighter[1:] == pytest.approx([0, 0], abs=1e-12)  # gray moved: brightness only
    Image.fromarray(make_image(rng, 32, 40)).save(tmp_path / "a.png")
    monkeypatch.setattr("sys.argv", ["colour_detail", str(tmp_path), "--sigma", "15",
                                     "--checkpoint", str(tiny_checkpoint)])
    script.main()
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if "σ 15" in line]
    assert [r[2].strip() for r in rows] == ["model", "ffdnet"]
    assert all(float(v) > 0 for r in rows for v in r[3:6])
