"""The documentation holds: every repository path named in Markdown files and docstrings exists, every command
line in the README's code blocks parses with today's command line, the README stays a user's document, and
docs/configuration.md is what its generator writes from the code today."""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Top-level folders whose paths are checked; a path under one of them must exist (or be ignored by git: outputs
# such as bench/out/). Paths elsewhere (runs/, weights/, ../shared/...) are examples of the user's own files.
CHECKED_DIRS = ("denoise_core", "tests", "bench", "docs", "studio", "pages", "training", ".streamlit", ".ci")
PATH = re.compile(r"(?<![\w./<>@$-])((?:" + "|".join(re.escape(d) for d in CHECKED_DIRS) + r")/[\w.*{},/-]*)")
# A path in git's history: `git show 1a2b3c4:training/stage1-epoch67.pt > ...` (checked against that commit).
HISTORIC = re.compile(r"\b([0-9a-f]{7,40}):([\w./-]+)")
BARE_SCRIPT = re.compile(r"(?<![\w./<>-])([\w-]+\.(?:py|sh))\b")
MODULE = re.compile(r"\bdenoise_core\.([a-z_]\w*)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@functools.cache
def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if (REPO / p).exists()]


def _ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO).returncode == 0


def _expand(path: str) -> list[str]:
    """``a.{csv,md}`` -> ``a.csv``, ``a.md`` (shell braces, as the docs write a set of files)."""
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    return [q for part in m.group(1).split(",") for q in _expand(path[: m.start()] + part + path[m.end():])]


def _exists(path: str, base: Path = REPO) -> bool:
    for one in _expand(path):
        target = (base / one)
        if "*" in one:
            if not list(base.glob(one.rstrip("/"))):
                return False
        elif not target.exists() and not _ignored(one if base == REPO else str(target.relative_to(REPO))):
            return False
    return True


def _in_commit(commit: str, path: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit}:{path.rstrip('/')}"], cwd=REPO,
                          capture_output=True).returncode == 0


def _texts() -> list[tuple[str, str]]:
    """(file, text) for every tracked Markdown file and every docstring of a tracked Python file."""
    out = []
    for rel in tracked():
        if rel.endswith(".md"):
            out.append((rel, (REPO / rel).read_text()))
        elif rel.endswith(".py"):
            tree = ast.parse((REPO / rel).read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node, clean=False)
                    if doc:
                        out.append((rel, doc))
    return out


def missing_paths() -> list[str]:
    """'file: path' for every named repository path that does not exist."""
    names = {Path(p).name for p in tracked()}
    modules = {p.stem for p in (REPO / "denoise_core").glob("*.py")} | {"weights"}
    import denoise_core  # loads nothing heavy

    exported = set(denoise_core.__all__)
    bad = []
    for rel, text in _texts():
        historic = set()
        for commit, path in HISTORIC.findall(text):
            historic.add(path)
            if not _in_commit(commit, path):
                bad.append(f"{rel}: {commit}:{path} (not in that commit)")
        for raw in PATH.findall(text):
            path = raw.rstrip(".,:;")
            if path in historic or "<" in path:
                continue
            if not _exists(path):
                bad.append(f"{rel}: {path}")
        for name in BARE_SCRIPT.findall(text):
            if name not in names and not _exists(name):
                bad.append(f"{rel}: {name}")
        for name in MODULE.findall(text):
            if name not in modules | exported:
                bad.append(f"{rel}: denoise_core.{name}")
        if rel.endswith(".md"):
            for link in LINK.findall(text):
                if "://" in link or link.startswith("mailto:"):
                    continue
                if not _exists(link, (REPO / rel).parent):
                    bad.append(f"{rel}: link {link}")
    return sorted(set(bad))


def test_every_path_named_in_markdown_and_docstrings_exists():
    assert not missing_paths(), "\n".join(missing_paths())


def test_the_path_check_catches_a_stale_path(tmp_path):
    assert PATH.findall("run `tests/test_cuda.py` and docs/results/ablation.{csv,md}.") == \
        ["tests/test_cuda.py", "docs/results/ablation.{csv,md}."]
    assert not _exists("tests/test_cuda.py") and _exists("docs/results/ablation.{csv,md}")
    assert _exists("bench/out/anything") and _exists("docs/results/*.csv") and not _exists("docs/results/*.xyz")
    assert HISTORIC.findall("git show 4a7c6ea:denoise_core/weights/default.pt > s.pt") == \
        [("4a7c6ea", "denoise_core/weights/default.pt")]
    assert BARE_SCRIPT.findall("studio.py is the entry point; see bench/perf.py") == ["studio.py"]


# --- The README's command lines parse with today's parsers --------------------------------------------------------

def readme_commands() -> list[str]:
    """Every command line in the README's shell code blocks, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text()
    lines = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.extend(part.strip() for part in line.split("&&"))
    return lines


def check_command(line: str) -> None:
    """Raise AssertionError if ``line`` would not parse (our CLI), names a missing script or make target."""
    from denoise_core.cli import build_parser

    words = shlex.split(line)
    if words[0] == "make":
        makefile = (REPO / "Makefile").read_text()
        for target in words[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target!r}: {line}"
        return
    if "denoise_core" in words and words[words.index("denoise_core") - 1] == "-m" or words[0] == "denoise":
        args = words[1:] if words[0] == "denoise" else words[words.index("denoise_core") + 1:]
        try:
            build_parser(args[0] if args else None).parse_args(args)
        except SystemExit as exc:
            raise AssertionError(f"does not parse ({exc.code}): {line}") from None
        return
    scripts = [w for w in words if re.search(r"\.(py|sh)$", w)]
    for script in scripts:
        assert (REPO / script).is_file(), f"no such script {script}: {line}"


def test_every_readme_command_parses_with_todays_cli():
    commands = readme_commands()
    assert sum("denoise_core" in c for c in commands) >= 8  # restore, train, bench, export, space are all shown
    for line in commands:
        check_command(line)


def test_the_command_check_refuses_a_stale_flag():
    check_command("python -m denoise_core restore a.jpg b.png --strength 0.5")
    with pytest.raises(AssertionError, match="does not parse"):
        check_command("python -m denoise_core restore a.jpg b.png --no-such-flag")
    with pytest.raises(AssertionError, match="no make target"):
        check_command("make no-such-target")


# --- The README is a user's document --------------------------------------------------------------------------

def test_the_readme_is_short_and_starts_with_what_a_user_does():
    text = (REPO / "README.md").read_text()
    assert len(text) <= 20_000, len(text)
    headings = re.findall(r"^## (.+)$", text, re.M)
    wanted = ["Install and run", "Restore", "Train on your own photos", "Deploy to Hugging Face Spaces", "Results"]
    at = [next(i for i, h in enumerate(headings) if h.startswith(w)) for w in wanted]
    assert at == sorted(at) and at[-2] <= 5, headings
    assert "DENOISE_ADMIN_TOKEN" in text and "docs/results/real-photos/" in text


# Development-log wording: work sessions, issue numbers, the project's starting point (its "seed"). A reader sees
# none of them; models are named by version and results by date. "session" in its technical senses (Streamlit's
# session state, onnxruntime sessions, OS process sessions, pytest's session scope) is fine.
DEV_LOG = re.compile(r"\bsessions? \d|\bsession-\d|\bsession\d|\b(?:next|previous|earlier|later) sessions?\b|"
                     r"\bacross sessions\b|\bwithin the session\b|\bsession end\b|\bissue[- ]\d|\bthe issue's\b|"
                     r"\bthe seed\b(?! spread|-to-)", re.I)


def test_no_development_log_wording_in_tracked_text():
    bad = []
    for rel in tracked():
        if not rel.endswith((".md", ".py", ".sh", ".toml", ".txt", ".cfg", ".ini", ".json")) or rel == "LICENSE":
            continue
        for n, line in enumerate((REPO / rel).read_text(errors="replace").splitlines(), 1):
            if DEV_LOG.search(line) and "DEV_LOG" not in line:
                bad.append(f"{rel}:{n}: {line.strip()[:120]}")
    assert not bad, "\n".join(bad)
    assert DEV_LOG.search("measured in session 11") and DEV_LOG.search("the seed's 30 epochs")
    assert not DEV_LOG.search("st.session_state") and not DEV_LOG.search('@pytest.fixture(scope="session")')


def test_the_configuration_page_is_what_the_code_says():
    """docs/configuration.md is generated (flags from the parsers and TrainConfig, environment variables found in
    the code, the Streamlit settings): compared with a fresh render, so a changed default fails until regenerated."""
    spec = importlib.util.spec_from_file_location("make_configuration", REPO / "docs" / "make_configuration.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    assert make.render() == (REPO / "docs" / "configuration.md").read_text(), \
        "docs/configuration.md is stale: run .venv/bin/python docs/make_configuration.py"
