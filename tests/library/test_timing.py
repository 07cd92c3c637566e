"""The time estimate before a run: a few real steps measured, or an earlier run's epochs recorded."""

import json

import pytest
import torch

from conftest import TINY
from denoise_core import train
from denoise_core.data import make_validation_set, validation_size
from denoise_core.timing import Estimate, format_seconds, measure, recorded, timing_key
from denoise_core.training import TrainConfig, epoch_steps, planned_model_config

OPTS = dict(TINY, degradations=["gaussian_noise", "jpeg"], steps_per_epoch=None, crops_per_image=4)


def test_validation_size_is_what_make_validation_set_makes():
    images = [torch.rand(3, 40, 40) for _ in range(5)]
    for names, max_crops, clean in ((["jpeg"], 4, False), (["jpeg", "gaussian_noise"], 100, True), (["mixed"], 1, True)):
        made = make_validation_set(images, names, 16, 0, max_crops, clean_crops=clean)
        assert validation_size(len(images), names, max_crops, clean) == len(made[0])


def test_measure_times_the_real_steps_and_writes_nothing(image_dir, tmp_path):
    cfg = TrainConfig(image_dir=str(image_dir), save_path=str(tmp_path / "never"), epochs=7, val_ratio=0.3, **OPTS)
    said = measure(cfg, steps=3, warmup=1)
    assert said.source == "measured" and said.step_seconds > 0 and said.val_seconds > 0
    # 6 images, 2 held out: 4 x 4 crops in batches of 4
    assert said.steps_per_epoch == epoch_steps(cfg, 4) == 4 and said.epochs == 7
    assert said.epoch_seconds == pytest.approx(4 * said.step_seconds + said.val_seconds)
    assert said.run_seconds == pytest.approx(7 * said.epoch_seconds)
    assert not (tmp_path / "never").exists()
    event = said.event()
    assert event["type"] == "estimate" and event["epoch_seconds"] == pytest.approx(said.epoch_seconds)
    assert said.summary().startswith("about ") and "for 7 epochs (measured: 3 steps" in said.summary()


def test_recorded_uses_a_matching_run_only(image_dir, tmp_path):
    options = dict(OPTS, val_ratio=0.3)
    train(image_dir, epochs=2, save_path=tmp_path / "run", **options)
    cfg = TrainConfig(image_dir=str(image_dir), epochs=5, **options)
    model = planned_model_config(cfg).to_dict()
    threads = torch.get_num_threads()
    said = recorded(cfg, model, "cpu", threads, [tmp_path / "run", tmp_path / "missing"])
    records = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    second = [r for r in records if r["type"] == "epoch"][1]
    assert said.source == "recorded" and said.epochs == 5 and "run run's epochs" in said.detail
    assert said.step_seconds == pytest.approx(second["train_seconds"] / second["steps"])
    assert said.val_seconds == pytest.approx(second["val_seconds"])
    # another batch size, another architecture, another device or thread count: not the same timing
    assert recorded(TrainConfig(image_dir=str(image_dir), **{**options, "batch_size": 2}), model, "cpu", threads,
                    [tmp_path / "run"]) is None
    assert recorded(cfg, {**model, "width": 16}, "cpu", threads, [tmp_path / "run"]) is None
    assert recorded(cfg, model, "cuda", threads, [tmp_path / "run"]) is None
    assert recorded(cfg, model, "cpu", threads + 1, [tmp_path / "run"]) is None
    assert timing_key(cfg.to_dict(), model, "cuda:1", 4) == timing_key(cfg.to_dict(), model, "cuda:0", 4)


def test_an_estimate_for_a_longer_run_and_its_words():
    said = Estimate(step_seconds=0.2, val_seconds=3.0, steps_per_epoch=100, epochs=1, source="recorded", detail="d")
    assert said.for_run(50, 30).run_seconds == pytest.approx(30 * 13.0)
    assert (format_seconds(12.4), format_seconds(185), format_seconds(3725)) == ("12s", "3m 05s", "1h 02m")
