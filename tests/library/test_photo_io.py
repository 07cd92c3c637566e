"""Writing restored photos: every mode x format pair, EXIF/ICC/DPI kept, orientation applied once, JPEG settings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from cmyk_profile import cmyk_profile
from conftest import make_image
from denoise_core.images import ImageError, open_image, output_mode, save_image
from denoise_core.restoration import restore, restore_file

MODES = ["RGB", "RGBA", "L", "LA", "1", "P", "CMYK", "I;16", "I", "F"]
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp"}
MAKE, ORIENTATION = 0x010F, 0x0112
# A real ICC profile (lcms's sRGB) whose bytes we can recognise after the round trip.
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _photo(mode: str, h: int = 20, w: int = 30) -> Image.Image:
    rgb = Image.fromarray(make_image(np.random.default_rng(3), h, w))
    if mode == "I;16":
        return Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    if mode in ("I", "F"):
        gray = np.asarray(rgb.convert("L")).astype(np.float64)
        return Image.fromarray((gray * 257).astype(np.int32) if mode == "I" else (gray / 255).astype(np.float32))
    return rgb.convert(mode)


def _with_metadata(img: Image.Image) -> Image.Image:
    exif = Image.Exif()
    exif[MAKE] = "DenoiseCam"
    img.info["exif"] = exif.tobytes()
    img.info["dpi"] = (300.0, 300.0)
    if img.mode in ("RGB", "RGBA"):
        img.info["icc_profile"] = SRGB_ICC
    return img


def _dpi(out: Image.Image) -> tuple[float, float] | None:
    if "dpi" in out.info:
        return tuple(float(v) for v in out.info["dpi"])
    exif = out.getexif()
    return (float(exif[0x011A]), float(exif[0x011B])) if 0x011A in exif else None


@pytest.mark.parametrize("fmt", list(SUFFIXES))
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_and_format_is_written_with_its_metadata(tmp_path, mode, fmt, tiny_checkpoint):
    src = tmp_path / "in.tif"  # TIFF holds every mode, with EXIF, DPI and ICC
    photo = _with_metadata(_photo(mode))
    save_image(photo, src)
    dst = restore_file(src, tmp_path / f"out{SUFFIXES[fmt]}", tiny_checkpoint, device="cpu", strength=0.5)
    out = Image.open(dst)
    restored_mode = restore(open_image(src), tiny_checkpoint, device="cpu").mode
    assert out.format == fmt and out.size == photo.size
    expected = output_mode(restored_mode, fmt)
    # Pillow reads 16-bit PNG as I;16 and opaque WebP RGBA as RGB: the stored depth is what counts.
    assert out.mode == expected or (expected == "I" and out.mode == "I;16") or (fmt == "WEBP" and out.mode == "RGB")
    assert out.getexif().get(MAKE) == "DenoiseCam"
    dpi = _dpi(out)
    assert dpi is not None and np.allclose(dpi, (300, 300), atol=0.01)
    if mode in ("RGB", "RGBA") and fmt != "JPEG" or (mode == "RGB" and fmt == "JPEG"):
        assert out.info.get("icc_profile") == SRGB_ICC


def test_sixteen_bit_stays_sixteen_bit(tmp_path, tiny_checkpoint):
    src = tmp_path / "deep.png"
    save_image(_photo("I;16"), src)
    for suffix in (".png", ".tif"):
        out = Image.open(restore_file(src, tmp_path / f"out{suffix}", tiny_checkpoint, device="cpu"))
        assert out.mode in ("I;16", "I;16B", "I") and np.asarray(out).max() > 255


def test_exif_rotation_is_applied_once_and_reset(tmp_path, tiny_checkpoint):
    img = Image.fromarray(make_image(np.random.default_rng(0), 20, 40))  # 40 wide, 20 high
    exif = img.getexif()
    exif[ORIENTATION] = 6  # "rotate 90 CW to view"
    exif[MAKE] = "DenoiseCam"
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    for suffix in (".jpg", ".png", ".webp", ".tif"):
        out = Image.open(restore_file(tmp_path / "rot.jpg", tmp_path / f"out{suffix}", tiny_checkpoint, device="cpu"))
        assert out.size == (20, 40), suffix  # rotated into the pixels
        assert out.getexif().get(ORIENTATION, 1) == 1 and out.getexif().get(MAKE) == "DenoiseCam"


def test_cmyk_jpeg_to_every_format(tmp_path, tiny_checkpoint):
    """The reported crash: a CMYK JPEG restored to PNG. CMYK stays CMYK where the format holds it."""
    src = tmp_path / "print.jpg"
    _photo("CMYK").save(src, quality=95)
    modes = {}
    for suffix in (".png", ".jpg", ".tif", ".webp"):
        modes[suffix] = Image.open(restore_file(src, tmp_path / f"out{suffix}", tiny_checkpoint, device="cpu")).mode
    assert modes == {".png": "RGB", ".jpg": "CMYK", ".tif": "CMYK", ".webp": "RGB"}


def test_a_cmyk_photo_is_converted_through_its_own_profile(tmp_path, tiny_checkpoint):
    """CMYK with an embedded ICC profile: RGB outputs go through that profile (not Pillow's plain formula), and
    CMYK outputs come back through it with the profile kept. The profile is written by the test
    (`cmyk_profile.py`): its press is unlike the plain formula, so the two conversions differ by ~20 levels."""
    icc = cmyk_profile()
    profile, srgb = ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB")
    src = tmp_path / "press.jpg"
    _photo("CMYK", 40, 48).save(src, quality=95, icc_profile=icc)
    decoded = Image.open(src)
    through_profile = np.asarray(ImageCms.profileToProfile(decoded, profile, srgb, outputMode="RGB"), dtype=float)
    plain = np.asarray(decoded.convert("RGB"), dtype=float)
    assert np.abs(through_profile - plain).mean() > 10  # the check below can tell the two apart

    # Strength 0 leaves the pixels alone, so the PNG is exactly the profile's conversion, tagged sRGB.
    png = Image.open(restore_file(src, tmp_path / "out.png", tiny_checkpoint, device="cpu", strength=0.0))
    assert png.mode == "RGB" and np.array_equal(np.asarray(png), through_profile.astype(np.uint8))
    assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(png.info["icc_profile"])))

    # A full restore kept in CMYK: the profile rides along, and seen through it the output is the restored photo.
    restored_rgb = np.asarray(restore(Image.fromarray(through_profile.astype(np.uint8)), tiny_checkpoint, device="cpu"), dtype=float)
    tif = Image.open(restore_file(src, tmp_path / "out.tif", tiny_checkpoint, device="cpu"))
    assert tif.mode == "CMYK" and tif.info["icc_profile"] == icc
    seen = np.asarray(ImageCms.profileToProfile(tif, profile, srgb, outputMode="RGB"), dtype=float)
    assert np.abs(seen - restored_rgb).mean() < 4  # the profile's own round trip costs ~2 levels
    assert np.abs(seen - np.asarray(tif.convert("RGB"), dtype=float)).mean() > 10


def test_jpeg_is_quality_95_in_444_unless_told(tmp_path, tiny_checkpoint):
    src = tmp_path / "in.png"
    Image.fromarray(make_image(np.random.default_rng(1), 64, 64)).save(src)
    q95 = restore_file(src, tmp_path / "q95.jpg", tiny_checkpoint, device="cpu")
    q40 = restore_file(src, tmp_path / "q40.jpg", tiny_checkpoint, device="cpu", quality=40)
    img = Image.open(q95)
    assert JpegImagePlugin.get_sampling(img) == 0  # 4:4:4
    reference = io.BytesIO()
    Image.open(q95).convert("RGB").save(reference, "JPEG", quality=95)
    assert img.quantization == Image.open(reference).quantization
    assert q40.stat().st_size < q95.stat().st_size


def test_failed_write_leaves_nothing(tmp_path, tiny_checkpoint, monkeypatch):
    src = tmp_path / "in.png"
    Image.fromarray(make_image(np.random.default_rng(1), 16, 16)).save(src)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("denoise_core.checkpoint.os.fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        restore_file(src, tmp_path / "out" / "x.png", tiny_checkpoint, device="cpu")
    assert list((tmp_path / "out").iterdir()) == []  # no partial file, no temp file


def test_unknown_output_suffix_and_folders_are_refused(tmp_path, tiny_checkpoint):
    src = tmp_path / "in.png"
    Image.fromarray(make_image(np.random.default_rng(1), 16, 16)).save(src)
    with pytest.raises(ImageError, match="cannot write .gif"):
        restore_file(src, tmp_path / "out.gif", tiny_checkpoint)
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        open_image(tmp_path)
    assert not (tmp_path / "out.gif").exists()
    assert Path(restore_file(src, tmp_path / "new" / "deeper" / "o.png", tiny_checkpoint, device="cpu")).is_file()
