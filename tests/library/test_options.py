"""Training options are written once, on TrainConfig's fields: the CLI's train flags and the range checks come from them."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

import pytest

from denoise_core.cli import build_parser
from denoise_core.training import TrainConfig, train_options


def _train_actions() -> dict[str, argparse.Action]:
    parser = build_parser("train")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    return {a.dest: a for a in sub._actions}


def test_every_flagged_option_is_a_cli_flag_with_its_help():
    actions = _train_actions()
    for name, option in train_options().items():
        if option.flag is None:
            continue
        action = actions[name]
        assert option.flag in action.option_strings, name
        assert option.help.replace("%", "%%")[:30] in (action.help or ""), name
        if option.choices and not option.parse:
            assert tuple(action.choices) == option.choices, name
    # and nothing on the command line that TrainConfig does not describe (apart from the CLI's own)
    extra = set(actions) - {f.name for f in fields(TrainConfig)} - {"help", "config", "no_progress", "estimate", "minutes"}
    assert not extra, extra


@pytest.mark.parametrize("name", ["epochs", "sensor_noise", "alpha", "floor", "val_ratio", "patch_size"])
def test_ranges_are_checked_from_the_same_description(name):
    option = train_options()[name]
    TrainConfig(**{name: type(getattr(TrainConfig(), name))(option.maximum)})  # the edge is allowed
    with pytest.raises(ValueError, match=name):
        TrainConfig(**{name: option.maximum * 2 + 1})
    with pytest.raises(ValueError, match=name):
        TrainConfig(**{name: option.minimum - 1})


def test_cli_flags_override_a_config_file(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"image_dir": "x", "epochs": 5, "width": 8, "model_config": {"ignored": True}}))
    args = build_parser("train").parse_args(["train", "--config", str(config), "--epochs", "9", "--uniform"])
    assert (args.config, args.epochs, args.adaptive) == (str(config), 9, False)
    assert not hasattr(args, "width")  # not given: it comes from the file, not from a parser default
