"""Restoring a whole folder: every image under it into the same tree elsewhere, the model loaded once.

`restore_folder` is what ``python -m denoise_core restore IN_DIR OUT_DIR`` runs. Each output
is written atomically (`denoise_core.images.save_image`), so an interrupted batch leaves only
whole files, and ``skip_existing`` continues it. A file that cannot be read or restored is
reported and skipped; the others go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .checkpoint import CheckpointError
from .images import IMAGE_EXTENSIONS, JPEG_QUALITY, ImageError, open_image, output_suffix, save_image
from .inference import load_runner

log = logging.getLogger(__name__)

OUTPUT_FORMATS = ("keep", "png")


@dataclass
class FolderReport:
    """What a folder restore did: outputs written, outputs already there, and (input, reason) for each failure."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def folder_inputs(in_dir: Path) -> list[Path]:
    """Files under ``in_dir`` (recursive, sorted) with an image suffix; hidden files and folders left out."""
    return sorted(
        p for p in in_dir.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(in_dir).parts)
    )


def output_path(src: Path, in_dir: Path, out_dir: Path, fmt: str = "keep") -> Path:
    """Where ``src`` goes: the same relative path under ``out_dir``; ``png`` (or a suffix we do not write) makes it .png."""
    rel = src.relative_to(in_dir)
    return out_dir / rel.with_suffix(output_suffix(rel, keep=fmt == "keep"))


def restore_folder(
    in_dir: str | Path,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    *,
    fmt: str = "keep",
    skip_existing: bool = False,
    quality: int = JPEG_QUALITY,
    progress: bool = True,
    device: str = "auto",
    backend: str = "auto",
    **kwargs,
) -> FolderReport:
    """Restore every image under ``in_dir`` into the same tree under ``out_dir`` (``kwargs`` go to `restore`).

    ``fmt``: ``keep`` (each file's own format; BMP becomes PNG) or ``png``. Raises ValueError
    when ``in_dir`` is not a folder or holds no images, or ``out_dir`` is inside ``in_dir``.
    """
    from .restoration import restore

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {fmt!r}")
    if not in_dir.is_dir():
        raise ValueError(f"{in_dir}: is not a folder")
    if out_dir.resolve() == in_dir.resolve() or in_dir.resolve() in out_dir.resolve().parents:
        raise ValueError(f"{out_dir}: the output folder must not be the input folder or inside it")
    sources = folder_inputs(in_dir)
    if not sources:
        raise ValueError(f"{in_dir}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder or below")
    load_runner(checkpoint, device, backend)  # cached for every file below; a broken checkpoint fails before any
    report = FolderReport()
    with tqdm(sources, desc="restore", unit="image", disable=not progress, dynamic_ncols=True) as bar:
        for src in bar:
            dst = output_path(src, in_dir, out_dir, fmt)
            if skip_existing and dst.is_file():
                report.skipped.append(dst)
                continue
            try:
                out = restore(open_image(src), checkpoint, device=device, backend=backend, **kwargs)
                save_image(out, dst, quality)
            except CheckpointError:
                raise
            except MemoryError:
                report.failed.append((src, "out of memory; try a smaller --tile"))
                continue
            except (ImageError, OSError, ValueError) as exc:
                reason = str(exc).split(": ", 1)[-1] if str(exc).startswith(src.name) else str(exc)
                report.failed.append((src, reason))
                log.debug("failed %s: %s", src, reason)
                continue
            report.written.append(dst)
    return report


__all__ = ["FolderReport", "OUTPUT_FORMATS", "folder_inputs", "output_path", "restore_folder"]
