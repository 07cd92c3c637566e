"""Write docs/configuration.md from the code: every command-line flag (from `denoise_core.cli.build_parser`, whose
train flags come from `denoise_core.training.TrainConfig`), every environment variable the code reads, and the
studio's Streamlit settings (`.streamlit/config.toml`).

    .venv/bin/python docs/make_configuration.py           # rewrite docs/configuration.md
    .venv/bin/python docs/make_configuration.py --check   # exit 1 if it is stale

`tests/library/test_docs.py` runs `render()` and compares it with the file, so a changed default or a new flag
fails the tests until this script is run again.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "configuration.md"

# What each environment variable does and its default. Where it is read comes from the code; a variable the code
# reads that is missing here stops the script, so the page cannot fall behind.
ENVIRONMENT = {
    "DENOISE_DATA_ROOT": ("`./data`", "the studio's data root: `datasets/` and `runs/` (on a Space with persistent "
                                      "storage: `/data`)"),
    "DENOISE_ADMIN_TOKEN": ("unset", "the secret that unlocks starting, stopping, resuming and deleting runs and "
                                     "unpacking datasets on a public host (typed into the sidebar's \"Admin token\"); "
                                     "`space --push` sets a random one as the Space's secret"),
    "DENOISE_PUBLIC": ("unset", "`1`: treat this host as public (as `SPACE_ID` does): without `DENOISE_ADMIN_TOKEN` "
                                "every control that changes something is locked"),
    "DENOISE_OPEN": ("unset", "`1`: a deliberately open public host, every visitor may train (`space --push --open` "
                              "sets it)"),
    "SPACE_ID": ("set by Hugging Face", "marks the host as a public Space (see `DENOISE_PUBLIC`)"),
    "HF_TOKEN": ("unset", "the Hugging Face token `space --push` uploads with (else `huggingface-cli login`'s)"),
    "DENOISE_TRAIN_DEFAULTS": ("unset", "a JSON object of Train-form defaults, e.g. "
                                        "`{\"epochs\": 5, \"width\": 16, \"steps_per_epoch\": 50}`"),
    "DENOISE_BACKEND": ("`auto`", "the restore backend: `auto`, `torch`, `bf16` or `onnxruntime`"),
    "DENOISE_CACHE_DIR": ("`~/.cache/denoise-studio/onnx`", "where exported ONNX graphs are cached"),
    "DENOISE_MALLOC": ("tuned", "`system`: leave glibc's malloc thresholds as they come"),
    "DENOISE_MAX_PIXELS": ("40000000", "the largest image the library and command line decode"),
    "DENOISE_UI_MAX_FILES": ("20", "photos per request in the Restore tab"),
    "DENOISE_UI_MAX_PIXELS": ("16000000", "the largest photo the Restore tab restores"),
    "DENOISE_UI_MAX_FILE_SIZE": ("`50mb`", "the largest upload the Restore tab accepts"),
    "DENOISE_UI_CONCURRENCY": ("2", "restorations computed at once in the Restore tab"),
    "DENOISE_UI_QUEUE_SIZE": ("64", "restorations waiting in the Restore tab's queue"),
    "DENOISE_ZIP_MAX_BYTES": ("2 GiB", "uncompressed size of an uploaded dataset zip"),
    "DENOISE_ZIP_MAX_ENTRIES": ("10000", "entries of an uploaded dataset zip"),
    "DENOISE_ZIP_MAX_RATIO": ("100", "compression ratio of an uploaded dataset zip (zip bombs)"),
    "DRY_RUN": ("unset", "`1`: `training/gpu.sh` runs 3 CPU steps of the same command (the test does)"),
}
ENV_NAME = re.compile(r"\b(DENOISE_[A-Z0-9_]+|SPACE_ID|HF_TOKEN|DRY_RUN)\b")
ENV_SOURCES = ("denoise_core", "studio", "pages", "app.py", "training")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(action: argparse.Action, train_defaults: dict) -> str:
    value = action.default
    if value is argparse.SUPPRESS:
        value = train_defaults.get(action.dest, argparse.SUPPRESS)
        if value is argparse.SUPPRESS:
            return ""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "not given"
    if value is None or value == "":
        return "–"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "–"
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()) or "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _flags_table(parser: argparse.ArgumentParser, train_defaults: dict) -> list[str]:
    rows = ["| option | default | what |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = ", ".join(action.option_strings) if action.option_strings else action.dest.upper()
        if action.metavar and action.option_strings:
            name += f" {action.metavar}"
        elif action.choices and action.option_strings:
            name += " " + "|".join(str(c) for c in action.choices)
        help_text = (action.help or "").replace("%(default)s", str(action.default)).replace("%%", "%")
        help_text = re.sub(r"\s*\(default: [^()]*\)$", "", help_text)  # the default has its own column
        rows.append(f"| `{_cell(name)}` | {_cell(_default(action, train_defaults))} | {_cell(help_text)} |")
    return rows


def _environment() -> list[str]:
    files = subprocess.run(["git", "ls-files", *ENV_SOURCES], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    where: dict[str, set[str]] = {}
    for rel in files:
        if not rel.endswith((".py", ".sh")) or not (ROOT / rel).is_file():
            continue
        for name in ENV_NAME.findall((ROOT / rel).read_text()):
            where.setdefault(name, set()).add(rel)
    undocumented = sorted(set(where) - set(ENVIRONMENT))
    if undocumented:
        raise SystemExit(f"describe these in docs/make_configuration.py's ENVIRONMENT: {', '.join(undocumented)}")
    rows = ["| variable | default | what | read in |", "|---|---|---|---|"]
    for name, (default, what) in ENVIRONMENT.items():
        files_ = ", ".join(f"`{f}`" for f in sorted(where.get(name, ()))) or "–"
        rows.append(f"| `{name}` | {default} | {_cell(what)} | {files_} |")
    return rows


def _streamlit_settings() -> list[str]:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    rows = ["| setting | value |", "|---|---|"]
    for section, values in config.items():
        for key, value in values.items():
            shown = str(value).lower() if isinstance(value, bool) else f'"{value}"' if isinstance(value, str) else value
            rows.append(f"| `{section}.{key}` | `{shown}` |")
    return rows


def render() -> str:
    from denoise_core.cli import COMMANDS, SUMMARIES, build_parser
    from denoise_core.options import defaults_of
    from denoise_core.training import TrainConfig

    train_defaults = defaults_of(TrainConfig)
    out = [
        "# Configuration",
        "",
        "Every command-line option, environment variable and studio setting. Generated from the code by",
        "`docs/make_configuration.py` (do not edit by hand; `tests/library/test_docs.py` checks it is current). The",
        "studio's Train form takes its fields, labels, help and ranges from the same `TrainConfig` as `train`'s flags.",
        "",
        "## Command line",
        "",
        "`python -m denoise_core COMMAND ...`, installed as `denoise COMMAND ...`; `-v` / `--verbose` before the",
        "command turns on debug logging. Errors print one line and exit with status 2.",
    ]
    for name in COMMANDS:
        parser = build_parser(name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        out += ["", f"### `{name}`", "", SUMMARIES[name][0].upper() + SUMMARIES[name][1:] + "."]
        if name == "train":
            out += ["", "Every option except `--config` and `--no-progress` is a field of",
                    "`denoise_core.training.TrainConfig` and a keyword of `denoise_core.train(...)`; the default is",
                    "the field's."]
        out += ["", *_flags_table(sub, train_defaults if name == "train" else {})]
    out += ["", "## Environment variables", "", *_environment(),
            "", "## Studio settings (`.streamlit/config.toml`)", "",
            "Streamlit reads these for a local run and on a Space alike; any of them can be overridden by Streamlit's own",
            "`STREAMLIT_*` variables or command-line options.", "", *_streamlit_settings(), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is not current")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.is_file() else ""
        if current != text:
            print(f"{OUT} is stale: run {Path(__file__).relative_to(ROOT)}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
