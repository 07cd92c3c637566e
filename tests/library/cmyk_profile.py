"""Test helper: a small, valid CMYK output profile (ICC v2, lut16 tables), written from scratch for tests: no CMYK profile ships
with this machine or its packages. Its press is deliberately unlike Pillow's plain CMYK formula (the inks are
'warm' and the black is weaker), so a conversion that went through it can be told from one that did not."""

from __future__ import annotations

import struct
import warnings

import numpy as np
from skimage.color import lab2rgb, rgb2lab


def _press_rgb(cmyk: np.ndarray) -> np.ndarray:
    """(..., 4) CMYK in [0, 1] -> sRGB in [0, 1]: the profile's press."""
    c, m, y, k = np.moveaxis(cmyk, -1, 0)
    k = 0.8 * k
    rgb = np.stack([(1 - 0.9 * c) * (1 - k), (1 - 0.85 * m) * (1 - k), (1 - 0.7 * y) * (1 - k)], -1)
    return np.clip(rgb * np.array([1.0, 0.96, 0.9]), 0, 1)


def _press_cmyk(rgb: np.ndarray) -> np.ndarray:
    """The inverse of `_press_rgb` (out-of-gamut colours clipped)."""
    n = np.clip(rgb / np.array([1.0, 0.96, 0.9]), 0, 1)
    k = np.minimum(1 - n.max(-1), 0.8)
    rest = np.clip(n / (1 - k)[..., None], 0, 1)
    inks = np.clip((1 - rest) / np.array([0.9, 0.85, 0.7]), 0, 1)
    return np.concatenate([inks, (k / 0.8)[..., None]], -1)


def _lab16(lab: np.ndarray) -> np.ndarray:
    """ICC v2 16-bit Lab encoding (L 0..100 -> 0..0xFF00, a/b -128..127.996 -> 0..0xFFFF)."""
    L = np.clip(lab[..., 0] / 100.0 * 0xFF00, 0, 0xFF00)
    ab = np.clip((lab[..., 1:] + 128.0) * 256.0, 0, 0xFFFF)
    return np.round(np.concatenate([L[..., None], ab], -1)).astype(np.uint16)


def _mft2(n_in: int, n_out: int, grid: int, clut: np.ndarray) -> bytes:
    identity = struct.pack(">9i", 65536, 0, 0, 0, 65536, 0, 0, 0, 65536)
    ramp = np.array([0, 0xFFFF], dtype=">u2").tobytes()  # linear 2-entry curves
    body = b"mft2" + b"\0" * 4 + struct.pack(">BBBB", n_in, n_out, grid, 0) + identity + struct.pack(">HH", 2, 2)
    return body + ramp * n_in + clut.astype(">u2").tobytes() + ramp * n_out


def _text(s: str) -> bytes:
    return b"text" + b"\0" * 4 + s.encode("ascii") + b"\0"


def _desc(s: str) -> bytes:
    a = s.encode("ascii") + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(a)) + a + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + struct.pack(">3i", *(round(v * 65536) for v in (x, y, z)))


def cmyk_profile() -> bytes:
    """The profile's bytes: A2B0 (CMYK -> Lab, 9-point grid) and B2A0 (Lab -> CMYK, 17-point grid)."""
    g = np.linspace(0, 1, 9)
    cmyk = np.stack(np.meshgrid(g, g, g, g, indexing="ij"), -1).reshape(-1, 4)
    a2b = _mft2(4, 3, 9, _lab16(rgb2lab(_press_rgb(cmyk)[None])[0]))
    # B2A0: the press inverted exactly where it can be (black from the lightest channel, then the inks).
    gl, gab = np.linspace(0, 100, 17), np.linspace(-128, 127, 17)
    lab = np.stack(np.meshgrid(gl, gab, gab, indexing="ij"), -1).reshape(-1, 3)
    with warnings.catch_warnings():  # Lab grid points outside sRGB: clipped, as intended
        warnings.simplefilter("ignore")
        rgb = lab2rgb(lab[None])[0]
    b2a = _mft2(3, 4, 17, np.round(_press_cmyk(rgb) * 0xFFFF))
    tags = [(b"desc", _desc("Denoise Studio test press")), (b"cprt", _text("public domain")),
            (b"wtpt", _xyz(0.9642, 1.0, 0.8249)), (b"A2B0", a2b), (b"B2A0", b2a)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, blob in tags:
        blob += b"\0" * (-len(blob) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(blob))
        data += blob
    body = struct.pack(">I", len(tags)) + table + data
    size = 128 + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, b"prtr", b"CMYK", b"Lab ")
    header += b"\0" * 12  # date
    header += b"acsp" + b"APPL" + struct.pack(">I", 0) + b"\0" * 4 + b"\0" * 4 + b"\0" * 8 + struct.pack(">I", 0)
    header += struct.pack(">3i", 63190, 65536, 54061)  # D50 illuminant
    header += b"\0" * 4 + b"\0" * 44
    assert len(header) == 128, len(header)
    return header + body
