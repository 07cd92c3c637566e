"""The decode path: odd modes and random bytes never crash, they decode or raise ImageError."""

import io
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from denoise_core.images import ImageError, load_rgb_tensor, open_image

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_decode_or_raise_image_error(data):
    try:
        t = load_rgb_tensor(data)
    except ImageError:
        return
    assert t.shape[0] == 3 and t.min() >= 0 and t.max() <= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MODES), st.integers(1, 40), st.integers(1, 40), st.sampled_from(["PNG", "TIFF", "WEBP", "JPEG", "BMP", "GIF"]), st.integers(0, 2**32 - 1))
def test_random_valid_images_of_any_mode(mode, w, h, fmt, seed):
    rng = np.random.default_rng(seed)
    img = Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).convert(mode if mode not in ("I;16",) else "L")
    if mode == "I;16":
        img = Image.fromarray((rng.random((h, w)) * 65535).astype(np.uint16))
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # Pillow 12 deprecates writing mode I as PNG; such files exist and must still decode.
            warnings.simplefilter("ignore", DeprecationWarning)
            img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode; nothing to decode
    try:
        Image.open(io.BytesIO(buf.getvalue())).load()
    except OSError:
        # Pillow cannot read back what it wrote (e.g. 1x1 YCbCr TIFF): we must say so, not crash.
        with pytest.raises(ImageError):
            load_rgb_tensor(buf.getvalue())
        return
    t = load_rgb_tensor(buf.getvalue())
    assert t.shape == (3, h, w) and t.min() >= 0 and t.max() <= 1


def test_header_claiming_huge_size_is_refused_before_decoding():
    img = Image.new("L", (20000, 20000))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    with pytest.raises(ImageError, match="megapixels"):
        open_image(buf.getvalue())


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    t = load_rgb_tensor(buf.getvalue())
    assert t.shape == (3, 6, 8) and t[0].mean() > 0.9 and t[2].mean() < 0.1


def test_transparent_pixels_composited_on_white_and_messages():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert load_rgb_tensor(_png(rgba)).min() == 1.0
    with pytest.raises(ImageError, match="not an image"):
        open_image(b"hello world")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        open_image(_png(Image.new("RGB", (64, 64), (10, 20, 30)))[:-30])


def _png(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_pixel_count_reads_the_header_only(tmp_path):
    from denoise_core.images import pixel_count

    photo = tmp_path / "p.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(photo)
    truncated = tmp_path / "t.jpg"
    truncated.write_bytes(photo.read_bytes()[:5000])  # header intact, pixels missing: the size is still known
    (tmp_path / "notes.txt").write_text("not an image")
    assert pixel_count(photo) == 60_000 and pixel_count(truncated) == 60_000
    assert pixel_count(tmp_path / "notes.txt") is None and pixel_count(tmp_path / "missing.png") is None
