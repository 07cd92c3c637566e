"""Training options described once: flag, label, help and range, carried by `TrainConfig`'s fields.

`opt` makes a dataclass field with an `Option` in its metadata; `train_options` lists them.
The command line (`add_train_arguments`) and the studio's Train form (`studio.widgets.option_input`)
are generated from these, and `TrainConfig` checks its values against the same ranges.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Option:
    """How one training option is asked for and checked."""

    flag: str | None = None  # the command-line flag; None: not on the command line
    label: str = ""  # the Train form's label
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    fmt: str | None = None  # number format in the form, e.g. "%.1e"
    choices: tuple | None = None
    parse: Callable[[str], Any] | None = None  # command-line text -> value, for lists and maps
    invert: bool = False  # a bool that defaults to True: the flag turns it off (e.g. --uniform)

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is in range (None is accepted: "unset"); lists and maps are checked elsewhere."""
        if value is None or isinstance(value, (list, dict, bool)):
            return True
        if self.choices is not None and value not in self.choices:
            return False
        if isinstance(value, (int, float)):
            return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)
        return True

    def range_text(self) -> str:
        if self.choices is not None:
            return ""
        if self.minimum is not None and self.maximum is not None:
            return f" [{self.minimum:g}-{self.maximum:g}]"
        return ""


def opt(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **spec) -> Any:
    """A dataclass field (``default`` or ``default_factory``) described by `Option` (``spec``)."""
    meta = {"option": Option(**spec)}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def options_of(cls) -> dict[str, Option]:
    """Field name -> `Option` for the fields of dataclass ``cls`` made with `opt`."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(cls) if "option" in f.metadata}


def defaults_of(cls) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def add_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per option of ``cls`` that has one. Defaults are suppressed: only the flags given
    reach the namespace, so they can override a config file (`train --config`)."""
    defaults = defaults_of(cls)
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    for name, option in options_of(cls).items():
        if option.flag is None:
            continue
        default = defaults[name]
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
        help_text = option.help + option.range_text()
        if isinstance(default, bool) or "bool" in str(types[name]):
            kw["action"] = "store_false" if option.invert else "store_true"
        else:
            if option.parse is not None:
                kw["type"] = option.parse
            elif option.choices is not None:
                kw["type"] = type(option.choices[0])
                kw["choices"] = option.choices
            else:
                kw["type"] = float if "float" in str(types[name]) else int if "int" in str(types[name]) else str
            shown = ",".join(default) if isinstance(default, list) and default and isinstance(default[0], str) else default
            if isinstance(default, dict):
                shown = ",".join(f"{k}={v:g}" for k, v in default.items())
            if shown is not None and shown != "":
                help_text += f" (default: {shown})"
        kw["help"] = help_text.strip().replace("%", "%%") or None  # argparse formats help with %
        parser.add_argument(option.flag, **kw)


def int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def name_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def share_map(text: str) -> dict[str, float]:
    """``NAME=SHARE,...``; ``none`` (or nothing): no shares, every degradation counts 1."""
    if text.strip().lower() in ("", "none"):
        return {}
    try:
        pairs = [t.split("=") for t in text.split(",") if t.strip()]
        return {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=SHARE pairs separated by commas, got {text!r}") from None


__all__ = ["Option", "add_arguments", "defaults_of", "int_list", "name_list", "opt", "options_of", "share_map"]
