import io

import openpyxl

from denoise_core.history import append_event, combined_workbook, epoch_records, read_events, repair_events, write_workbook

REC = {"epoch": 1, "train_loss": 0.1, "val_loss": 0.2, "val_psnr": 25.0, "val_ssim": 0.8, "lr": 1e-3, "seconds": 3.0,
       "weights": {"jpeg": 0.6, "gaussian_noise": 0.4},
       "per_degradation": {"jpeg": {"val_psnr": 24.0}, "gaussian_noise": {"val_psnr": 26.0}}}


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    append_event(tmp_path, {"type": "epoch", **REC})
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"type": "step", "epo')  # a writer killed mid-line
    assert [e["type"] for e in read_events(tmp_path)] == ["epoch"]
    repair_events(tmp_path)
    append_event(tmp_path, {"type": "epoch", **REC, "epoch": 2})
    assert [r["epoch"] for r in epoch_records(tmp_path)] == [1, 2]


def test_duplicate_epoch_lines_collapse(tmp_path):
    append_event(tmp_path, {"type": "epoch", **REC})
    append_event(tmp_path, {"type": "epoch", **REC, "val_loss": 0.15})
    records = epoch_records(tmp_path)
    assert len(records) == 1 and records[0]["val_loss"] == 0.15


def test_workbooks_open_with_openpyxl(tmp_path):
    write_workbook(tmp_path / "h.xlsx", [REC, {**REC, "epoch": 2}])
    wb = openpyxl.load_workbook(tmp_path / "h.xlsx")
    assert wb.sheetnames == ["metrics", "weights", "per_degradation"]
    assert list(wb["weights"].values)[0] == ("epoch", "jpeg", "gaussian_noise")
    both = openpyxl.load_workbook(io.BytesIO(combined_workbook({"a": [REC], "b": [REC, {**REC, "epoch": 2}]})))
    rows = list(both["metrics"].values)
    assert rows[0][0] == "run" and [r[0] for r in rows[1:]] == ["a", "b", "b"]
