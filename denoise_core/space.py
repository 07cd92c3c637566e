"""A self-contained Hugging Face Space folder for the studio, and its upload with ``huggingface_hub``.

`build_space` copies what the app runs on (``app.py`` and the studio's modules, ``pages/``,
``.streamlit/``, the library, the ``Dockerfile``, ``requirements.txt``) from this source
checkout into a new folder, with the chosen checkpoint as the shipped default, a README with
the Spaces front matter, a ``MODEL_CARD.md``, the ``LICENSE`` and a ``.gitattributes`` that
sends weights, ONNX graphs and workbooks through Git LFS — and nothing else (no tests,
training state or benchmark output). The folder does not depend on this repository's git
history, whose old resume states are over the Hub's 10 MiB limit for plain git files.

`push_space` uploads such a folder (``create_repo(repo_type="space", space_sdk="docker")``,
then ``upload_folder``). This module copies files only; it imports no UI framework.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint
from .exposure import DEFAULT_WEIGHTS as EXPOSURE_WEIGHTS
from .loading import DEFAULT_CHECKPOINT
from .runfiles import BEST_FILE, CONFIG_FILE, WORKBOOK_FILE

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
# What the app needs, relative to the source checkout (the library is copied separately).
APP_FILES = ("app.py", "Dockerfile", "requirements.txt", ".dockerignore", "LICENSE", "NOTICE")
APP_DIRS = ("pages", ".streamlit", "studio")
LFS_PATTERNS = ("*.pt", "*.onnx", "*.xlsx")
HUB_FILE_LIMIT = 10 * 2**20  # the Hub refuses plain-git files above 10 MiB
WEIGHTS = Path("denoise_core") / "weights"
# Library files that the app does not need in a Space.
_SKIP_LIBRARY = {"__pycache__"}


class SpaceError(ValueError):
    """The Space cannot be built or pushed; the message says why and what to do."""


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SKIP_LIBRARY or n.endswith((".pyc", ".onnx"))}


def resolve_checkpoint(choice: str | Path | None, runs_dir: Path | None = None) -> tuple[Path, Path | None]:
    """(checkpoint file, its run folder or None) for ``--checkpoint``: a file, a run id under ``runs_dir``
    (default ``$DENOISE_DATA_ROOT/runs``), or None for the shipped default."""
    if choice is None or str(choice) == "default":
        if not DEFAULT_CHECKPOINT.is_file():
            raise SpaceError(f"the shipped default model {DEFAULT_CHECKPOINT} is not installed; pass --checkpoint")
        return DEFAULT_CHECKPOINT, None
    path = Path(choice)
    if path.is_file():
        run = path.parent if (path.parent / CONFIG_FILE).is_file() else None
        return path, run
    if runs_dir is None:  # the studio's data root (see the README); read here without importing the studio
        runs_dir = Path(os.environ.get("DENOISE_DATA_ROOT") or "data").expanduser().resolve() / "runs"
    run = runs_dir / str(choice)
    if "/" in str(choice) or str(choice) in ("", ".", "..") or not (run / BEST_FILE).is_file():
        raise SpaceError(f"{choice}: neither a checkpoint file nor a run with a best.pt in {runs_dir}")
    return run / BEST_FILE, run


def _space_readme(title: str, card_summary: str) -> str:
    front = ["---", f"title: {title}", "emoji: 🧹", "colorFrom: indigo", "colorTo: green", "sdk: docker",
             "app_port: 7860", "pinned: false", "license: apache-2.0",
             "short_description: Restore photos and train a denoising U-Net, in one studio", "---", ""]
    body = [f"# {title}", "",
            "Denoise Studio: restore photos (noise, blur, JPEG blocking, low light, lost resolution) with a U-Net, and "
            "train your own model on your images while watching it learn. The studio (Streamlit) and the restore UI "
            "(Gradio, at `/gradio/`) share one port.", "",
            f"The default model: {card_summary} Its card is `MODEL_CARD.md`.", "",
            "Runs and uploads live under `DENOISE_DATA_ROOT` (`/home/user/app/data`): enable persistent storage "
            "(mounted at `/data`) and set the variable `DENOISE_DATA_ROOT=/data` to keep them across restarts.", ""]
    return "\n".join(front + body)


def build_space(out_dir: str | Path, checkpoint: str | Path | None = None, runs_dir: Path | None = None) -> Path:
    """Write the Space folder ``out_dir`` (created; must be empty or missing) and return it."""
    from .model_card import model_card

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpaceError(f"{out}: exists and is not an empty folder")
    missing = [f for f in ("app.py", "Dockerfile", "requirements.txt") if not (ROOT / f).is_file()]
    if missing:
        raise SpaceError(f"the app's files ({', '.join(missing)}) are not next to the library in {ROOT}: "
                         "build a Space from a source checkout, not from an installed package")
    ckpt, run = resolve_checkpoint(checkpoint, runs_dir)
    try:
        load_checkpoint(ckpt)
    except CheckpointError as exc:
        raise SpaceError(f"cannot deploy {ckpt}: {exc}") from exc
    # Assemble next to the target and rename into place: an interrupted build leaves no half folder.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name in APP_FILES:
            if (ROOT / name).is_file():
                shutil.copy2(ROOT / name, tmp / name)
        for name in APP_DIRS:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, tmp / name, ignore=_ignore)
        shutil.copytree(ROOT / "denoise_core", tmp / "denoise_core", ignore=_ignore)
        weights = tmp / WEIGHTS
        shutil.rmtree(weights)
        weights.mkdir()
        shutil.copy2(ckpt, weights / "default.pt")
        if EXPOSURE_WEIGHTS.is_file():  # "Fix exposure and colour" uses it with any model
            shutil.copy2(EXPOSURE_WEIGHTS, weights / EXPOSURE_WEIGHTS.name)
        if run is not None and (run / WORKBOOK_FILE).is_file():
            shutil.copy2(run / WORKBOOK_FILE, weights / "default_history.xlsx")
        elif ckpt == DEFAULT_CHECKPOINT and (DEFAULT_CHECKPOINT.parent / "default_history.xlsx").is_file():
            shutil.copy2(DEFAULT_CHECKPOINT.parent / "default_history.xlsx", weights / "default_history.xlsx")
        if ckpt == DEFAULT_CHECKPOINT:
            card = default_model_card()
            summary = "the shipped one, trained by this project on CBSD432."
        else:
            card = model_card(ckpt, run, title=f"Denoise Studio model: {run.name if run else ckpt.stem}")
            summary = f"{'run ' + run.name if run else ckpt.name}, trained in the studio."
        (tmp / "MODEL_CARD.md").write_text(card)
        (tmp / "README.md").write_text(_space_readme("Denoise Studio", summary))
        (tmp / ".gitattributes").write_text("".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _check_sizes(out)
    return out


def space_zip(checkpoint: str | Path, name: str = "denoise-space") -> bytes:
    """The Space folder for ``checkpoint`` (a run's best.pt, or None for the shipped model) as zip bytes,
    everything under ``name/``; built in a temporary folder that is removed afterwards."""
    import io
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_space(Path(tmp) / name, checkpoint)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    z.write(path, (Path(name) / path.relative_to(folder)).as_posix())
        return buf.getvalue()


def default_model_card() -> str:
    """The shipped default's card: ``weights/MODEL_CARD.md`` (written from its training run by
    ``training/ship.py --card``), else generated from the checkpoint and the committed benchmark results."""
    from .model_card import BSDS_NOTE, model_card

    committed = DEFAULT_CHECKPOINT.parent / "MODEL_CARD.md"
    if committed.is_file():
        return committed.read_text()
    results = ROOT / "docs" / "results"
    return model_card(DEFAULT_CHECKPOINT, None, title="Denoise Studio default model",
                      bench_places=[results] if results.is_dir() else [], data_note=BSDS_NOTE)


def lfs_tracked(path: Path) -> bool:
    return any(path.match(p) for p in LFS_PATTERNS)


def _check_sizes(folder: Path) -> None:
    big = [p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > HUB_FILE_LIMIT and not lfs_tracked(p)]
    if big:
        raise SpaceError("files over 10 MiB that .gitattributes does not send to LFS: " + ", ".join(map(str, big)))


def hub_token() -> str | None:
    """``HF_TOKEN``, else the token ``huggingface-cli login`` saved; None when neither is there."""
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()


ADMIN_SECRET = "DENOISE_ADMIN_TOKEN"  # the secret the studio reads (`studio.access`)
OPEN_VARIABLE = "DENOISE_OPEN"  # a Space variable that opens the studio's controls to every visitor, on purpose


def push_space(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None,
               open_space: bool = False) -> tuple[str, str | None]:
    """Upload a built Space folder to ``repo_id`` (``USER/SPACE``); returns (the Space's URL, its new admin token).

    A Space is public, so by default its studio is locked (`studio.access`): this creates a random admin token
    and stores it as the Space's ``DENOISE_ADMIN_TOKEN`` secret before the upload (a new one on every push), and
    the caller shows it once. ``open_space``: a deliberately open Space instead: the ``DENOISE_OPEN`` variable
    is set, any admin secret removed, and no token returned.
    """
    import secrets

    from huggingface_hub import HfApi

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise SpaceError(f"--push needs USER/SPACE, got {repo_id!r}")
    token = token or hub_token()
    if not token:
        raise SpaceError("no Hugging Face token: run `huggingface-cli login` (or `hf auth login`), or set HF_TOKEN "
                         "to a token with write access (https://huggingface.co/settings/tokens)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="docker", private=private, exist_ok=True)
    admin = None
    if open_space:
        api.add_space_variable(repo_id, OPEN_VARIABLE, "1", description="Denoise Studio: controls open to every visitor")
        try:
            api.delete_space_secret(repo_id, ADMIN_SECRET)
        except Exception as exc:  # noqa: BLE001 -- none was set: nothing to remove
            log.debug("no admin secret to remove from %s (%s)", repo_id, exc)
    else:
        admin = secrets.token_urlsafe(24)
        api.add_space_secret(repo_id, ADMIN_SECRET, admin,
                             description="Denoise Studio: the token that unlocks training and deleting runs")
    api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=str(folder),
                      commit_message="Deploy Denoise Studio")
    return f"https://huggingface.co/spaces/{repo_id}", admin


__all__ = ["APP_DIRS", "APP_FILES", "LFS_PATTERNS", "SpaceError", "build_space", "default_model_card", "push_space",
           "resolve_checkpoint", "space_zip"]
