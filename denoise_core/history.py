"""Training history: the append-only event log and the Excel workbooks.

``events.jsonl`` holds one JSON object per line with at least ``type`` and
``epoch``. Types: ``status`` (``status`` is started / resumed / stopped /
failed / finished), ``step`` (every N steps), ``epoch`` (all per-epoch figures).
Readers skip a partial last line, so it can be read while training writes it.

``history.xlsx`` is rebuilt from the per-epoch records after every epoch and
replaced atomically. Sheets: ``metrics``, ``weights``, ``per_degradation``.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .checkpoint import atomic_write_bytes
from .runfiles import EVENTS_FILE, WORKBOOK_FILE  # noqa: F401  (WORKBOOK_FILE: re-exported for readers)

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr", "seconds"]
SHEETS = ("metrics", "weights", "per_degradation")


def append_event(run_dir: str | Path, event: dict[str, Any]) -> None:
    """Append one event line (adds ``time``); flushed and fsynced so readers see whole lines."""
    line = json.dumps({"time": time.time(), **event}, sort_keys=True) + "\n"
    with open(Path(run_dir) / EVENTS_FILE, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """All complete, valid event lines of a run (a torn last line is ignored)."""
    path = Path(run_dir) / EVENTS_FILE
    if not path.exists():
        return []
    events = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and "type" in event:
                events.append(event)
    return events


def repair_events(run_dir: str | Path) -> None:
    """Cut a torn last line left by a killed writer, so appends start on a fresh line."""
    path = Path(run_dir) / EVENTS_FILE
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)


def epoch_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Per-epoch records from the event log, one per epoch (a later line for an epoch wins)."""
    by_epoch: dict[int, dict] = {}
    for event in read_events(run_dir):
        if event["type"] == "epoch":
            by_epoch[int(event["epoch"])] = event
    return [by_epoch[e] for e in sorted(by_epoch)]


def history_frames(records: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """The workbook's sheets as DataFrames, from per-epoch records."""
    metrics = pd.DataFrame([{c: r.get(c) for c in METRIC_COLUMNS} for r in records], columns=METRIC_COLUMNS)
    weights = pd.DataFrame([{"epoch": r["epoch"], **r.get("weights", {})} for r in records])
    rows = []
    for r in records:
        for name, m in r.get("per_degradation", {}).items():
            rows.append({"epoch": r["epoch"], "degradation": name, **m})
    per_deg = pd.DataFrame(rows)
    if weights.empty:
        weights = pd.DataFrame(columns=["epoch"])
    if per_deg.empty:
        per_deg = pd.DataFrame(columns=["epoch", "degradation"])
    return {"metrics": metrics, "weights": weights, "per_degradation": per_deg}


def workbook_bytes(frames: dict[str, pd.DataFrame]) -> bytes:
    """An .xlsx file (openpyxl) with one sheet per frame."""
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        for sheet, frame in frames.items():
            frame.to_excel(writer, sheet_name=sheet[:31], index=False)
    return buf.getvalue()


def write_workbook(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write the history workbook atomically (the previous one survives any failure)."""
    atomic_write_bytes(path, workbook_bytes(history_frames(records)))


def combined_workbook(runs: dict[str, list[dict[str, Any]]]) -> bytes:
    """One workbook for several runs: the same sheets, with a leading ``run`` column."""
    combined: dict[str, list[pd.DataFrame]] = {s: [] for s in SHEETS}
    for run, records in runs.items():
        for sheet, frame in history_frames(records).items():
            combined[sheet].append(frame.assign(run=run)[["run", *frame.columns]])
    frames = {s: pd.concat(f, ignore_index=True) if f else pd.DataFrame(columns=["run"]) for s, f in combined.items()}
    return workbook_bytes(frames)
