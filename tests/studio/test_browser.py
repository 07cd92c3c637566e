"""One real-browser end-to-end run of the studio: Debian's chromium, driven by Playwright, against
``streamlit run app.py`` (the session's server, one port for Streamlit and Gradio).

Home -> Train (start a tiny run on the sample photos, watch the loss chart gain points) -> Restore
(upload a photo inside the embedded Gradio frame, get it restored, download the PNG) -> History
(download a run's workbook). Screenshots of every page go to test-artifacts/.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from PIL import Image

from conftest import make_image
from server import REPO, studio  # noqa: F401  (the session's server fixture)

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
TRAIN_TIMEOUT_S = 240
STEP_MS = 60_000

pytestmark = pytest.mark.timeout(480)


def chromium_path() -> str:
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        pytest.fail("chromium is not installed: run `make browser` (apt-get install chromium); "
                    "`make test` does this before the tests", pytrace=False)
    return path


def nav(page, name: str) -> None:
    """Open a page through the sidebar navigation, as a user would."""
    page.get_by_test_id("stSidebarNavLink").filter(has_text=name).click()
    page.get_by_role("heading", name=name, level=1).wait_for(timeout=STEP_MS)


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def loss_points(page) -> int:
    """Markers drawn in the Loss chart (one per epoch per train/validation trace); -1 while it redraws."""
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text="Loss")
    try:
        return chart.first.locator("g.scatterlayer path.point").count() if chart.count() else -1
    except Exception:  # the fragment replaced the element between the two calls
        return -1


def test_studio_end_to_end(studio, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a shared 2-core CI box can be slow to render
    ARTIFACTS.mkdir(exist_ok=True)
    photo = tmp_path / "noisy.png"
    rng = np.random.default_rng(3)
    noisy = make_image(rng, 72, 104).astype(np.float32) + rng.normal(0, 20, (72, 104, 3))
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(photo)
    runs_before = {p.name for p in (studio.root / "runs").iterdir()}

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            # A tall viewport: Streamlit scrolls inside its own container, so full_page alone would cut pages off.
            context = browser.new_context(viewport={"width": 1400, "height": 2400}, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(STEP_MS)

            # -- Home
            page.goto(studio.url + "/", timeout=STEP_MS)
            page.get_by_role("heading", level=1).first.wait_for()
            expect(page.get_by_test_id("stSidebarNavLink")).to_have_count(4)
            shot(page, "01-home")

            # -- Train: start a tiny run on the samples (form defaults come from DENOISE_TRAIN_DEFAULTS).
            nav(page, "Train")
            expect(page.get_by_role("spinbutton", name="Model width")).to_have_value("8")
            page.get_by_role("button", name="Start training").click()
            progress = page.get_by_test_id("stProgress").first
            expect(progress).to_contain_text(re.compile(r"starting|running"), timeout=STEP_MS)
            run_id = progress.inner_text().split("·")[0].strip()
            assert run_id not in runs_before and re.fullmatch(r"[\w.-]+", run_id), run_id

            seen: list[int] = []  # marker counts of the loss chart while the job runs
            live_shot = False
            deadline = time.monotonic() + TRAIN_TIMEOUT_S
            while time.monotonic() < deadline:
                page.wait_for_timeout(1000)
                text = progress.inner_text() if progress.count() else ""
                if "running" in text:
                    n = loss_points(page)
                    if n >= 0:
                        seen.append(n)
                    if n > 0 and not live_shot:
                        shot(page, "02-train-live")
                        live_shot = True
                if re.search(r"finished|failed|stopped|died", text):
                    break
            final_text = progress.inner_text()
            assert "finished" in final_text, f"training did not finish: {final_text!r}\n{studio.log_tail()}"
            page.wait_for_timeout(1500)
            final_points = loss_points(page)
            shot(page, "03-train-finished")
            epochs = int(re.search(r"epoch \d+/(\d+)", final_text).group(1))
            # Two traces (train and validation loss), one marker per epoch each.
            assert final_points == 2 * epochs, (final_points, final_text)
            assert seen and min(seen) < final_points, f"the loss chart never gained points live: {seen}"
            events = [json.loads(line) for line in (studio.root / "runs" / run_id / "events.jsonl").read_text().splitlines()]
            assert sum(e["type"] == "epoch" for e in events) == epochs

            # -- Restore: the Gradio app inside the iframe, same origin and port.
            nav(page, "Restore")
            frame_el = page.locator("iframe[src*='/gradio/']")
            expect(frame_el).to_have_count(1)
            frame = page.frame_locator("iframe[src*='/gradio/']")
            frame.locator("#restore-button").wait_for(timeout=STEP_MS)
            model = frame.locator("#model-choice input")
            expect(model).not_to_have_value("")
            # The run just trained is offered (the list is refreshed on load); restore with it.
            model.click()
            frame.get_by_role("option", name=re.compile(re.escape(run_id))).click()
            expect(model).to_have_value(re.compile(re.escape(run_id)))
            expect(frame.locator("#model-status")).to_contain_text(f"run {run_id}")
            frame.locator("#restore-upload input[type=file]").set_input_files(str(photo))
            expect(frame.locator("#restore-upload")).to_contain_text(re.compile(r"noisy\s*\.png"))
            # The denoise level: estimated on upload and shown; auto by default.
            expect(frame.locator("#restore-level-note")).to_contain_text("Estimated noise level of noisy.png")
            frame.locator("#restore-button").click()
            expect(frame.locator("#restore-note")).to_contain_text("Restored 104x72", timeout=STEP_MS)
            expect(frame.locator("#restore-note")).to_contain_text("estimated")
            slider_imgs = frame.locator("#restore-slider img")
            expect(slider_imgs).to_have_count(2)
            with page.expect_download(timeout=STEP_MS) as dl:
                frame.locator("#restore-download").click()
            restored_path = ARTIFACTS / "restored.png"
            dl.value.save_as(restored_path)
            restored = Image.open(restored_path)
            assert restored.format == "PNG" and restored.size == (104, 72)
            # "Best quality": the self-ensemble, from the same button.
            frame.locator("#restore-best input[type=checkbox]").check()
            frame.locator("#restore-button").click()
            expect(frame.locator("#restore-note")).to_contain_text("8 flipped and rotated passes", timeout=STEP_MS)
            expect(frame.locator("#restore-note")).to_contain_text("tones and colours kept")
            # "Fix exposure and colour": off by default (as above), ticked here.
            expect(frame.locator("#restore-fix-tone")).to_contain_text("low-light")
            frame.locator("#restore-fix-tone input[type=checkbox]").check()
            frame.locator("#restore-button").click()
            expect(frame.locator("#restore-note")).to_contain_text("exposure and colour corrected", timeout=STEP_MS)
            # Several photos at once, at half strength: the download is a zip of all of them.
            second = tmp_path / "second.png"
            Image.fromarray(make_image(np.random.default_rng(5), 40, 56)).save(second)
            frame.locator("#restore-upload input[type=file]").set_input_files([str(photo), str(second)])
            expect(frame.locator("#restore-upload")).to_contain_text(re.compile(r"second\s*\.png"))
            strength = frame.locator("#restore-strength input[type=number]")
            strength.fill("0.5")
            strength.press("Enter")
            frame.locator("#restore-button").click()
            # The multiple-file component adds to what it holds (the first photo is still there): 3 photos.
            expect(frame.locator("#restore-note")).to_contain_text(re.compile(r"Restored (\d) of \1 photos"), timeout=STEP_MS)
            expect(frame.locator("#restore-note")).to_contain_text("at strength 0.50")
            with page.expect_download(timeout=STEP_MS) as dl:
                frame.locator("#restore-download").click()
            zip_path = ARTIFACTS / "restored.zip"
            dl.value.save_as(zip_path)
            with zipfile.ZipFile(zip_path) as z:
                names = z.namelist()
                assert {"noisy_restored.png", "second_restored.png"} <= set(names) and len(names) >= 2
                assert Image.open(io.BytesIO(z.read("second_restored.png"))).size == (56, 40)
            frame_el.scroll_into_view_if_needed()
            shot(page, "04-restore")

            # -- History: the new run is listed; download its workbook.
            nav(page, "History")
            expect(page.get_by_test_id("stDataFrame")).to_be_visible()
            shot(page, "05-history")
            button = page.get_by_test_id("stDownloadButton").filter(has_text=f"{run_id}: history.xlsx")
            with page.expect_download(timeout=STEP_MS) as dl:
                button.get_by_role("button").click()
            workbook_path = ARTIFACTS / "history.xlsx"
            dl.value.save_as(workbook_path)
            wb = openpyxl.load_workbook(workbook_path)
            assert wb.sheetnames == ["metrics", "weights", "per_degradation"]
            assert [row[0] for row in wb["metrics"].iter_rows(min_row=2, values_only=True)] == list(range(1, epochs + 1))
        finally:
            browser.close()


def test_a_public_space_without_a_token_refuses_start_and_still_restores(tmp_path):
    """The Space folder started as Hugging Face starts it (SPACE_ID set) with no admin token: the Train page's
    Start is locked and says how to unlock it; the Restore page restores a photo."""
    from playwright.sync_api import expect, sync_playwright

    from denoise_core import space
    from server import _stop_tree, start_studio

    built = space.build_space(tmp_path / "space")
    root = tmp_path / "data"
    root.mkdir()
    env = {"PYTHONPATH": "", "SPACE_ID": "someone/denoise", "DENOISE_ADMIN_TOKEN": "", "DENOISE_OPEN": ""}
    studio = start_studio(root, env, cwd=built)
    photo = tmp_path / "photo.png"
    Image.fromarray(make_image(np.random.default_rng(3), 48, 64)).save(photo)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 2000})
                page.set_default_timeout(STEP_MS)
                page.goto(studio.url + "/", timeout=STEP_MS)
                page.get_by_role("heading", level=1).first.wait_for()
                nav(page, "Train")
                expect(page.get_by_role("button", name="Start training")).to_be_disabled()
                expect(page.get_by_test_id("stSidebar")).to_contain_text("DENOISE_ADMIN_TOKEN")
                shot(page, "11-space-locked")
                nav(page, "Restore")
                frame = page.frame_locator("iframe[src*='/gradio/']")
                frame.locator("#restore-upload input[type=file]").set_input_files(str(photo))
                expect(frame.locator("#restore-upload")).to_contain_text(re.compile(r"photo\s*\.png"))
                frame.locator("#restore-button").click()
                expect(frame.locator("#restore-note")).to_contain_text("Restored 64x48", timeout=STEP_MS)
            finally:
                browser.close()
    finally:
        _stop_tree(studio.process)
