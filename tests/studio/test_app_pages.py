"""Every studio page under streamlit.testing.v1.AppTest, against a data root in a temp folder.

AppTest runs the scripts in-process without a server: the Restore page's
iframe (/gradio/, served by app.py) is only checked to render; tests/studio/test_gradio_client.py
and the browser test cover what it shows. Fragment timers (run_every) do not fire
in AppTest; each `run()` renders the live view once, which is what is checked.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from conftest import TINY, make_image
from studio import jobs, workspace
from denoise_core.checkpoint import load_checkpoint
from denoise_core.history import epoch_records, read_events
from denoise_core.restoration import DEFAULT_CHECKPOINT
from denoise_core.training import train
from studio_helpers import make_root, wait_until

REPO = Path(__file__).resolve().parents[2]
TRAINED_RUN = "20260101-000000-tiny"
TINY_DEFAULTS = {"epochs": 500, "steps_per_epoch": 2, "batch_size": 4, "patch_size": 24, "width": 8, "depth": 2, "num_workers": 0,
                 "init_from": None}


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory) -> Path:
    """A data root with datasets/tiny and one finished 2-epoch run (trained in this process: no start-up cost)."""
    root = tmp_path_factory.mktemp("studio") / "root"
    folder = root / "datasets" / "tiny"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(make_image(rng, 40 + 2 * i, 44)).save(folder / f"img{i}.png")
    train(folder, epochs=2, save_path=root / "runs" / TRAINED_RUN, **TINY)
    return root


@pytest.fixture
def root(trained_root, monkeypatch) -> Path:
    monkeypatch.setenv("DENOISE_DATA_ROOT", str(trained_root))
    return trained_root


@pytest.fixture
def media(monkeypatch) -> list[MemoryMediaFileStorage]:
    """The media stores AppTest creates per run, so download buttons' bytes can be read back."""
    stores: list[MemoryMediaFileStorage] = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, endpoint: str) -> None:
            super().__init__(endpoint)
            stores.append(self)

    monkeypatch.setattr("streamlit.testing.v1.app_test.MemoryMediaFileStorage", Recording)
    return stores


def download_bytes(button, stores: list[MemoryMediaFileStorage]) -> bytes:
    return stores[-1].get_file(button.proto.url.rsplit("/", 1)[-1]).content


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "studio" / "navigation.py"), default_timeout=90).run()
    if page:
        at.switch_page("../" + page).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", [None, "pages/home.py", "pages/train.py", "pages/restore.py", "pages/history.py"])
def test_every_page_renders_in_an_empty_data_root(tmp_path, monkeypatch, page):
    make_root(tmp_path, monkeypatch)
    at = open_page(page)
    assert at.title[0].value == {None: "Denoise Studio", "pages/home.py": "Denoise Studio", "pages/train.py": "Train",
                                 "pages/restore.py": "Restore", "pages/history.py": "History"}[page]


def test_home_shows_the_device_the_last_run_and_links(root):
    at = open_page()
    text = " ".join(m.value for m in at.markdown)
    assert "CPU" in text or "GPU" in text
    assert f"Last run **{TRAINED_RUN}** (tiny): **finished**, 2/2 epochs" in text
    assert len(at.get("page_link")) == 3


def test_restore_page_embeds_the_gradio_app(root):
    at = open_page("pages/restore.py")
    assert "Gradio" in at.caption[0].value
    assert at.get("iframe")  # the element is there; what it loads needs the server (see module docstring)


def test_train_page_shows_the_last_run_with_charts_and_validation_samples(root):
    at = open_page("pages/train.py")
    assert len(at.get("plotly_chart")) == 4
    assert "finished" in at.get("progress")[0].proto.text
    assert len(at.image) == 3, "three validation samples (degraded / restored / clean each)"
    assert at.button(key="train_stop").disabled and not at.button(key="train_resume").disabled


def test_train_page_start_creates_a_job_and_stop_stops_it(tmp_path, monkeypatch):
    root = make_root(tmp_path, monkeypatch)
    monkeypatch.setenv(jobs.DEFAULTS_ENV, json.dumps(TINY_DEFAULTS))
    at = open_page("pages/train.py")
    at.radio(key="train_source").set_value("folder").run()
    assert at.selectbox(key="train_folder").value == "tiny"
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    runs = list((root / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "job.json").is_file()
    run = runs[0]
    assert json.loads((run / "job.json").read_text())["params"]["width"] == 8
    assert jobs.active_job(root) == run.name
    assert at.button(key="train_start").disabled and not at.button(key="train_stop").disabled
    # A second session pressing Start is told about the running job instead of starting one.
    other = open_page("pages/train.py")
    assert other.button(key="train_start").disabled
    at.button(key="train_stop").click().run()
    assert not at.exception
    assert jobs.wait_for(run, timeout=180).state == "stopped", jobs.log_tail(run, 20)
    at.run()
    assert "stopped" in at.get("progress")[0].proto.text
    assert not at.button(key="train_resume").disabled
    done = epoch_records(run)[-1]["epoch"] if epoch_records(run) else 0
    at.button(key="train_resume").click().run()  # continues the same run, to its own 500 epochs
    assert not at.exception, at.exception
    assert jobs.active_job(root) == run.name and len(list((root / "runs").iterdir())) == 1
    wait_until(lambda: len(epoch_records(run)) > done, timeout=180)
    jobs.stop_job(run, grace=0)
    assert jobs.wait_for(run, timeout=180).state == "stopped"
    assert [r["epoch"] for r in epoch_records(run)] == list(range(1, len(epoch_records(run)) + 1))


def test_train_page_fine_tunes_the_shipped_model(tmp_path, monkeypatch):
    root = make_root(tmp_path, monkeypatch)
    monkeypatch.setenv(jobs.DEFAULTS_ENV, json.dumps(TINY_DEFAULTS))
    at = open_page("pages/train.py")
    at.radio(key="train_source").set_value("folder").run()
    assert at.number_input(key="train_width").disabled is False  # the tiny defaults start from scratch
    at.radio(key="train_start_from").set_value("default").run()
    assert at.number_input(key="train_width").disabled  # a fine-tune keeps the shipped architecture
    at.number_input(key="train_sensor_noise").set_value(2.0).run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    run = next((root / "runs").iterdir())
    params = json.loads((run / "job.json").read_text())["params"]
    assert (params["init_from"], params["sensor_noise"]) == ("default", 2.0)
    # no earlier run had these settings: Start timed a few steps first and the run keeps that estimate
    said = [e for e in read_events(run) if e["type"] == "estimate"]
    assert len(said) == 1 and said[0]["source"] == "measured" and said[0]["epoch_seconds"] > 0
    wait_until(lambda: len(epoch_records(run)) >= 1, timeout=180)
    jobs.stop_job(run, grace=0)
    config = json.loads((run / "config.json").read_text())
    # the shipped model's architecture replaces the page's width 8 / depth 2
    shipped = load_checkpoint(DEFAULT_CHECKPOINT)["model_config"]
    assert (config["width"], config["depth"], config["sensor_noise"]) == (shipped["width"], shipped["depth"], 2.0)
    assert jobs.wait_for(run, timeout=180).state == "stopped"


def test_train_page_fine_tunes_by_default_and_shows_an_estimate_before_start(tmp_path, monkeypatch):
    make_root(tmp_path, monkeypatch)
    # small crops for the test's small images; the start (fine-tune the shipped model) is the page's own default
    monkeypatch.setenv(jobs.DEFAULTS_ENV, json.dumps({"epochs": 3, "steps_per_epoch": 2, "batch_size": 4, "patch_size": 24,
                                                      "num_workers": 0}))
    at = open_page("pages/train.py")
    assert at.radio(key="train_start_from").value == "default"
    at.radio(key="train_source").set_value("folder").run()
    assert not any("Expected time" in i.value for i in at.info) and any("measure a few steps" in c.value for c in at.caption)
    at.button(key="train_estimate").click().run()
    assert not at.exception, at.exception
    shown = " ".join(i.value for i in at.info)
    assert "Expected time: about" in shown and "per epoch" in shown and "for 3 epochs (measured:" in shown


def test_train_page_reattaches_to_a_job_whose_server_process_is_gone(tmp_path, monkeypatch):
    # A server restart, simulated: another process starts the job and exits; this "new server" sees it running.
    root = make_root(tmp_path, monkeypatch)
    code = ("import json, sys; from studio import jobs; "
            "print(jobs.start_job(jobs.JobParams(**json.loads(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps({**TINY_DEFAULTS, "dataset": "tiny"})],
                         capture_output=True, text=True, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    run_id = out.stdout.strip().splitlines()[-1]
    run = root / "runs" / run_id
    wait_until(lambda: epoch_records(run), timeout=180)
    at = open_page("pages/train.py")
    progress = at.get("progress")[0].proto.text
    assert run_id in progress and "running" in progress
    assert at.button(key="train_start").disabled and not at.button(key="train_stop").disabled
    at.button(key="train_stop").click().run()
    assert jobs.wait_for(run, timeout=180).state == "stopped"


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_image(np.random.default_rng(seed), 32, 32)).save(buf, "PNG")
    return buf.getvalue()


def test_train_page_unpacks_an_uploaded_zip_and_refuses_a_hostile_one(tmp_path, monkeypatch):
    root = make_root(tmp_path, monkeypatch)
    at = open_page("pages/train.py")
    at.radio(key="train_source").set_value("upload").run()
    at.file_uploader(key="train_zip").upload("My Photos.zip", _zip({"a/x.png": _png(1), "b.png": _png(2), "n.txt": b"x"}), "application/zip").run()
    assert at.text_input(key="train_zip_name").proto.placeholder == "My-Photos"  # used when the name is left empty
    at.button(key="train_unpack").click().run()
    assert not at.exception and not at.error
    assert "2 image(s) kept, 1 file(s) skipped" in at.success[0].value
    assert sorted(p.name for p in (root / "datasets" / "My-Photos").rglob("*.png")) == ["b.png", "x.png"]
    assert "My-Photos" in " ".join(c.value for c in at.caption)
    at.file_uploader(key="train_zip").upload("evil.zip", _zip({"../evil.png": _png(3)}), "application/zip").run()
    at.button(key="train_unpack").click().run()
    assert "zip slip" in at.error[0].value
    assert not (root / "datasets" / "evil").exists() and not (root / "evil.png").exists()


def test_history_lists_runs_and_downloads_workbooks(root, media):
    at = open_page("pages/history.py")
    table = at.dataframe[0].value
    assert list(table["run"]) == [TRAINED_RUN] and list(table["status"]) == ["finished"]
    assert table["epochs"][0] == "2/2" and table["best val PSNR (dB)"][0] > 0
    assert len(at.get("plotly_chart")) == 1
    for key, sheets in ((f"history_dl_{TRAINED_RUN}", {"metrics", "weights", "per_degradation"}),
                        ("history_dl_combined", {"metrics", "weights", "per_degradation"})):
        data = download_bytes(at.download_button(key=key), media)
        book = openpyxl.load_workbook(io.BytesIO(data))
        assert set(book.sheetnames) == sheets
        rows = list(book["metrics"].iter_rows(values_only=True))
        assert len(rows) == 3  # header + 2 epochs
    combined = openpyxl.load_workbook(io.BytesIO(download_bytes(at.download_button(key="history_dl_combined"), media)))
    assert next(combined["metrics"].iter_rows(values_only=True))[0] == "run"


def test_history_deploys_a_run_as_a_space_zip(root, media):
    at = open_page("pages/history.py")
    assert at.button(key="history_space_build").disabled  # nothing chosen yet
    at.selectbox(key="history_space_run").set_value(TRAINED_RUN).run()
    at.button(key="history_space_build").click().run()
    assert not at.error, [e.value for e in at.error]
    data = download_bytes(at.download_button(key="history_space_download"), media)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = set(z.namelist())
        prefix = f"denoise-space-{TRAINED_RUN}/"
        assert {prefix + n for n in ("app.py", "Dockerfile", "README.md", "MODEL_CARD.md", ".gitattributes",
                                     "denoise_core/weights/default.pt")} <= names
        assert z.read(prefix + "denoise_core/weights/default.pt") == (root / "runs" / TRAINED_RUN / "best.pt").read_bytes()
        assert "Denoise Studio model: " + TRAINED_RUN in z.read(prefix + "MODEL_CARD.md").decode()
    assert any(f"--checkpoint {TRAINED_RUN} --push USER/SPACE" in c.value for c in at.code)


def test_history_deletes_a_run_only_after_confirmation(root):
    copy = "20260101-000001-copy"
    shutil.copytree(root / "runs" / TRAINED_RUN, root / "runs" / copy)
    at = open_page("pages/history.py")
    assert set(at.dataframe[0].value["run"]) == {TRAINED_RUN, copy}
    at.selectbox(key="history_delete_run").set_value(copy).run()
    at.button(key="history_delete").click().run()
    assert copy in at.warning[0].value and (root / "runs" / copy).is_dir()  # nothing deleted yet
    at.button(key="history_delete_no").click().run()
    assert (root / "runs" / copy).is_dir() and not at.warning
    at.button(key="history_delete").click().run()
    at.button(key="history_delete_yes").click().run()
    assert not at.exception, at.exception
    assert not (root / "runs" / copy).exists() and (root / "runs" / TRAINED_RUN).is_dir()
    assert list(at.dataframe[0].value["run"]) == [TRAINED_RUN]
    assert [r.run_id for r in workspace.list_runs(root)] == [TRAINED_RUN]


def test_admin_token_locks_changes_but_not_viewing(root, monkeypatch):
    monkeypatch.setenv("DENOISE_ADMIN_TOKEN", "s3cret")
    at = open_page("pages/train.py")
    assert not at.exception
    assert at.button(key="train_start").disabled and at.button(key="train_resume").disabled
    assert len(at.get("plotly_chart")) == 4  # watching stays open
    at = open_page("pages/history.py")
    assert at.button(key="history_delete").disabled
    at.text_input(key="history_admin_token").input("wrong").run()
    at.selectbox(key="history_delete_run").select_index(0).run()
    assert at.button(key="history_delete").disabled
    at.text_input(key="history_admin_token").input("s3cret").run()
    at.selectbox(key="history_delete_run").select_index(0).run()
    assert not at.button(key="history_delete").disabled


def test_a_public_host_without_a_token_fails_closed(root, monkeypatch):
    monkeypatch.delenv("DENOISE_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("SPACE_ID", "someone/denoise")
    at = open_page("pages/train.py")
    assert not at.exception
    assert at.button(key="train_start").disabled and at.button(key="train_resume").disabled
    assert any("DENOISE_ADMIN_TOKEN" in w.value for w in at.sidebar.warning)
    assert not at.sidebar.text_input  # no token field: nothing typed could unlock it
    assert len(at.get("plotly_chart")) == 4  # watching stays open
    at = open_page("pages/history.py")
    assert at.button(key="history_delete").disabled
    monkeypatch.setenv("DENOISE_ADMIN_TOKEN", "s3cret")  # the secret set: the token unlocks, as anywhere
    at = open_page("pages/history.py")
    at.text_input(key="history_admin_token").input("s3cret").run()
    at.selectbox(key="history_delete_run").select_index(0).run()
    assert not at.button(key="history_delete").disabled


@pytest.mark.parametrize("env", [{"SPACE_ID": "a/b"}, {"DENOISE_PUBLIC": "1"}, {"DENOISE_PUBLIC": "yes"}])
def test_public_hosts_are_locked_without_a_token(monkeypatch, env):
    from studio import access

    monkeypatch.delenv("DENOISE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("DENOISE_PUBLIC", raising=False)
    assert not access.public_host() and access.unlocked(None)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert access.public_host() and access.no_way_in() and access.controls_locked()
    assert not access.unlocked(None) and not access.unlocked("anything")
    monkeypatch.setenv("DENOISE_ADMIN_TOKEN", "t")
    assert not access.no_way_in() and access.unlocked("t") and not access.unlocked("x")


def test_access_unlocked_without_a_token(monkeypatch):
    from studio import access

    monkeypatch.delenv("DENOISE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("DENOISE_PUBLIC", raising=False)
    assert not access.controls_locked() and access.unlocked(None)
    monkeypatch.setenv("DENOISE_ADMIN_TOKEN", "t")
    assert access.controls_locked() and not access.unlocked(None) and not access.unlocked("x") and access.unlocked("t")


def test_two_sessions_pressing_start_at_the_same_moment_start_one_job(tmp_path, monkeypatch):
    import threading

    from streamlit.runtime.scriptrunner import magic

    root = make_root(tmp_path, monkeypatch)
    monkeypatch.setenv(jobs.DEFAULTS_ENV, json.dumps(TINY_DEFAULTS))
    # One lock for both sessions' page compiles, as the one ScriptCache of a real server gives them: each AppTest has
    # its own, and CPython 3.11's ast module fails two parses in two threads at once now and then ("SystemError: AST
    # constructor recursion depth mismatch", python/cpython#106905). The race under test is the jobs' lock, not that.
    compile_lock, add_magic = threading.Lock(), magic.add_magic

    def serialised(*args, **kwargs):
        with compile_lock:
            return add_magic(*args, **kwargs)

    monkeypatch.setattr(magic, "add_magic", serialised)
    sessions = [open_page("pages/train.py") for _ in range(2)]
    for at in sessions:
        at.radio(key="train_source").set_value("folder").run()
    barrier = threading.Barrier(2)

    def press(at: AppTest) -> None:
        barrier.wait()  # both clicks are sent together, before either page saw a job
        at.button(key="train_start").click().run()

    threads = [threading.Thread(target=press, args=(at,)) for at in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(not at.exception for at in sessions)
    runs = list((root / "runs").iterdir())
    assert len(runs) == 1, runs
    warned = [at for at in sessions if any("already running" in w.value for w in at.warning)]
    assert len(warned) <= 1
    jobs.stop_job(runs[0], grace=0)
    assert jobs.wait_for(runs[0], timeout=180).state in ("stopped", "finished")


def test_train_form_takes_labels_and_ranges_from_train_config(root):
    """One source for every option: the form's number inputs are TrainConfig's descriptions."""
    from denoise_core.training import train_options

    at = open_page("pages/train.py")
    for key, name in (("train_epochs", "epochs"), ("train_sensor_noise", "sensor_noise"), ("train_lr", "learning_rate"),
                      ("train_floor", "floor"), ("train_steps", "steps_per_epoch")):
        widget, option = at.number_input(key=key), train_options()[name]
        assert widget.label == option.label and widget.help.lower().startswith(option.help[:20].lower()), name
        assert widget.max == option.maximum and widget.min == option.minimum, name
