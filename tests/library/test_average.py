"""training/average.py: a fine-tuned model mixed with its start, the mix chosen on validation, reported by the card."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from denoise_core.checkpoint import MODEL_FILE_KEYS, load_checkpoint, save_checkpoint, weights_sha256
from denoise_core.model_card import model_card

ROOT = Path(__file__).parents[2]
spec = importlib.util.spec_from_file_location("average", ROOT / "training" / "average.py")
average = importlib.util.module_from_spec(spec)
spec.loader.exec_module(average)


def test_mix_is_a_weighted_mean_in_the_tuned_dtype():
    start = {"w": torch.zeros(3, dtype=torch.float16), "n": torch.tensor(5)}
    tuned = {"w": torch.ones(3, dtype=torch.float16), "n": torch.tensor(7)}
    out = average.mix(start, tuned, 0.7)
    assert out["w"].dtype == torch.float16 and torch.allclose(out["w"].float(), torch.full((3,), 0.7), atol=1e-3)
    assert out["n"].item() == 7  # integer buffers are the tuned model's
    assert torch.equal(average.mix(start, tuned, 0.0)["w"], start["w"])
    with pytest.raises(SystemExit, match="architecture"):
        average.mix({"w": torch.zeros(4)}, {"w": torch.zeros(3)}, 0.5)


def test_choose_takes_the_best_overall_that_keeps_every_degradation_above_the_start():
    table = pd.DataFrame({"all": [30.0, 30.3, 30.4, 30.45, 30.5], "blur": [28.0, 28.1, 28.06, 28.02, 27.9],
                          "motion": [25.0, 25.0, 25.01, 25.01, 25.02], "noise": [31.0, 31.2, 31.3, 31.35, 31.4]},
                         index=[0.0, 0.5, 0.7, 0.8, 1.0])
    # 1.0 is best overall but loses blur; 0.8 keeps blur above the start, without the margin the fine-tune's loss asks
    # for; motion blur barely moves and is not hurt, so it needs no margin
    assert average.choose(table, margin=0.05) == 0.7
    assert average.choose(table, margin=0.08) == 0.5
    assert average.choose(table, margin=0.0) == 0.8
    with pytest.raises(SystemExit, match="nothing written"):
        average.choose(table, margin=0.5)


def test_the_script_writes_the_chosen_mix_and_the_card_says_so(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    run = tiny_checkpoint.parent
    tuned = load_checkpoint(tiny_checkpoint)
    start_path = tmp_path / "start.pt"
    torch.manual_seed(0)
    save_checkpoint(start_path, {**tuned, "model": {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
                                                    for k, v in tuned["model"].items()}})
    out = tmp_path / "averaged.pt"
    monkeypatch.setattr(sys, "argv", ["average.py", str(tiny_checkpoint), "--start", str(start_path), "--run", str(run),
                                      "--alphas", "0.5,1", "--margin", "-100", "--out", str(out)])
    average.main()
    printed = capsys.readouterr().out
    assert "gain over the start" in printed and "chosen: alpha" in printed
    state = load_checkpoint(out)
    record = state["averaged"]
    assert record["alpha"] in (0.5, 1.0) and record["start_weights_sha256"] == weights_sha256(start_path)
    assert set(record["per_degradation"]) == {"gaussian_noise", "clean"}
    assert state["metrics"]["val_psnr"] > 0 and "averaged" in MODEL_FILE_KEYS  # training/ship.py carries it
    expected = average.mix(load_checkpoint(start_path)["model"], tuned["model"], record["alpha"])
    assert all(torch.equal(state["model"][k], expected[k]) for k in expected)
    card = model_card(out, run)
    assert f"{record['alpha']:g} × epoch" in card and "weight averaging, WiSE-FT" in card
    assert "## Validation (the averaged weights)" in card
