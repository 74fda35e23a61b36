"""The ground floor of every config: `knob` (a dataclass field with its one-line doc, its flag and its
constraints), the flag spellings, and the checks that read a knob's constraints from its metadata.

A knob's metadata may carry:
  - ``help``: its one-line doc and --help text;
  - ``flag``: the CLI spelling when it differs from ``--field-name`` (``rope_type`` is ``--method``);
  - ``positional``: the knob is a positional argument;
  - ``choices``: the valid values (checked by `check_knobs`, listed in --help);
  - ``at_least``: a lower bound (an integer knob unless ``integer=False``; None and lists of numbers pass
    through element-wise), checked by `check_knobs`;
  - ``at_most``: an upper bound, the end of the knob's documented range where large values would overflow
    or allocate without bound (seeds, theory's sizes), checked by `check_knobs`;
  - ``positive``: a number > 0 (or None), checked by `check_knobs`.
So a new knob is one field: its constraints live beside its doc, and each config's ``__post_init__``
calls ``check_knobs(self)`` once before its cross-knob checks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any


def knob(default: Any = dataclasses.MISSING, help: str = "", **meta: Any) -> Any:
    """A dataclass field with its one-line doc (and optional CLI metadata and constraints)."""
    meta["help"] = help
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag(f: dataclasses.Field) -> str:
    """A knob's command-line spelling: `--method`, `--lr`."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def flag_name(f: dataclasses.Field) -> str:
    """A knob's flat key: its flag without the dashes, `method`, `passkey_fraction`."""
    return flag(f).lstrip("-").replace("-", "_")


def at_least(cfg: Any, low: float, *names: str, integer: bool = True) -> None:
    """The one bound check of every config: each named knob is None or a finite number >= `low` (an
    integer unless `integer` is False), or a list of such numbers; the error names the knob as its flag."""
    kinds = int if integer else (int, float)
    flags = {f.name: flag(f) for f in dataclasses.fields(cfg)}
    for name in names:
        value, flag_ = getattr(cfg, name), flags[name]
        for v in value if isinstance(value, (list, tuple)) else [] if value is None else [value]:
            if isinstance(v, bool) or not isinstance(v, kinds) or not math.isfinite(v) or v < low:
                what = "an integer" if integer else "a number"
                raise ValueError(f"{flag_} must be {what} >= {low:g}, got {v!r}")


SEED_MAX = 2**32 - 1  # numpy's seeds stop here (torch's at 2**64 - 1)


def at_most(cfg: Any, high: float, name: str, low: float | None = None, integer: bool = True) -> None:
    """The knob `name` (None, a number or a list of numbers, already checked by `at_least`) is <= `high`;
    the error names the flag and the documented range."""
    f = next(f for f in dataclasses.fields(cfg) if f.name == name)
    value = getattr(cfg, name)
    for v in value if isinstance(value, (list, tuple)) else [] if value is None else [value]:
        if v > high:
            what = "an integer" if integer else "a number"
            span = f"in [{_num(low)}, {_num(high)}]" if low is not None else f"<= {_num(high)}"
            raise ValueError(f"{flag(f)} must be {what} {span}, got {v!r}")


def _num(x: float) -> str:
    """4294967295 as written, 1e+12 as %g: the bound in an error reads as the flag's documentation."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e10 else f"{x:g}"


def one_of(value: Any, choices: tuple[str, ...], flag: str) -> None:
    """The one choice check of every config: the error names the flag and the valid values."""
    if value not in choices:
        raise ValueError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")


def positive(value: float | None, flag: str) -> None:
    """None, or a finite number > 0."""
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{flag} must be a positive number, got {value!r}")


def check_knobs(cfg: Any) -> None:
    """Every constraint the knobs of `cfg` carry in their metadata (``choices``, ``at_least``, ``positive``),
    in field order; the error names the first knob that breaks one."""
    for f in dataclasses.fields(cfg):
        meta, value = f.metadata, getattr(cfg, f.name)
        if "choices" in meta:
            one_of(value, tuple(meta["choices"]), flag(f))
        if "at_least" in meta:
            at_least(cfg, meta["at_least"], f.name, integer=meta.get("integer", True))
        if "at_most" in meta:
            at_most(cfg, meta["at_most"], f.name, meta.get("at_least"), meta.get("integer", True))
        if meta.get("positive"):
            positive(value, flag(f))
