"""Plotly figures of a training history: series, fixed colours per degradation, empty states."""

from __future__ import annotations

import pytest

from studio import charts
from denoise_core.degradations import NAMES


def record(epoch: int, names: list[str]) -> dict:
    weights = {n: (i + epoch) / 100 for i, n in enumerate(names)}
    per_deg = {n: {"val_psnr": 20.0 + i + epoch, "val_ssim": 0.5, "val_loss": 0.1} for i, n in enumerate(names)}
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.2 / epoch, "val_psnr": 20.0 + epoch,
            "val_ssim": 0.5 + epoch / 100, "weights": weights, "per_degradation": per_deg}


def traces(fig) -> dict:
    return {t.name: t for t in fig.data}


def test_every_degradation_has_its_own_colour():
    assert set(charts.DEGRADATION_COLORS) == set(NAMES)
    assert len(set(charts.DEGRADATION_COLORS.values())) == len(NAMES)
    assert charts.degradation_color("something_new") == charts.degradation_color("something_new")


def test_the_same_degradation_has_the_same_colour_in_every_chart():
    # Two runs with different subsets and orders of degradations.
    a = [record(e, ["jpeg", "gaussian_noise", "motion_blur"]) for e in (1, 2)]
    b = [record(e, ["motion_blur", "low_light"]) for e in (1, 2, 3)]
    for records in (a, b):
        for fig in (charts.weights_figure(records), charts.per_degradation_figure(records)):
            for name, trace in traces(fig).items():
                assert trace.line.color == charts.DEGRADATION_COLORS[name]
    assert traces(charts.weights_figure(a))["motion_blur"].line.color == traces(charts.per_degradation_figure(b))["motion_blur"].line.color


def test_weights_and_per_degradation_series_follow_the_records():
    records = [record(e, ["jpeg", "gaussian_noise"]) for e in (1, 2, 3)]
    w = traces(charts.weights_figure(records))
    assert list(w) == ["gaussian_noise", "jpeg"]  # registry order, whatever the record's order
    assert list(w["jpeg"].x) == [1, 2, 3] and list(w["jpeg"].y) == pytest.approx([0.01, 0.02, 0.03])
    p = traces(charts.per_degradation_figure(records))
    assert list(p["gaussian_noise"].y) == pytest.approx([22.0, 23.0, 24.0])


def test_loss_figure_places_steps_at_fractional_epochs():
    records = [record(e, ["jpeg"]) for e in (1, 2)]
    steps = [{"epoch": 1, "step": 5, "steps": 10, "loss": 0.9}, {"epoch": 2, "step": 10, "steps": 10, "loss": 0.4}]
    t = traces(charts.loss_figure(records, steps))
    assert list(t["train loss (steps)"].x) == [0.5, 2.0]
    assert list(t["train loss"].y) == pytest.approx([1.0, 0.5])
    assert list(t["validation loss"].x) == [1, 2]
    assert len(traces(charts.loss_figure(records))) == 2


def test_quality_figure_puts_ssim_on_a_second_axis():
    fig = charts.quality_figure([record(e, ["jpeg"]) for e in (1, 2)])
    t = traces(fig)
    assert list(t["PSNR (dB)"].y) == [21.0, 22.0] and t["PSNR (dB)"].yaxis == "y"
    assert t["SSIM"].yaxis == "y2"


def test_compare_figure_has_one_line_per_run():
    fig = charts.compare_figure({"run-a": [record(1, ["jpeg"])], "run-b": [record(1, ["jpeg"]), record(2, ["jpeg"])]}, "val_loss")
    t = traces(fig)
    assert list(t) == ["run-a", "run-b"] and list(t["run-b"].y) == pytest.approx([1.2, 0.6])
    assert "validation loss" in fig.layout.title.text


@pytest.mark.parametrize("build", [charts.loss_figure, charts.quality_figure, charts.weights_figure, charts.per_degradation_figure])
def test_empty_histories_give_a_placeholder(build):
    fig = build([])
    assert len(fig.data) == 0
    assert fig.layout.annotations[0].text == "no epochs yet"
    assert len(charts.compare_figure({"a": []}).data) == 0
