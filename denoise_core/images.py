"""Decoding images of any mode into float arrays, with clear errors.

Handles L, LA, P, PA, RGB, RGBA, CMYK, YCbCr, 1, I, I;16*, F modes, EXIF
orientation, animated files (first frame), truncated files and decompression
bombs. Everything that goes wrong raises `ImageError` with a message meant for
the person who sent the file.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

# Pixels accepted in one image. Deliberately below Pillow's own 89 MP warning
# threshold: a 40 MP RGB image is already ~500 MB as float32. Change it with the
# DENOISE_MAX_PIXELS environment variable.
MAX_PIXELS = int(os.environ.get("DENOISE_MAX_PIXELS", 40_000_000))
# Pillow's own guard (warning above the limit, error above twice it) is set to the
# same figure so that any code path that opens images with Pillow is covered.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(ValueError):
    """An input that is not a usable image; the message says why."""


def _name(source: object) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name
    return getattr(source, "name", None) or "the upload"


def open_image(source: str | Path | bytes | BinaryIO, max_pixels: int | None = None) -> Image.Image:
    """Open, size-check, fully decode and EXIF-orient an image (first frame if animated)."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    name = _name(source)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            w, h = img.size
            if w < 1 or h < 1:
                raise ImageError(f"{name}: the image has no pixels ({w}x{h})")
            if w * h > limit:
                raise ImageError(
                    f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, above the limit of "
                    f"{limit / 1e6:.0f} megapixels (set DENOISE_MAX_PIXELS to change it)"
                )
            img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except FileNotFoundError as exc:
        raise ImageError(f"{name}: file not found") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image, or a format this app cannot read") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{name}: refused, the image claims more than {limit / 1e6:.0f} megapixels "
            "(a possible decompression bomb; set DENOISE_MAX_PIXELS to change the limit)"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError) as exc:
        raise ImageError(f"{name}: the file is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    return img


def has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def to_float_rgb(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Colour as float32 (H, W, 3) in [0, 1] and alpha as float32 (H, W) or None.

    16-bit and 32-bit integer modes keep their precision; float mode is read as
    [0, 1] when its maximum is <= 1, else as [0, 255].
    """
    alpha = None
    if has_alpha(img):
        rgba = img.convert("RGBA") if img.mode != "LA" else img
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        img = img.convert("RGB") if img.mode != "LA" else img.getchannel("L")
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.float32)
        arr = np.clip(arr / 65535.0, 0.0, 1.0)
        rgb = np.repeat(arr[..., None], 3, axis=2)
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
        scale = 1.0 if arr.size == 0 or arr.max() <= 1.0 else 255.0
        rgb = np.repeat(np.clip(arr / scale, 0.0, 1.0)[..., None], 3, axis=2)
    else:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb), alpha


def load_rgb_tensor(source: str | Path | bytes | BinaryIO, max_pixels: int | None = None) -> torch.Tensor:
    """An image file as a float32 tensor (3, H, W) in [0, 1]; transparency composited on white."""
    rgb, alpha = to_float_rgb(open_image(source, max_pixels))
    if alpha is not None:
        rgb = rgb * alpha[..., None] + (1.0 - alpha[..., None])
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def load_rgb_uint8(source: str | Path | bytes | BinaryIO, max_pixels: int | None = None) -> torch.Tensor:
    """An image file as a uint8 tensor (3, H, W), for compact caching of training data."""
    return (load_rgb_tensor(source, max_pixels) * 255.0).round().to(torch.uint8)
