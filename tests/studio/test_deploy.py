"""The container's start command, run outside Docker (no Docker engine here), and the Space's metadata."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server import REPO, dockerfile_command, http_get, start_command, studio  # noqa: F401

pytestmark = pytest.mark.timeout(300)


def test_server_runs_the_dockerfile_command(studio):  # noqa: F811
    """The session's server was started with the Dockerfile's CMD, only the port (and python -m) changed."""
    cmd = dockerfile_command()
    assert cmd == ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=7860"]
    started = studio.process.args
    assert started[1:3] == ["-m", "streamlit"] and started[3:6] == cmd[1:4]
    assert re.fullmatch(r"--server\.port=\d+", started[6]) and started[6] != cmd[4]
    assert started == start_command(int(studio.url.rsplit(":", 1)[1]))


def test_one_port_serves_streamlit_and_gradio(studio):  # noqa: F811
    status, body = http_get(studio.url + "/_stcore/health")
    assert status == 200 and body.strip() == b"ok"
    status, body = http_get(studio.url + "/gradio/")
    assert status == 200 and b"gradio" in body.lower()
    status, body = http_get(studio.url + "/gradio/config")
    assert status == 200 and b'"max_file_size"' in body and b'"enable_queue": true' in body.replace(b'":true', b'": true')
    status, body = http_get(studio.url + "/")
    assert status == 200 and b"<html" in body.lower()


def test_dockerfile_is_spaces_ready():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    assert re.search(r"useradd .*--uid 1000", text) and re.search(r"^USER user$", text, re.M)
    assert "HEALTHCHECK" in text and "/_stcore/health" in text
    assert "EXPOSE 7860" in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "data/", "runs/", ".git", "training/"} <= set(ignored)


def test_readme_front_matter_for_spaces():
    readme = (REPO / "README.md").read_text()
    assert readme.startswith("---\n")
    front = readme.split("---\n", 2)[1]
    meta = dict(line.split(":", 1) for line in front.strip().splitlines())
    meta = {k.strip(): v.strip() for k, v in meta.items()}
    assert meta["sdk"] == "docker" and meta["app_port"] == "7860" and meta["title"]
    assert "## Deploy to Hugging Face Spaces" in readme and "DENOISE_DATA_ROOT=/data" in readme
