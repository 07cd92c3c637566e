"""Image files in and out: decoding any mode into float arrays, and saving with the input's metadata.

Reading handles L, LA, P, PA, RGB, RGBA, CMYK, YCbCr, 1, I, I;16*, F modes, EXIF
orientation, animated files (first frame), truncated files and decompression
bombs. Everything that goes wrong raises `ImageError` with a message meant for
the person who sent the file.

Writing (`save_image`) keeps the EXIF (orientation already applied to the pixels, so
the tag is reset to 1), ICC profile and DPI in PNG, JPEG, TIFF and WebP, and picks
the output mode per format (`output_mode`): a mode the format holds is kept, others
are converted (CMYK through its ICC profile where it has one).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # only the tensor loaders need it, and a torch-free restore reads images too
    import torch

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# Pixels accepted in one image. Deliberately below Pillow's own 89 MP warning
# threshold: a 40 MP RGB image is already ~500 MB as float32. Change it with the
# DENOISE_MAX_PIXELS environment variable.
MAX_PIXELS = int(os.environ.get("DENOISE_MAX_PIXELS", 40_000_000))
# Pillow's own guard (warning above the limit, error above twice it) is set to the
# same figure so that any code path that opens images with Pillow is covered.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


# The file suffixes read as images (training folders, folder restores).
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class ImageError(ValueError):
    """An input that is not a usable image; the message says why."""


def _name(source: object) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name
    return getattr(source, "name", None) or "the upload"


def open_image(source: str | Path | bytes | BinaryIO, max_pixels: int | None = None) -> Image.Image:
    """Open, size-check, fully decode and EXIF-orient an image (first frame if animated).

    ``info`` holds the file's EXIF (orientation reset to 1, as it is applied), ICC profile and DPI
    (`metadata`), which `save_image` writes back.
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    name = _name(source)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif isinstance(source, (str, Path)) and Path(source).is_dir():
        raise ImageError(f"{name}: is a folder, not an image file")
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
            # Read before the transpose: its copy drops metadata that lives outside ``info`` (TIFF tags).
            meta = metadata(img)
            img = ImageOps.exif_transpose(img)
            img.info.update(meta)
    except ImageError:
        raise
    except FileNotFoundError as exc:
        raise ImageError(f"{name}: file not found") from exc
    except PermissionError as exc:
        raise ImageError(f"{name}: cannot be read (permission denied)") from exc
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


def pixel_count(path: str | Path) -> int | None:
    """Width x height from the file's header (nothing decoded); None when it cannot be read as an image."""
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return w * h


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
    elif mode == "CMYK":
        rgb = np.asarray(cmyk_to_rgb(img), dtype=np.float32) / 255.0
    else:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb), alpha


def load_rgb_tensor(source: str | Path | bytes | BinaryIO, max_pixels: int | None = None) -> torch.Tensor:
    """An image file as a float32 tensor (3, H, W) in [0, 1]; transparency composited on white."""
    rgb, alpha = to_float_rgb(open_image(source, max_pixels))
    if alpha is not None:
        rgb = rgb * alpha[..., None] + (1.0 - alpha[..., None])
    import torch

    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def load_rgb_uint8(source: str | Path | bytes | BinaryIO, max_pixels: int | None = None) -> torch.Tensor:
    """An image file as a uint8 tensor (3, H, W), for compact caching of training data."""
    import torch

    return (load_rgb_tensor(source, max_pixels) * 255.0).round().to(torch.uint8)


# --- metadata and writing ----------------------------------------------------------------------

ORIENTATION = 0x0112
METADATA_KEYS = ("exif", "icc_profile", "dpi")
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
JPEG_QUALITY = 95
# The modes each format stores as they are; `output_mode` maps the others.
_KEEPS = {
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "JPEG": {"L", "RGB", "CMYK"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"},
    "WEBP": {"RGB", "RGBA"},
}
_DEEP = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# TIFF tags that describe the file's own pixel layout (size, strips, compression, profile): not photo metadata.
_LAYOUT_TAGS = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338, 339, 34675}


def metadata(img: Image.Image) -> dict:
    """The EXIF (orientation reset to 1: `open_image` applied it), ICC profile and DPI of ``img``, for `save_image`."""
    meta: dict = {}
    try:
        # A copy: the image's own Exif object is what `ImageOps.exif_transpose` reads the orientation from.
        exif = Image.Exif()
        exif.load(img.getexif().tobytes())
        for tag in _LAYOUT_TAGS.intersection(exif):
            del exif[tag]
        if ORIENTATION in exif:
            exif[ORIENTATION] = 1
        if len(exif):
            meta["exif"] = exif.tobytes()
    except Exception:  # noqa: BLE001 -- malformed EXIF is dropped, never fatal
        pass
    if img.info.get("icc_profile"):
        meta["icc_profile"] = img.info["icc_profile"]
    dpi = img.info.get("dpi")
    if dpi and all(isinstance(v, (int, float)) and v > 0 for v in dpi):
        meta["dpi"] = tuple(float(v) for v in dpi[:2])
    return meta


def image_format(path: str | Path) -> str:
    """The Pillow format for an output file name; ImageError for a suffix we do not write."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ImageError(f"{Path(path).name}: cannot write {Path(path).suffix or 'a file without a suffix'}; "
                         "use .png, .jpg, .tif or .webp")
    return fmt


def output_suffix(name: str | Path, keep: bool = True) -> str:
    """The suffix an output for input ``name`` gets: its own when ``keep`` and a format we write, else .png."""
    suffix = Path(name).suffix.lower()
    return suffix if keep and suffix in FORMATS else ".png"


def output_mode(mode: str, fmt: str) -> str:
    """The mode an image of ``mode`` is written in as ``fmt``: kept when the format holds it, else the nearest one."""
    if mode in _KEEPS[fmt]:
        return mode
    if mode in _DEEP:
        return {"PNG": "I;16", "TIFF": mode}.get(fmt, "L" if fmt == "JPEG" else "RGB")
    alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La")
    if fmt == "JPEG":
        return "L" if mode in ("1", "LA", "La") else "RGB"
    if fmt == "WEBP":
        return "RGBA" if alpha or mode == "P" else "RGB"
    return "RGBA" if alpha else "RGB"


def _profile(icc: bytes):
    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


def _srgb_bytes() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """CMYK to RGB through the image's ICC profile when it has a CMYK one (else Pillow's plain formula)."""
    icc = img.info.get("icc_profile")
    if icc:
        try:
            out = ImageCms.profileToProfile(img, _profile(icc), ImageCms.createProfile("sRGB"), outputMode="RGB")
            out.info["icc_profile"] = _srgb_bytes()
            return out
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # not a usable CMYK profile: the plain conversion below
    out = img.convert("RGB")
    out.info.pop("icc_profile", None)
    return out


def rgb_to_cmyk(img: Image.Image, icc: bytes | None) -> Image.Image:
    """The inverse of `cmyk_to_rgb` for sRGB ``img``: through the CMYK profile ``icc`` when given and usable."""
    if icc:
        try:
            out = ImageCms.profileToProfile(img, ImageCms.createProfile("sRGB"), _profile(icc), outputMode="CMYK")
            out.info["icc_profile"] = icc
            return out
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
    return img.convert("CMYK")


def _scale_deep(img: Image.Image, mode: str) -> Image.Image:
    """16/32-bit or float grey to 8-bit ``mode`` (L or RGB) by scaling, not clipping, and to I;16 for PNG."""
    arr = np.asarray(img, dtype=np.float64)
    full = 1.0 if img.mode == "F" else 65535.0
    if mode == "I;16":
        return Image.fromarray(np.clip(arr / full * 65535.0, 0, 65535).round().astype(np.uint16))
    gray = Image.fromarray(np.clip(arr / full * 255.0, 0, 255).round().astype(np.uint8), "L")
    return gray if mode == "L" else gray.convert(mode)


def convert_for(img: Image.Image, fmt: str) -> Image.Image:
    """``img`` in the mode `output_mode` picks for ``fmt``, its metadata carried over (an ICC profile rewritten
    when the colour space changes)."""
    mode = output_mode(img.mode, fmt)
    if mode == img.mode:
        return img
    info = dict(img.info)
    if img.mode in _DEEP:
        out = _scale_deep(img, mode)
    elif img.mode == "CMYK":
        out = cmyk_to_rgb(img)
        info.pop("icc_profile", None)
        if out.info.get("icc_profile"):
            info["icc_profile"] = out.info["icc_profile"]
        out = out.convert(mode) if mode != "RGB" else out
    elif mode in ("RGB", "L") and img.mode in ("RGBA", "LA", "PA", "P"):
        # No transparency in the format: composited on white, as a viewer shows it.
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(base, rgba).convert(mode)
    else:
        out = img.convert(mode)
    if mode in ("L", "I;16") and img.mode not in ("L", "LA", "1", *_DEEP):
        info.pop("icc_profile", None)  # an RGB profile does not describe a grey image
    out.info.update({k: v for k, v in info.items() if k in METADATA_KEYS})
    return out


def encode_image(img: Image.Image, fmt: str, quality: int = JPEG_QUALITY, meta: dict | None = None) -> bytes:
    """``img`` encoded as ``fmt`` with its metadata (``meta``, default ``img.info``); JPEG at ``quality``, 4:4:4."""
    img = convert_for(img, fmt)
    meta = {**{k: img.info[k] for k in METADATA_KEYS if k in img.info}, **(meta or {})}
    kwargs: dict = {}
    if meta.get("icc_profile"):
        kwargs["icc_profile"] = meta["icc_profile"]
    exif = Image.Exif()
    if meta.get("exif"):
        try:
            exif.load(meta["exif"])
        except Exception:  # noqa: BLE001 -- unreadable EXIF is dropped
            exif = Image.Exif()
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    if meta.get("dpi"):
        kwargs["dpi"] = tuple(meta["dpi"])
        if fmt == "WEBP":  # WebP has no DPI field; EXIF carries it
            exif[0x011A], exif[0x011B], exif[0x0128] = float(meta["dpi"][0]), float(meta["dpi"][1]), 2
    if len(exif):
        kwargs["exif"] = exif.tobytes()
    if fmt == "JPEG":
        kwargs.update(quality=int(quality), subsampling=0 if img.mode != "L" else -1, optimize=True)
    elif fmt == "WEBP":
        kwargs.update(quality=int(quality), method=4)
    elif fmt == "TIFF":
        kwargs.update(compression="tiff_lzw")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def save_image(img: Image.Image, path: str | Path, quality: int = JPEG_QUALITY, meta: dict | None = None) -> Path:
    """Write ``img`` to ``path`` atomically (format from the suffix), with its EXIF, ICC profile and DPI.

    Nothing is left at ``path`` if encoding fails; the parent folder is created.
    """
    from .checkpoint import atomic_write_bytes

    path = Path(path)
    fmt = image_format(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; give an output file name")
    data = encode_image(img, fmt, quality, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path
