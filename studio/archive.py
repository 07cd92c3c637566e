"""Unpacking an uploaded dataset ``.zip`` safely into ``<root>/datasets/<name>``.

Refused outright (nothing is written): a file that is not a zip; any entry
with an absolute path, a ``..`` component or a drive letter (zip slip); any
symlink entry; an archive whose entry count, declared total size or
compression ratio exceeds the limits (zip bombs). Sizes are also counted while
extracting, so an archive that lies about its sizes is stopped too.

Kept: image files (by extension, then fully decoded with the same checks as
training uses), in their nested folders. Skipped, and listed in the report with
the reason: other files, macOS metadata, encrypted entries, images that do not
decode. Two entries that land on the same name (duplicates, or names differing
only in case) are kept under distinct names (``photo-2.png``).

Everything is unpacked into a hidden temp folder inside ``<root>/datasets``
and renamed into place at the end, so a failure at any point leaves no
partial dataset behind.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from denoise_core.images import IMAGE_EXTENSIONS
from denoise_core.images import ImageError, open_image
from .workspace import DATASETS, WorkspaceError, check_name, data_root, safe_path

log = logging.getLogger(__name__)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class ZipLimits:
    """Limits applied to an uploaded archive; the defaults are read from environment variables when created.

    - ``max_total_bytes``: uncompressed size of all entries (``DENOISE_ZIP_MAX_BYTES``, default 2 GiB)
    - ``max_entries``: entries in the archive, folders included (``DENOISE_ZIP_MAX_ENTRIES``, default 10 000)
    - ``max_ratio``: uncompressed / compressed size of an entry, checked for entries above
      ``ratio_min_bytes`` and for the archive as a whole (``DENOISE_ZIP_MAX_RATIO``, default 100;
      photos compress about 1:1, uncompressed BMP/TIFF rarely beyond 1:20)
    - ``ratio_min_bytes``: small entries may compress well without harm (default 1 MiB)
    """

    max_total_bytes: int = field(default_factory=lambda: _env_int("DENOISE_ZIP_MAX_BYTES", 2 * 1024**3))
    max_entries: int = field(default_factory=lambda: _env_int("DENOISE_ZIP_MAX_ENTRIES", 10_000))
    max_ratio: float = field(default_factory=lambda: float(os.environ.get("DENOISE_ZIP_MAX_RATIO", 100)))
    ratio_min_bytes: int = 1024**2


CHUNK = 1024**2
TEMP_PREFIX = ".unpack-"
STALE_TEMP_SECONDS = 3600  # temp folders older than this were left by a server that died mid-unpack


class ArchiveError(ValueError):
    """An archive that is refused as a whole; the message says why."""


@dataclass
class UnpackReport:
    """What `unpack_dataset` did: kept files (relative paths), skipped entries with reasons, renames."""

    name: str
    path: Path
    kept: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"dataset {self.name!r}: {len(self.kept)} image(s) kept"
        if self.skipped:
            text += f", {len(self.skipped)} file(s) skipped"
        if self.renamed:
            text += f", {len(self.renamed)} renamed to avoid duplicate names"
        return text


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _entry_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The entry's path components; `ArchiveError` for absolute paths and ``..`` (zip slip)."""
    raw = info.filename
    name = raw.replace("\\", "/")  # archives made on Windows may use backslashes
    if "\x00" in name:
        raise ArchiveError(f"refused: entry {raw!r} has a NUL character in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"refused: entry {raw!r} has an absolute path (zip slip)")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"refused: entry {raw!r} points outside the archive folder (zip slip)")
    return parts


def _check_archive(infos: list[zipfile.ZipInfo], compressed_size: int, limits: ZipLimits) -> None:
    """Refuse zip slip, symlinks and zip bombs before anything is written."""
    if len(infos) > limits.max_entries:
        raise ArchiveError(f"refused: {len(infos)} entries, more than the limit of {limits.max_entries}")
    total = 0
    for info in infos:
        _entry_parts(info)
        if _is_symlink(info):
            raise ArchiveError(f"refused: entry {info.filename!r} is a symbolic link")
        total += info.file_size
        if info.file_size > limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ArchiveError(
                f"refused: entry {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f}x, "
                f"above the limit of {limits.max_ratio:.0f}x (a possible zip bomb)"
            )
    if total > limits.max_total_bytes:
        raise ArchiveError(
            f"refused: {total / 1e6:.0f} MB uncompressed, above the limit of {limits.max_total_bytes / 1e6:.0f} MB"
        )
    if total > limits.ratio_min_bytes and total > limits.max_ratio * max(compressed_size, 1):
        raise ArchiveError(f"refused: the archive expands more than {limits.max_ratio:.0f}x (a possible zip bomb)")


def _skip_reason(info: zipfile.ZipInfo, parts: tuple[str, ...]) -> str | None:
    if not parts:
        return "empty name"
    if parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] == ".DS_Store":
        return "macOS metadata"
    if any(p.startswith(".") for p in parts):
        return "hidden file"
    if info.flag_bits & 0x1:
        return "encrypted"
    if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image file ({PurePosixPath(parts[-1]).suffix or 'no extension'})"
    return None


def _unique(parts: tuple[str, ...], taken: set[str]) -> tuple[str, ...]:
    """``parts`` with the file name suffixed ``-2``, ``-3``... until no case-insensitive clash remains."""
    stem, suffix = PurePosixPath(parts[-1]).stem, PurePosixPath(parts[-1]).suffix
    candidate, n = parts, 1
    while "/".join(candidate).lower() in taken:
        n += 1
        candidate = (*parts[:-1], f"{stem}-{n}{suffix}")
    taken.add("/".join(candidate).lower())
    # A folder must not share a name with a file either.
    for i in range(1, len(candidate)):
        taken.add("/".join(candidate[:i]).lower() + "/")
    return candidate


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: int) -> int:
    """Copy one entry to ``dest`` in chunks; stops if it exceeds its declared size or the budget. Returns bytes written."""
    written = 0
    limit = min(info.file_size, budget)
    with zf.open(info) as src, open(dest, "xb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise ArchiveError(f"refused: entry {info.filename!r} holds more data than it declares (a possible zip bomb)")
            out.write(chunk)
    return written


def unpack_dataset(
    source: str | Path | bytes | BinaryIO,
    name: str,
    root: str | Path | None = None,
    limits: ZipLimits | None = None,
) -> UnpackReport:
    """Unpack the images of a zip archive into ``<root>/datasets/<name>``; returns the report.

    ``limits`` default to ``ZipLimits()`` (environment overrides applied).
    Raises `ArchiveError` when the archive is refused or holds no usable image,
    `WorkspaceError` for a bad or taken dataset name. Nothing is left behind on failure.
    """
    limits = limits or ZipLimits()
    root = data_root(root)
    check_name(name, "dataset name")
    target = safe_path(root, DATASETS, name)
    if target.exists():
        raise WorkspaceError(f"a dataset named {name!r} already exists; choose another name")
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ArchiveError(f"not a readable .zip archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        compressed = sum(i.compress_size for i in infos)
        _check_archive(infos, compressed, limits)
        _remove_stale_temp(safe_path(root, DATASETS))
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name}-", dir=safe_path(root, DATASETS)))
        try:
            report = _unpack_into(zf, infos, tmp, name, limits)
            if not report.kept:
                detail = "; ".join(f"{n}: {why}" for n, why in report.skipped[:5])
                raise ArchiveError("no usable images in the archive" + (f" ({detail})" if detail else ""))
            try:
                os.rename(tmp, target)  # atomic; fails if the name was taken meanwhile
            except OSError as exc:
                raise WorkspaceError(f"a dataset named {name!r} already exists; choose another name") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    report.path = target
    log.info("%s", report.summary())
    return report


def _remove_stale_temp(folder: Path) -> None:
    """Delete temp folders of unpacks that never finished (the process died); recent ones may be in use."""
    now = time.time()
    for tmp in folder.glob(f"{TEMP_PREFIX}*"):
        try:
            if tmp.is_dir() and not tmp.is_symlink() and now - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
                log.info("removed stale unpack folder %s", tmp)
        except OSError:
            continue


def _unpack_into(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], tmp: Path, name: str, limits: ZipLimits) -> UnpackReport:
    report = UnpackReport(name=name, path=tmp)
    taken: set[str] = set()
    budget = limits.max_total_bytes
    for info in infos:
        if info.is_dir():
            continue
        parts = _entry_parts(info)
        reason = _skip_reason(info, parts)
        if reason:
            report.skipped.append((info.filename, reason))
            continue
        final = _unique(parts, taken)
        dest = tmp.joinpath(*final)
        if not dest.resolve().is_relative_to(tmp.resolve()):  # belt and braces; _entry_parts already refused it
            raise ArchiveError(f"refused: entry {info.filename!r} points outside the archive folder")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            budget -= _extract(zf, info, dest, budget)
        except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
            dest.unlink(missing_ok=True)
            report.skipped.append((info.filename, f"damaged or unsupported entry ({exc})"))
            continue
        except (FileExistsError, NotADirectoryError):
            report.skipped.append((info.filename, "its name clashes with a folder or file of the archive"))
            continue
        try:
            open_image(dest).close()
        except ImageError as exc:
            dest.unlink()
            report.skipped.append((info.filename, str(exc).split(": ", 1)[-1]))
            continue
        rel = "/".join(final)
        if final != parts:
            report.renamed.append(("/".join(parts), rel))
        report.kept.append(rel)
    return report
