"""Unpacking uploaded dataset zips: zip slip, symlinks, bombs, nested folders, duplicates, non-images."""

from __future__ import annotations

import io
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_image
from studio import archive
from studio.archive import ArchiveError, ZipLimits, unpack_dataset
from studio.workspace import WorkspaceError
from studio_helpers import make_root


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    return make_root(tmp_path, monkeypatch)


def png(seed: int = 0, size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_image(np.random.default_rng(seed), size, size)).save(buf, "PNG")
    return buf.getvalue()


def jpg(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_image(np.random.default_rng(seed), 30, 36)).save(buf, "JPEG")
    return buf.getvalue()


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return buf.getvalue()


def datasets_left(root: Path) -> list[str]:
    """Everything under <root>/datasets except the fixture's own folder: must be empty after a refusal."""
    return sorted(p.name for p in (root / "datasets").iterdir() if p.name != "tiny")


def test_nested_images_are_kept_and_other_files_skipped_with_reasons(root):
    data = make_zip([
        ("photos/", b""),
        ("photos/a.png", png(1)),
        ("photos/sub/deeper/b.jpg", jpg(2)),
        ("photos/readme.txt", b"hello"),
        ("__MACOSX/photos/._a.png", b"\x00\x05\x16\x07"),
        ("photos/.DS_Store", b"x"),
        ("photos/fake.png", b"this is not a png"),
    ])
    report = unpack_dataset(data, "holiday", root)
    target = root / "datasets" / "holiday"
    assert report.path == target.resolve()
    assert sorted(report.kept) == ["photos/a.png", "photos/sub/deeper/b.jpg"]
    assert (target / "photos/sub/deeper/b.jpg").read_bytes() == jpg(2)
    reasons = dict(report.skipped)
    assert reasons["photos/readme.txt"] == "not an image file (.txt)"
    assert reasons["__MACOSX/photos/._a.png"] == "macOS metadata"
    assert reasons["photos/.DS_Store"] == "macOS metadata"
    assert "not an image" in reasons["photos/fake.png"]
    assert not (target / "photos/fake.png").exists() and not (target / "photos/readme.txt").exists()
    assert datasets_left(root) == ["holiday"]  # no temp folder left
    assert "2 image(s) kept" in report.summary() and "4 file(s) skipped" in report.summary()


def test_duplicate_names_are_kept_under_distinct_names(root):
    data = make_zip([("a.png", png(1)), ("a.png", png(2)), ("A.PNG", png(3)), ("dir\\a.png", png(4)), ("dir/a.png", png(5))])
    report = unpack_dataset(data, "dups", root)
    assert report.kept == ["a.png", "a-2.png", "A-3.PNG", "dir/a.png", "dir/a-2.png"]
    assert report.renamed == [("a.png", "a-2.png"), ("A.PNG", "A-3.PNG"), ("dir/a.png", "dir/a-2.png")]
    folder = root / "datasets" / "dups"
    assert (folder / "a.png").read_bytes() == png(1) and (folder / "a-2.png").read_bytes() == png(2)
    assert (folder / "dir" / "a-2.png").read_bytes() == png(5)


@pytest.mark.parametrize("name", ["../evil.png", "photos/../../evil.png", "..\\evil.png", "/tmp/evil.png", "C:/evil.png", "C:\\evil.png"])
def test_zip_slip_entries_refuse_the_whole_archive(root, tmp_path, name):
    info = zipfile.ZipInfo(name)  # ZipInfo keeps the name as given, as a hostile archive would
    data = make_zip([("ok.png", png()), (info, png(1))])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist()[1] == name
    with pytest.raises(ArchiveError, match="zip slip"):
        unpack_dataset(data, "slip", root)
    assert datasets_left(root) == []
    assert not (tmp_path / "evil.png").exists() and not (root / "evil.png").exists()


def test_symlink_entries_refuse_the_whole_archive(root):
    link = zipfile.ZipInfo("link.png")
    link.create_system = 3  # unix
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = make_zip([("ok.png", png()), (link, b"/etc/passwd")], compression=zipfile.ZIP_STORED)
    with pytest.raises(ArchiveError, match="symbolic link"):
        unpack_dataset(data, "links", root)
    assert datasets_left(root) == []


def test_a_zip_bomb_is_refused_by_its_compression_ratio(root):
    bomb = make_zip([("ok.png", png()), ("big.bmp", b"\x00" * (3 * 1024**2))])  # ~1000x with deflate
    with pytest.raises(ArchiveError, match="zip bomb"):
        unpack_dataset(bomb, "bomb", root)  # default limits
    assert datasets_left(root) == []


def test_total_size_and_entry_count_limits(root):
    data = make_zip([(f"img{i}.png", png(i)) for i in range(5)])
    total = sum(len(png(i)) for i in range(5))
    with pytest.raises(ArchiveError, match="uncompressed, above the limit"):
        unpack_dataset(data, "big", root, limits=ZipLimits(max_total_bytes=total - 1))
    with pytest.raises(ArchiveError, match="5 entries, more than the limit of 4"):
        unpack_dataset(data, "many", root, limits=ZipLimits(max_entries=4))
    assert datasets_left(root) == []
    report = unpack_dataset(data, "fits", root, limits=ZipLimits(max_total_bytes=total, max_entries=5))
    assert len(report.kept) == 5


def test_limits_have_documented_env_overrides(root, monkeypatch):
    monkeypatch.setenv("DENOISE_ZIP_MAX_ENTRIES", "2")
    monkeypatch.setenv("DENOISE_ZIP_MAX_RATIO", "12.5")
    assert ZipLimits().max_entries == 2 and ZipLimits().max_ratio == 12.5
    assert ZipLimits().max_total_bytes == 2 * 1024**3
    with pytest.raises(ArchiveError, match="3 entries, more than the limit of 2"):
        unpack_dataset(make_zip([(f"img{i}.png", png(i)) for i in range(3)]), "env", root)


def test_archives_without_images_and_non_zips_leave_nothing(root):
    with pytest.raises(ArchiveError, match="no usable images.*notes.txt: not an image file"):
        unpack_dataset(make_zip([("notes.txt", b"x"), ("broken.jpg", b"\xff\xd8 truncated")]), "empty", root)
    with pytest.raises(ArchiveError, match="not a readable .zip"):
        unpack_dataset(b"PK\x03\x04 garbage", "garbage", root)
    with pytest.raises(ArchiveError, match="not a readable .zip"):
        unpack_dataset(png(), "png", root)
    assert datasets_left(root) == []


def test_bad_or_taken_dataset_names(root):
    data = make_zip([("a.png", png())])
    for name in ("../escape", ".hidden", "a/b", ""):
        with pytest.raises(WorkspaceError):
            unpack_dataset(data, name, root)
    with pytest.raises(WorkspaceError, match="already exists"):
        unpack_dataset(data, "tiny", root)
    assert sorted(p.name for p in (root / "datasets" / "tiny").iterdir()) == [f"img{i}.png" for i in range(6)]
    assert datasets_left(root) == []


def test_a_failure_midway_leaves_no_partial_files(root, monkeypatch):
    calls = []
    real = archive.open_image

    def failing(path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(path)

    monkeypatch.setattr(archive, "open_image", failing)
    with pytest.raises(OSError, match="disk full"):
        unpack_dataset(make_zip([("a.png", png(1)), ("b.png", png(2)), ("c.png", png(3))]), "partial", root)
    assert len(calls) == 2
    assert datasets_left(root) == []


def test_entries_that_lie_about_their_size_are_not_written_beyond_it(root):
    data = bytearray(make_zip([("a.png", png(1)), ("b.png", png(2))], compression=zipfile.ZIP_STORED))
    # Shrink b.png's declared size in the central directory: the data then ends early and fails its CRC.
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        real_size = zf.getinfo("b.png").file_size
    cd = data.rfind(b"PK\x01\x02")  # the last central directory record: b.png
    data[cd + 24 : cd + 28] = (real_size // 2).to_bytes(4, "little")
    report = unpack_dataset(bytes(data), "liar", root)
    assert report.kept == ["a.png"]
    assert "damaged" in dict(report.skipped)["b.png"]
    assert not (root / "datasets" / "liar" / "b.png").exists()


def test_stale_temp_folders_of_a_dead_unpack_are_cleaned_up(root):
    import os
    import time

    stale = root / "datasets" / ".unpack-old-abc"
    fresh = root / "datasets" / ".unpack-busy-def"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "half.png").write_bytes(b"partial")
    old = time.time() - 2 * archive.STALE_TEMP_SECONDS
    os.utime(stale, (old, old))
    unpack_dataset(make_zip([("a.png", png())]), "next", root)
    assert not stale.exists() and fresh.is_dir()  # a recent one may belong to an unpack in progress
