"""The Gradio restore endpoints, called with gradio_client against the real one-port server at /gradio/.

Limits exercised here (see studio.gradio_app): CONCURRENCY_LIMIT requests are computed at
once (default 2) and up to QUEUE_SIZE wait (default 64), so 20 simultaneous clients all fit in
the queue and are all answered.
"""

from __future__ import annotations

import io
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from conftest import make_image
from studio.gradio_app import CONCURRENCY_LIMIT, MAX_FILES, QUEUE_SIZE
from server import TINY_RUN, studio  # noqa: F401  (the session's server fixture)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def client(studio):  # noqa: F811
    return Client(studio.url + "/gradio/", verbose=False)


def _write(path: Path, h: int, w: int, seed: int = 0, mode: str = "RGB") -> Path:
    img = Image.fromarray(make_image(np.random.default_rng(seed), h, w))
    img.convert(mode).save(path)
    return path


def test_restore_returns_same_size_png(client, tmp_path):
    src = _write(tmp_path / "noisy photo.png", 61, 97)
    (before, after), png, note = client.predict([handle_file(str(src))], TINY_RUN, api_name="/restore")
    assert Image.open(before).size == (97, 61)
    restored = Image.open(after)
    assert restored.size == (97, 61) and restored.format == "PNG"
    download = Image.open(png)
    assert download.format == "PNG" and download.size == (97, 61) and download.mode == "RGB"
    assert Path(png).name == "noisy_photo_restored.png"
    # The download is the restored image itself, bit for bit (lossless), not the input.
    assert np.array_equal(np.asarray(download), np.asarray(restored.convert("RGB")))
    assert not np.array_equal(np.asarray(download), np.asarray(Image.open(src)))
    assert "97x61" in note and "8 flipped" not in note
    # "Best quality": the self-ensemble, through the same endpoint.
    _, png8, note8 = client.predict([handle_file(str(src))], TINY_RUN, True, api_name="/restore")
    assert "8 flipped and rotated passes" in note8 and Image.open(png8).size == (97, 61)
    assert "tones and colours kept" in note
    assert "EXIF, colour profile and DPI" in note
    # "Fix exposure and colour": the model's own tone, through the same endpoint (off by default, as above).
    _, png_tone, note_tone = client.predict([handle_file(str(src))], TINY_RUN, False, True, api_name="/restore")
    assert "exposure and colour corrected" in note_tone and Image.open(png_tone).size == (97, 61)


def test_restore_keeps_16_bit_and_alpha_modes(client, tmp_path):
    gray16 = tmp_path / "deep.png"
    Image.fromarray((np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50)).save(gray16)
    _, png, _ = client.predict([handle_file(str(gray16))], TINY_RUN, api_name="/restore")
    out = Image.open(png)
    assert out.size == (40, 30) and out.mode in ("I;16", "I")
    rgba = _write(tmp_path / "alpha.png", 33, 35, mode="RGBA")
    _, png, _ = client.predict([handle_file(str(rgba))], TINY_RUN, api_name="/restore")
    assert Image.open(png).mode == "RGBA"


def test_non_image_gets_a_clear_error(client, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not a picture" * 10)
    with pytest.raises(AppError, match="not an image"):
        client.predict([handle_file(str(fake))], TINY_RUN, api_name="/restore")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(AppError, match="Invalid file type"):
        client.predict([handle_file(str(text))], TINY_RUN, api_name="/restore")


def test_truncated_image_gets_a_clear_error(client, tmp_path):
    buf = io.BytesIO()
    Image.fromarray(make_image(np.random.default_rng(1), 64, 64)).save(buf, format="PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(AppError, match="truncated or corrupt"):
        client.predict([handle_file(str(cut))], TINY_RUN, api_name="/restore")


@pytest.mark.parametrize("choice", ["../tiny", "/etc/passwd", "no-such-run"])
def test_checkpoint_outside_the_runs_is_refused(client, tmp_path, choice):
    src = _write(tmp_path / "a.png", 20, 20)
    with pytest.raises(AppError, match="No checkpoint for run"):
        client.predict([handle_file(str(src))], choice, api_name="/restore")


def test_degrade_and_restore_reports_metrics(client):
    clean, degraded, restored, table, note = client.predict(
        None, "astronaut.png", "gaussian_noise", 0.6, 7, TINY_RUN, api_name="/degrade_and_restore"
    )
    sizes = {Image.open(p).size for p in (clean, degraded, restored)}
    assert sizes == {(512, 512)}
    assert table["headers"] == ["image", "PSNR (dB)", "SSIM"]
    rows = {r[0]: r[1:] for r in table["data"]}
    assert set(rows) == {"degraded", "restored"}
    assert 5 < rows["degraded"][0] < 40 and 0 < rows["degraded"][1] < 1
    assert "gaussian_noise" in note
    # Same seed, same degradation.
    again = client.predict(None, "astronaut.png", "gaussian_noise", 0.6, 7, TINY_RUN, api_name="/degrade_and_restore")
    assert np.array_equal(np.asarray(Image.open(degraded)), np.asarray(Image.open(again[1])))


def test_twenty_concurrent_requests_are_all_answered(studio, tmp_path):  # noqa: F811
    """Load test: 20 clients at once on loopback; every output has its own input's size."""
    assert QUEUE_SIZE >= 20 and CONCURRENCY_LIMIT >= 1
    sizes = [(40 + 3 * i, 90 - 2 * i) for i in range(20)]  # (h, w), all different
    paths = [_write(tmp_path / f"in{i}.png", h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    server = psutil.Process(studio.process.pid)
    rss = [server.memory_info().rss]
    done = threading.Event()

    def sample_memory():
        while not done.wait(0.2):
            rss.append(server.memory_info().rss)

    def one(i: int):
        c = Client(studio.url + "/gradio/", verbose=False)
        return c.predict([handle_file(str(paths[i]))], TINY_RUN, api_name="/restore")

    watcher = threading.Thread(target=sample_memory, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(one, range(20)))
    finally:
        done.set()
        watcher.join()
    for (h, w), (pair, png, _) in zip(sizes, results):
        assert Image.open(pair[1]).size == (w, h)
        assert Image.open(png).size == (w, h)
    growth_mb = (max(rss) - rss[0]) / 2**20
    print(f"20 concurrent requests: server RSS {rss[0] / 2**20:.0f} MB -> peak {max(rss) / 2**20:.0f} MB")
    # Bounded: small images, at most CONCURRENCY_LIMIT computed at once; a leak or an unbounded
    # fan-out of model copies would show as hundreds of MB.
    assert growth_mb < 400, f"server memory grew by {growth_mb:.0f} MB under load"


def test_strength_format_and_metadata_through_the_api(client, tmp_path):
    src = tmp_path / "holiday.jpg"
    img = Image.fromarray(make_image(np.random.default_rng(4), 40, 52))
    exif = img.getexif()
    exif[0x010F] = "DenoiseCam"
    img.save(src, quality=92, exif=exif.tobytes(), dpi=(240, 240))
    _, same, note = client.predict([handle_file(str(src))], TINY_RUN, False, False, 0.0, "keep", api_name="/restore")
    out = Image.open(same)
    assert Path(same).name == "holiday_restored.jpg" and out.format == "JPEG"
    assert out.getexif().get(0x010F) == "DenoiseCam" and tuple(round(v) for v in out.info["dpi"]) == (240, 240)
    # Strength 0: the photo itself (re-encoded at quality 95, so compared within JPEG's error).
    assert np.abs(np.asarray(out, float) - np.asarray(Image.open(src), float)).mean() < 2.0
    assert "at strength 0.00" in note
    _, png, _ = client.predict([handle_file(str(src))], TINY_RUN, False, False, 1.0, "png", api_name="/restore")
    assert Image.open(png).format == "PNG" and Image.open(png).getexif().get(0x010F) == "DenoiseCam"


def test_several_photos_come_back_as_a_zip(client, tmp_path):
    paths = [_write(tmp_path / f"p{i}.png", 30 + i, 40, seed=i) for i in range(3)]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all" * 4)
    (before, after), download, note = client.predict([handle_file(str(p)) for p in [*paths, broken]], TINY_RUN,
                                                     api_name="/restore")
    assert Path(download).suffix == ".zip"
    with zipfile.ZipFile(download) as z:
        assert sorted(z.namelist()) == ["p0_restored.png", "p1_restored.png", "p2_restored.png"]
        sizes = [Image.open(io.BytesIO(z.read(f"p{i}_restored.png"))).size for i in range(3)]
    assert sizes == [(40, 30), (40, 31), (40, 32)]
    assert "Restored 3 of 4 photos" in note and "broken.png (not an image" in note
    assert Image.open(after).size == (40, 30)  # the slider shows the first


def test_too_many_photos_is_a_clear_error(client, tmp_path):
    src = _write(tmp_path / "one.png", 8, 8)
    with pytest.raises(AppError, match=f"at most {MAX_FILES} at once"):
        client.predict([handle_file(str(src))] * (MAX_FILES + 1), TINY_RUN, api_name="/restore")


def test_same_photo_twenty_at_once_three_rounds(studio, tmp_path):  # noqa: F811
    """Load test: 3 rounds x 20 concurrent restores of one photo, every answer whole.

    Before the fix (the slider handed Gradio PIL images) some answers failed in every round here:
    Gradio rewrote the one cache file of the identical result in place while another request's
    download of it was being served ("peer closed connection without sending complete message body").
    """
    src = _write(tmp_path / "same photo.png", 48, 64, seed=9)
    url = studio.url + "/gradio/"

    def one(_):
        try:
            (before, after), download, _ = Client(url, verbose=False).predict([handle_file(str(src))], TINY_RUN,
                                                                               api_name="/restore")
            return [Image.open(p).size for p in (before, after, download)]
        except Exception as exc:  # noqa: BLE001 -- every failure is collected and reported
            return f"{type(exc).__name__}: {str(exc)[:120]}"

    for round_ in range(3):
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(one, range(20)))
        bad = [a for a in answers if a != [(64, 48)] * 3]
        assert not bad, f"round {round_}: {len(bad)} of 20 failed: {bad[:3]}"
