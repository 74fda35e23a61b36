"""Flat names for nested configs: the one mapping between a config's groups and the flat spellings that
flags, --config files, shipped recipes and Python callers use.

A config is a dataclass whose fields are knobs or groups (dataclasses of knobs, e.g. ``optim:
OptimOptions``). Each knob has a dotted path (``optim.lr``) and a flag (``--lr``; a field's ``flag``
metadata where it differs from its name, e.g. ``passkey.fraction`` is ``--passkey-fraction``). A flat key
is a dotted path, a flag's name (``lr``, ``passkey_fraction``, ``method``) or a knob's field name where no
other knob has it (``rope_type``); a group's own name takes the group's object (``rope=RopeScaling(...)``).

Recipes are TOML files of flat keys shipped in ``ropescale/recipes/`` and named without their suffix:
``--config pretrain`` reads ``recipes/pretrain.toml`` when no file ``pretrain`` exists.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..knobs import flag as flag  # re-exported: the CLI's and tools' spelling
from ..knobs import flag_name

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """(T, True) for `T | None`, else (tp, False)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else tp), True
    return tp, False


def has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def default(f: dataclasses.Field) -> Any:
    """A field's default value (a fresh one for a default_factory)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def fields(cls: type) -> list[tuple[dataclasses.Field, Any, bool]]:
    """(field, type with None removed, is optional) of each field of `cls`."""
    hints = typing.get_type_hints(cls)
    return [(f, *unwrap_optional(hints[f.name])) for f in dataclasses.fields(cls)]


def knobs(cls: type, prefix: str = "") -> dict[str, dataclasses.Field]:
    """{dotted path: field} of every knob (groups flattened, in field order)."""
    out: dict[str, dataclasses.Field] = {}
    for f, tp, _ in fields(cls):
        if dataclasses.is_dataclass(tp):
            out.update(knobs(tp, prefix + f.name + "."))
        else:
            out[prefix + f.name] = f
    return out


def keys(cls: type) -> dict[str, str]:
    """{flat key: dotted path} of every spelling `build` accepts (see the module docstring)."""
    paths = knobs(cls)
    out = {path: path for path in paths}
    out.update({flag_name(f): path for path, f in paths.items()})
    bare: dict[str, list[str]] = {}
    for path, f in paths.items():
        bare.setdefault(f.name, []).append(path)
    out.update({name: ps[0] for name, ps in bare.items() if len(ps) == 1 and name not in out})
    for f, tp, _ in fields(cls):  # a group's own name
        if dataclasses.is_dataclass(tp):
            out.setdefault(f.name, f.name)
    return out


def nest(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """Instantiate `cls` from {dotted path: value} (a group from its prefixed keys, or whole from its own
    name's key). An optional group whose values are all None stays None; a group with none of its keys
    keeps its default."""
    kwargs = {}
    for f, tp, optional in fields(cls):
        key = prefix + f.name
        if dataclasses.is_dataclass(tp):
            if values.get(key) is not None:  # the group's object itself
                kwargs[f.name] = values[key]
                continue
            sub = {k: v for k, v in values.items() if k.startswith(key + ".")}
            if optional and all(v is None for v in sub.values()):
                if sub:
                    kwargs[f.name] = None
                continue
            sub = {k: v for k, v in sub.items() if v is not None}
            if sub or not has_default(f):
                kwargs[f.name] = nest(tp, sub, key + ".")
        elif key in values:
            value = values[key]
            if isinstance(value, list) and typing.get_origin(tp) is tuple:
                value = tuple(value)
            kwargs[f.name] = value
    return cls(**kwargs)


def build(cls: type, values: Mapping[str, Any] | None = None, /, recipe: str | None = None, **kw: Any) -> Any:
    """A config from flat keys: `build(TrainConfig, model=..., out=..., lr=1e-3, rope=RopeScaling(...))`.
    `recipe` (a shipped recipe's name or a --config file) supplies defaults that the values override, as on
    the command line. Raises ValueError for an unknown key, naming it."""
    names = keys(cls)
    given = {**(read(recipe) if recipe else {}), **(values or {}), **kw}
    unknown = sorted(k for k in given if k not in names)
    if unknown:
        raise ValueError(f"unknown knobs {unknown} for {cls.__name__}")
    return nest(cls, {names[k]: v for k, v in given.items()})


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.toml"))


def read(name: str) -> dict[str, Any]:
    """Flat {key: value} of a JSON/TOML file (nested tables become dotted keys), or of the shipped recipe
    `name` when no such file exists."""
    p = Path(name)
    if not p.is_file() and p.name == name and (RECIPES / f"{name}.toml").is_file():
        p = RECIPES / f"{name}.toml"
    if p.is_dir():
        raise ValueError(f"--config {name}: a directory, not a JSON or TOML file")
    if not p.is_file():
        raise ValueError(f"--config {name}: no such file (or shipped recipe: {', '.join(recipe_names())})")
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text())
        else:
            data = json.loads(p.read_text())
    except OSError as err:
        raise ValueError(f"--config {name}: cannot read it ({err.strerror})") from None
    except Exception as err:
        raise ValueError(
            f"--config {name}: not valid {'TOML' if p.suffix == '.toml' else 'JSON'} ({err})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {name}: expected a table of knobs, got {type(data).__name__}")

    def flat(d: dict, prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out

    return flat(data)


def by_flag(cls: type, record: Mapping[str, Any]) -> dict[str, Any]:
    """{flag name: value} of a config recorded as JSON (`outputs.jsonable`: groups as nested objects).
    Records written before the knobs were grouped hold the flag names at the top; both read the same."""
    out: dict[str, Any] = {}
    for f, tp, _ in fields(cls):
        if dataclasses.is_dataclass(tp):
            sub = record.get(f.name)
            out.update(by_flag(tp, sub if isinstance(sub, Mapping) else record))
            continue
        name = flag_name(f)
        if name in record or f.name in record:
            out[name] = record[name] if name in record else record[f.name]
    return out
