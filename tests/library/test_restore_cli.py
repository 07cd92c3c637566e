"""`python -m denoise_core restore`: files and whole folders, and every error path as one line with exit status 2."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import make_image
from denoise_core.cli import main

REPO = Path(__file__).resolve().parents[2]


def _png(path: Path, h: int = 24, w: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_image(np.random.default_rng(seed), h, w)).save(path)
    return path


def _run(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["restore", *map(str, args), "--device", "cpu", "--no-progress"])
    return rc, err.getvalue()


def test_folder_is_restored_into_the_same_tree(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    _png(src / "a.png")
    _png(src / "trip" / "day 1" / "b.png", seed=1)
    Image.fromarray(make_image(np.random.default_rng(2), 20, 20)).save(src / "trip" / "c.jpg", quality=90)
    Image.fromarray(make_image(np.random.default_rng(3), 20, 20)).save(src / "d.bmp")
    (src / "notes.txt").write_text("not an image, not an image suffix: ignored")
    (src / ".hidden").mkdir()
    _png(src / ".hidden" / "e.png")
    rc, err = _run([src, tmp_path / "out", "--checkpoint", tiny_checkpoint])
    assert rc == 0, err
    got = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert got == ["a.png", "d.png", "trip/c.jpg", "trip/day 1/b.png"]  # BMP is not written: PNG instead
    assert Image.open(tmp_path / "out" / "trip" / "c.jpg").format == "JPEG"
    # --format png: every output a PNG with the same stem.
    rc, _ = _run([src, tmp_path / "png", "--checkpoint", tiny_checkpoint, "--format", "png"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "png").rglob("*.png")) == ["a.png", "b.png", "c.png", "d.png"]


def test_skip_existing_continues_a_batch(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    for i in range(3):
        _png(src / f"{i}.png", seed=i)
    out = tmp_path / "out"
    out.mkdir()
    (out / "1.png").write_bytes(b"left by an earlier run")
    rc, _ = _run([src, out, "--checkpoint", tiny_checkpoint, "--skip-existing"])
    assert rc == 0
    assert (out / "1.png").read_bytes() == b"left by an earlier run"
    assert Image.open(out / "0.png").size == (32, 24) and Image.open(out / "2.png").size == (32, 24)
    rc, _ = _run([src, out, "--checkpoint", tiny_checkpoint])  # without the flag: everything is redone
    assert rc == 0 and Image.open(out / "1.png").size == (32, 24)


def test_unreadable_files_are_listed_and_the_rest_restored(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    _png(src / "good.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    _png(src / "sub" / "also good.png", seed=1)
    rc, err = _run([src, tmp_path / "out", "--checkpoint", tiny_checkpoint])
    assert rc == 2
    assert err.splitlines()[0] == "error: 1 file(s) could not be restored:"
    assert "broken.jpg" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["also good.png", "good.png"]


def test_file_into_a_missing_or_existing_folder(tmp_path, tiny_checkpoint):
    src = _png(tmp_path / "photo.png")
    rc, _ = _run([src, tmp_path / "new" / "sub" / "x.jpg", "--checkpoint", tiny_checkpoint])
    assert rc == 0 and Image.open(tmp_path / "new" / "sub" / "x.jpg").format == "JPEG"
    (tmp_path / "existing").mkdir()
    rc, _ = _run([src, tmp_path / "existing", "--checkpoint", tiny_checkpoint])
    assert rc == 0 and (tmp_path / "existing" / "photo.png").is_file()


@pytest.mark.parametrize("h, w, native_bf16, backend", [(24, 32, True, "onnxruntime"), (1000, 1000, True, "auto"),
                                                         (1000, 1000, False, "onnxruntime")])
def test_one_photo_gets_the_backend_its_size_calls_for(tmp_path, monkeypatch, h, w, native_bf16, backend):
    """A small photo skips torch's import (onnxruntime); a big one on a bf16 CPU keeps "auto" (bf16)."""
    from denoise_core import inference, restoration

    seen = {}

    def fake_restore_file(src, dst, checkpoint=None, quality=None, **options):
        seen.update(options)
        return Path(dst)

    monkeypatch.delenv("DENOISE_BACKEND", raising=False)
    monkeypatch.setattr(inference, "onnxruntime_available", lambda: True)
    monkeypatch.setattr(inference, "cpu_bf16_flag", lambda: native_bf16)
    monkeypatch.setattr(restoration, "restore_file", fake_restore_file)
    rc, _ = _run([_png(tmp_path / "photo.png", h, w), tmp_path / "out.png"])
    assert rc == 0 and seen["backend"] == backend


def test_progress_bar_in_a_real_process(tmp_path, tiny_checkpoint):
    for i in range(2):
        _png(tmp_path / "in" / f"{i}.png", seed=i)
    r = subprocess.run([sys.executable, "-m", "denoise_core", "restore", str(tmp_path / "in"), str(tmp_path / "out"),
                        "--checkpoint", str(tiny_checkpoint), "--device", "cpu"], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "restore: 100%" in r.stderr and "2/2" in r.stderr  # tqdm's bar with the count (and ETA while it runs)


# --- every error path: one line, exit status 2, no traceback, no output left -------------------------------------

def _make_input(kind: str, root: Path, data: bytes) -> Path:
    p = root / "input"
    if kind == "missing":
        return root / "nothing-here.png"
    if kind == "empty folder":
        p.mkdir()
    elif kind == "folder without images":
        p.mkdir()
        (p / "readme.txt").write_text("hello")
    elif kind == "empty file":
        p = root / "empty.png"
        p.write_bytes(b"")
    elif kind == "garbage":
        p = root / "garbage.jpg"
        p.write_bytes(data)
    elif kind == "truncated":
        buf = io.BytesIO()
        Image.fromarray(make_image(np.random.default_rng(0), 32, 32)).save(buf, "PNG")
        whole = buf.getvalue()
        p = root / "cut.png"
        p.write_bytes(whole[: max(1, int(len(whole) * (len(data) % 90 + 5) / 100))])
    elif kind == "text named png":
        p = root / "notes.png"
        p.write_text("this is text " * 20)
    else:  # a good image
        p = _png(root / "good.png")
    return p


INPUT_FAULTS = ["missing", "empty folder", "folder without images", "empty file", "garbage", "truncated", "text named png"]
OUTPUT_FAULTS = ["bad suffix", "no suffix", "file for folder"]
OPTION_FAULTS = ["strength high", "strength low", "quality 0", "quality 101", "tile negative", "broken checkpoint",
                 "missing checkpoint", "noise level words", "noise level high"]


@st.composite
def faults(draw):
    """One to three faults in a restore command; at least one of them is certain to be an error."""
    chosen = draw(st.lists(st.sampled_from(INPUT_FAULTS + OUTPUT_FAULTS + OPTION_FAULTS), min_size=1, max_size=3, unique=True))
    return chosen, draw(st.binary(min_size=0, max_size=64)), draw(st.sampled_from([".png", ".jpg", ".tif", ".webp"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults())
def test_every_error_is_one_line_and_leaves_nothing(tiny_checkpoint, case):
    chosen, data, suffix = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        in_kind = next((f for f in chosen if f in INPUT_FAULTS), "good")
        src = _make_input(in_kind, root, data)
        if in_kind in ("empty folder", "folder without images") or "file for folder" in chosen:
            if not src.is_dir() and in_kind == "good":
                src = src.parent / "folder"
                _png(src / "a.png")
        out_dir = root / "out"
        dst = out_dir / f"restored{suffix}"
        if "bad suffix" in chosen:
            dst = out_dir / "restored.gif"
        elif "no suffix" in chosen and not src.is_dir():
            dst = out_dir / "restored"
        if "file for folder" in chosen:
            out_dir.mkdir(exist_ok=True)
            dst = out_dir / "already-a-file.png"
            dst.write_bytes(b"keep me")
        args = [src, dst, "--checkpoint", tiny_checkpoint]
        for fault, extra in [("strength high", ["--strength", "1.5"]), ("strength low", ["--strength", "-0.5"]),
                             ("quality 0", ["--quality", "0"]), ("quality 101", ["--quality", "101"]),
                             ("tile negative", ["--tile", "-8"]), ("noise level words", ["--noise-level", "loud"]),
                             ("noise level high", ["--noise-level", "300"])]:
            if fault in chosen:
                args += extra
        if "broken checkpoint" in chosen:
            (root / "broken.pt").write_bytes(b"PK\x03\x04 not a checkpoint" + data)
            args[3] = root / "broken.pt"
        elif "missing checkpoint" in chosen:
            args[3] = root / "no-such.pt"
        before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
        rc, err = _run(args)
        assert rc == 2, (chosen, err)
        lines = err.strip().splitlines()
        assert lines and lines[0].startswith("error: "), (chosen, err)
        assert "Traceback" not in err
        if not lines[0].startswith("error: 1 file(s) could not be restored"):
            assert len(lines) == 1, (chosen, err)
        after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
        assert after == before, (chosen, set(after) ^ set(before))  # nothing written, nothing changed, no temp files


def test_bad_arguments_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["restore", "a.png", "b.png", "--strength", "strong"])
    assert exc.value.code == 2 and "invalid float value" in capsys.readouterr().err


def test_noise_level_is_told_to_the_model_and_logged(tmp_path, tiny_checkpoint, caplog):
    from denoise_core.restoration import estimate_noise_level, restore

    src = _png(tmp_path / "in.png", 40, 48)
    caplog.set_level("INFO", logger="denoise_core")
    for level, words in (("30", "noise level 30, as asked"),
                         ("auto", f"noise level {estimate_noise_level(Image.open(src)):.1f}, estimated")):
        dst = tmp_path / f"out-{level}.png"
        rc, err = _run([src, dst, "--checkpoint", tiny_checkpoint, "--noise-level", level])
        assert rc == 0, err
        told = 30.0 if level == "30" else "auto"
        from denoise_core.inference import startup_backend

        backend = startup_backend("auto", "cpu", 40 * 48)  # what the command picks for one small photo
        expected = restore(Image.open(src), tiny_checkpoint, device="cpu", backend=backend, noise_level=told)
        assert np.array_equal(np.asarray(Image.open(dst)), np.asarray(expected))
        assert words in caplog.text
