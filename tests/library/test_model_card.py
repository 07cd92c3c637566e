"""MODEL_CARD.md: written when a run finishes, generated from the run's own files, with the Hub's front matter."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from conftest import TINY, make_image
from denoise_core import bench, train
from denoise_core.checkpoint import load_checkpoint
from denoise_core.model import build_model, count_parameters
from denoise_core.model_card import model_card


def _front(text: str) -> str:
    assert text.startswith("---\n")
    return text.split("---\n", 2)[1]


def test_finished_run_gets_a_card_from_its_own_files(tmp_path):
    folder = tmp_path / "my photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(make_image(rng, 40, 44)).save(folder / f"{i}.png")
    run = tmp_path / "run"
    train(folder, epochs=2, val_ratio=0.4, save_path=run, **dict(TINY, degradations=["gaussian_noise", "jpeg"],
                                                                  rich_colour=0.5))
    card = (run / "MODEL_CARD.md").read_text()
    front = _front(card)
    for key in ("license: apache-2.0", "pipeline_tag: image-to-image", "tags:", "datasets:\n- my photos", "metrics:\n- psnr"):
        assert key in front, key
    state = load_checkpoint(run / "best.pt")
    params = count_parameters(build_model(state["model_config"]))
    assert f"| parameters | {params:,} |" in card
    assert "`my photos` (3 training / 2 validation images" in card
    assert "2 of 2 epochs, 6 steps" in card  # TINY: 3 steps per epoch
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    last = [e for e in events if e["type"] == "epoch"][-1]
    assert f"| jpeg | {last['next_weights']['jpeg']:.3f} |" in card
    assert "| gaussian_noise |" in card and "restored PSNR (dB)" in card
    assert "| started from | scratch (random weights) |" in card
    assert "rich_colour 0.5" in card.split("| options |")[1].splitlines()[0]  # the run's colour-rich crops
    assert "Intended use and limits" in card and "## Licences" in card
    assert "## Benchmark" not in card  # none was run for this checkpoint


def test_benchmark_table_only_for_the_same_checkpoint(tmp_path, tiny_checkpoint, image_dir):
    run = tiny_checkpoint.parent
    out = tmp_path / "bench-here"
    bench.run_benchmark(image_dir, out, checkpoint=tiny_checkpoint, settings=["gaussian_25"],
                        methods=["identity", "model"], limit=2, progress=False)
    card = model_card(tiny_checkpoint, run, bench_places=[out])
    assert "## Benchmark" in card and "| gaussian_25 | 2 |" in card
    identity = json.loads((out / "bench.json").read_text())
    (out / "bench.json").write_text(json.dumps({**identity, "checkpoint_sha256": "0" * 64}))  # another file, same model
    assert "| gaussian_25 | 2 |" in model_card(tiny_checkpoint, run, bench_places=[out])
    (out / "bench.json").write_text(json.dumps({**identity, "checkpoint_sha256": "0" * 64, "weights_sha256": "1" * 64}))
    assert "## Benchmark" not in model_card(tiny_checkpoint, run, bench_places=[out])  # another model's
    assert "## Benchmark" not in model_card(tiny_checkpoint, run, bench_places=[tmp_path / "nothing"])
