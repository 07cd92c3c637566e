"""A real studio server for the end-to-end tests: the Dockerfile's start command on a free port.

Test modules import the ``studio`` fixture (``from server import studio``). Pytest registers an
imported fixture once per module, so the server itself is a process-wide singleton: the first
module to ask starts it, the last teardown stops it; the whole suite starts one server.

Before the server starts, a tiny model is trained into ``<data root>/runs/tiny`` so the tests
never depend on the shipped default model.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from conftest import TINY, make_image

REPO = Path(__file__).resolve().parents[1]
TINY_RUN = "tiny"
STARTUP_TIMEOUT_S = 120
# Long enough (about 10 s on 2 idle cores) that the browser sees the loss chart gain points while it runs.
TINY_JOB = dict(epochs=8, batch_size=4, patch_size=24, width=8, depth=2, steps_per_epoch=60, num_workers=0, device="cpu",
                init_from=None)


@dataclass
class Studio:
    """A running studio: its base URL (no trailing slash), data root, process and log file."""

    url: str
    root: Path
    process: subprocess.Popen
    log: Path

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dockerfile_command(dockerfile: Path | None = None) -> list[str]:
    """The Dockerfile's CMD (exec form) as a list."""
    for line in (dockerfile or REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            return json.loads(line[4:])
    raise AssertionError("Dockerfile has no exec-form CMD")


def start_command(port: int, dockerfile: Path | None = None) -> list[str]:
    """The container's command with this venv's Python and ``port``; everything else as written."""
    cmd = dockerfile_command(dockerfile)
    assert cmd[:2] == ["streamlit", "run"], cmd
    args = [f"--server.port={port}" if a.startswith("--server.port=") else a for a in cmd[1:]]
    return [sys.executable, "-m", "streamlit", *args]


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def train_tiny_model(root: Path) -> Path:
    """A width-8 model trained for one tiny epoch into ``<root>/runs/tiny``; returns its best.pt."""
    import numpy as np
    from PIL import Image

    from denoise_core import train

    images = root / "datasets" / "tiny"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(make_image(rng, 48 + 4 * i, 56 - 2 * i)).save(images / f"img{i}.png")
    out = root / "runs" / TINY_RUN
    train(images, epochs=1, val_ratio=0.3, save_path=out, learning_rate=1e-3, device="cpu", **TINY)
    return out / "best.pt"


def _stop_tree(proc: psutil.Process | subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM a process (then SIGKILL after ``timeout``) and wait for it."""
    pid = proc.pid
    try:
        p = psutil.Process(pid)
        children = p.children(recursive=True)
        p.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs([p], timeout=timeout)
        for q in alive + [c for c in children if c.is_running()]:
            q.kill()
    except psutil.NoSuchProcess:
        pass
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def stop_training_jobs(root: Path) -> None:
    """Stop training processes the tests started through the UI: those whose command line names our temp data root."""
    for run in (root / "runs").glob("*"):
        for name in ("job.json", "status.json"):
            try:
                proc = psutil.Process(int(json.loads((run / name).read_text()).get("pid") or 0))
                if str(root) in " ".join(proc.cmdline()):
                    _stop_tree(proc, timeout=10)
            except (OSError, ValueError, psutil.Error):
                continue


def start_studio(root: Path, extra_env: dict[str, str] | None = None, cwd: Path = REPO) -> Studio:
    """Start ``streamlit run app.py`` (the container's command) in ``cwd`` on a free port and wait for health."""
    port = free_port()
    log = root / "server.log"
    env = {
        **os.environ,
        "DENOISE_DATA_ROOT": str(root),
        "OMP_NUM_THREADS": "1",
        "STREAMLIT_SERVER_HEADLESS": "true",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(extra_env or {}),
    }
    cmd = start_command(port, cwd / "Dockerfile")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    studio = Studio(f"http://127.0.0.1:{port}", root, proc, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{shlex.join(cmd)} exited with {proc.returncode}:\n{studio.log_tail()}")
        try:
            if http_get(studio.url + "/_stcore/health", timeout=2)[0] == 200:
                return studio
        except OSError:
            pass
        time.sleep(0.5)
    _stop_tree(proc)
    raise RuntimeError(f"the studio did not report healthy within {STARTUP_TIMEOUT_S}s:\n{studio.log_tail()}")


_shared: dict[str, object] = {"studio": None, "users": 0}


@pytest.fixture(scope="session")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Studio:
    """The one studio server of the test session, with a tiny model in its data root."""
    if _shared["studio"] is None:
        root = tmp_path_factory.mktemp("studio-data").resolve()
        train_tiny_model(root)
        _shared["studio"] = start_studio(root, {"DENOISE_TRAIN_DEFAULTS": json.dumps(TINY_JOB)})
    _shared["users"] = int(_shared["users"]) + 1
    server: Studio = _shared["studio"]  # type: ignore[assignment]
    yield server
    _shared["users"] = int(_shared["users"]) - 1
    if _shared["users"] == 0:
        _shared["studio"] = None
        stop_training_jobs(server.root)
        _stop_tree(server.process)
