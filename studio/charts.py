"""Plotly figures of a training history (per-epoch records and step events).

Each degradation has one fixed colour (`DEGRADATION_COLORS`), used by every
chart, so "motion_blur" looks the same in the weights chart and the
per-degradation PSNR chart, and across runs.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from denoise_core.degradations import NAMES

# One colour per degradation, fixed by name (Tableau 10 and 20), never by position.
DEGRADATION_COLORS: dict[str, str] = {
    "gaussian_noise": "#1f77b4",
    "poisson_noise": "#ff7f0e",
    "salt_pepper": "#2ca02c",
    "gaussian_blur": "#d62728",
    "motion_blur": "#9467bd",
    "jpeg": "#8c564b",
    "jpeg_heavy": "#c49c94",
    "low_light": "#e377c2",
    "overexposure": "#7f7f7f",
    "color_cast": "#bcbd22",
    "downsample": "#17becf",
    "camera_noise": "#393b79",
    "channel_noise": "#637939",
    "camera_jpeg": "#843c39",
    "camera_coarse": "#ad494a",
    "mixed": "#000000",
}
_EXTRA = ["#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#f7b6d2"]
# Series of the overall metrics.
SERIES_COLORS = {"train_loss": "#1f77b4", "val_loss": "#d62728", "step_loss": "#9ecae1", "val_psnr": "#2ca02c", "val_ssim": "#9467bd"}
LAYOUT = dict(template="plotly_white", height=320, margin=dict(l=50, r=20, t=40, b=40), legend=dict(orientation="h", y=-0.25))


def degradation_color(name: str) -> str:
    """The colour of degradation ``name`` (a stable fallback for names not in `DEGRADATION_COLORS`)."""
    if name in DEGRADATION_COLORS:
        return DEGRADATION_COLORS[name]
    return _EXTRA[sum(map(ord, name)) % len(_EXTRA)]


def _empty(title: str, message: str = "no epochs yet") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14, color="#888"))
    fig.update_layout(title=title, xaxis=dict(visible=False), yaxis=dict(visible=False), **LAYOUT)
    return fig


def _column(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    rows = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
    return [e for e, _ in rows], [v for _, v in rows]


def _degradation_names(records: list[dict[str, Any]], key: str) -> list[str]:
    """Degradations present in the records, in registry order (unknown names last)."""
    seen = {name for r in records for name in r.get(key, {})}
    return [n for n in NAMES if n in seen] + sorted(seen - set(NAMES))


def loss_figure(records: list[dict[str, Any]], steps: list[dict[str, Any]] | None = None) -> go.Figure:
    """Training and validation loss per epoch; with ``steps`` (step events) the per-step training loss too.

    Steps are placed at fractional epochs (epoch 2, step 5 of 10 -> 1.5), so they line up with the epoch points.
    """
    title = "Loss (MSE + SSIM)"
    if not records and not steps:
        return _empty(title)
    fig = go.Figure()
    if steps:
        xs = [e["epoch"] - 1 + e["step"] / max(e.get("steps") or e["step"], 1) for e in steps]
        fig.add_trace(go.Scatter(x=xs, y=[e["loss"] for e in steps], name="train loss (steps)", mode="lines",
                                 line=dict(color=SERIES_COLORS["step_loss"], width=1)))
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        x, y = _column(records, key)
        fig.add_trace(go.Scatter(x=x, y=y, name=label, mode="lines+markers", line=dict(color=SERIES_COLORS[key])))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="loss", **LAYOUT)
    return fig


def quality_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Validation PSNR (left axis, dB) and SSIM (right axis) per epoch."""
    title = "Validation PSNR / SSIM"
    if not records:
        return _empty(title)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x, y = _column(records, "val_psnr")
    fig.add_trace(go.Scatter(x=x, y=y, name="PSNR (dB)", mode="lines+markers", line=dict(color=SERIES_COLORS["val_psnr"])), secondary_y=False)
    x, y = _column(records, "val_ssim")
    fig.add_trace(go.Scatter(x=x, y=y, name="SSIM", mode="lines+markers", line=dict(color=SERIES_COLORS["val_ssim"], dash="dot")), secondary_y=True)
    fig.update_layout(title=title, xaxis_title="epoch", **LAYOUT)
    fig.update_yaxes(title_text="PSNR (dB)", secondary_y=False)
    fig.update_yaxes(title_text="SSIM", secondary_y=True)
    return fig


def weights_figure(records: list[dict[str, Any]]) -> go.Figure:
    """The sampling weight of each degradation during each epoch (lines; they sum to 1 per epoch)."""
    title = "Degradation weights"
    if not records:
        return _empty(title)
    fig = go.Figure()
    for name in _degradation_names(records, "weights"):
        x = [r["epoch"] for r in records if name in r.get("weights", {})]
        y = [r["weights"][name] for r in records if name in r.get("weights", {})]
        fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines+markers", line=dict(color=degradation_color(name))))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="weight", **LAYOUT)
    return fig


def per_degradation_figure(records: list[dict[str, Any]], metric: str = "val_psnr") -> go.Figure:
    """Validation ``metric`` (default PSNR) per degradation per epoch."""
    title = "Validation PSNR per degradation" if metric == "val_psnr" else f"{metric} per degradation"
    if not records:
        return _empty(title)
    fig = go.Figure()
    for name in _degradation_names(records, "per_degradation"):
        rows = [(r["epoch"], r["per_degradation"][name].get(metric)) for r in records if name in r.get("per_degradation", {})]
        rows = [(e, v) for e, v in rows if v is not None]
        fig.add_trace(go.Scatter(x=[e for e, _ in rows], y=[v for _, v in rows], name=name, mode="lines+markers",
                                 line=dict(color=degradation_color(name))))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="PSNR (dB)" if metric.endswith("psnr") else metric, **LAYOUT)
    return fig


METRIC_LABELS = {"val_psnr": "validation PSNR (dB)", "val_ssim": "validation SSIM", "val_loss": "validation loss", "train_loss": "training loss"}


def compare_figure(runs: dict[str, list[dict[str, Any]]], metric: str = "val_psnr") -> go.Figure:
    """One line per run for ``metric`` (val_psnr, val_ssim, val_loss, train_loss) over epochs."""
    label = METRIC_LABELS.get(metric, metric)
    title = f"Compare runs: {label}"
    if not any(runs.values()):
        return _empty(title, "pick runs with at least one epoch")
    fig = go.Figure()
    for run, records in runs.items():
        x, y = _column(records, metric)
        fig.add_trace(go.Scatter(x=x, y=y, name=run, mode="lines+markers"))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=label, **LAYOUT)
    return fig
