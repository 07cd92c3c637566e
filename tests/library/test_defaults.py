"""TrainConfig's defaults are the shipped model's recipe, and train(), the CLI and the Train form share them."""

import dataclasses

import pytest
import torch

from denoise_core.checkpoint import load_checkpoint
from denoise_core.cli import build_parser
from denoise_core.model import ModelConfig
from denoise_core.restoration import DEFAULT_CHECKPOINT
from denoise_core.training import BEFORE_OPTION, NOT_RECIPE, TrainConfig, amp_dtype

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def shipped() -> dict:
    return load_checkpoint(DEFAULT_CHECKPOINT)


def test_every_recipe_field_defaults_to_the_shipped_models_value(shipped):
    recorded = shipped["train_config"]
    defaults = TrainConfig()
    fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_RECIPE]
    assert len(fields) >= 30 and {"block", "loss_norm", "clean_fraction", "sensor_noise", "prior", "amp"} <= set(fields)
    differing = {}
    for name in fields:
        # an option newer than the shipped run meant what it means off (BEFORE_OPTION)
        ours, theirs = getattr(defaults, name), recorded[name] if name in recorded else BEFORE_OPTION[name]
        if name == "amp":  # recorded as what it resolved to on the CPU it trained on (native bf16)
            ours, theirs = amp_dtype(ours, "cpu", cpu_bf16=True), amp_dtype(theirs, "cpu", cpu_bf16=True)
        if ours != theirs:
            differing[name] = (ours, theirs)
    assert not differing, f"TrainConfig() differs from the shipped recipe (default, shipped): {differing}"
    # The block counts: a model trained from scratch gets the shipped architecture.
    assert defaults.model_config() == ModelConfig(**shipped["model_config"])


def test_the_seed_call_and_the_cli_train_with_the_same_defaults():
    seed = TrainConfig(image_dir="x", epochs=30, batch_size=16, learning_rate=1e-4, val_ratio=0.15, save_path="weights")
    assert (seed.block, seed.loss_norm, seed.clean_fraction, seed.sensor_noise) == ("res", "log", 0.1, 3.0)
    # The CLI's flags carry no defaults of their own: only the flags given reach TrainConfig.
    args = build_parser().parse_args(["train", "--data", "x"])
    assert {f.name for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)} == {"image_dir"}
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    assert helps["block"].endswith("(default: res)") and helps["loss_norm"].endswith("(default: log)")
    assert "(default: gaussian_noise=3,poisson_noise=3,camera_noise=3,camera_jpeg=2,jpeg=2)" in helps["prior"]


def test_mixed_precision_per_device():
    assert amp_dtype("auto", "cpu", cpu_bf16=True) == torch.bfloat16
    assert amp_dtype("auto", "cpu", cpu_bf16=False) is None


def test_the_default_prior_keeps_only_the_chosen_degradations_and_an_explicit_one_is_checked():
    assert TrainConfig(degradations=["gaussian_noise", "salt_pepper"]).prior == {"gaussian_noise": 3.0}
    with pytest.raises(ValueError, match="not in this run"):
        from denoise_core.sampler import AdaptiveSampler

        AdaptiveSampler(["jpeg"], prior={"gaussian_noise": 3.0})
