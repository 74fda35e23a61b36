"""The knobs everything shares: knob(), RopeScaling, LoadOptions, and the extend/inspect commands."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..rope.methods import METHODS
from .flat import flag as flag_of

# The scaling methods ropescale implements, by the name users pass to --method (one record each in
# rope/methods.py). `none` is plain RoPE (extrapolation); the others follow transformers' rope_type names
# where transformers has one.
METHOD_NAMES = tuple(METHODS)
_YARN, _LLAMA3 = METHODS["yarn"].parameters, METHODS["llama3"].parameters


def knob(default: Any = dataclasses.MISSING, help: str = "", **meta: Any) -> Any:
    """A dataclass field with its one-line doc (and optional CLI metadata)."""
    meta["help"] = help
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def at_least(cfg: Any, low: float, *names: str, integer: bool = True) -> None:
    """The one bound check of every config: each named knob is None or a finite number >= `low` (an
    integer unless `integer` is False), or a list of such numbers; the error names the knob as its flag."""
    kinds = int if integer else (int, float)
    flags = {f.name: flag_of(f) for f in dataclasses.fields(cfg)}
    for name in names:
        value, flag = getattr(cfg, name), flags[name]
        for v in value if isinstance(value, (list, tuple)) else [] if value is None else [value]:
            if isinstance(v, bool) or not isinstance(v, kinds) or not math.isfinite(v) or v < low:
                what = "an integer" if integer else "a number"
                raise ValueError(f"{flag} must be {what} >= {low:g}, got {v!r}")


SEED_MAX = 2**32 - 1  # numpy's seeds stop here (torch's at 2**64 - 1)
FACTOR_MAX = 1024.0  # s = L'/L: 2M tokens from a 2k window; the theory's per-position tables stay in memory


def in_range(cfg: Any, low: float, high: float, *names: str, integer: bool = True) -> None:
    """`at_least`, and at most `high`: the documented range of a knob whose large values would overflow or
    allocate without bound (seeds, theory's sizes); the error names the knob and the range."""
    at_least(cfg, low, *names, integer=integer)
    flags = {f.name: flag_of(f) for f in dataclasses.fields(cfg)}
    for name in names:
        value = getattr(cfg, name)
        for v in value if isinstance(value, (list, tuple)) else [] if value is None else [value]:
            if v > high:
                what = "an integer" if integer else "a number"
                raise ValueError(f"{flags[name]} must be {what} in [{_num(low)}, {_num(high)}], got {v!r}")


def _num(x: float) -> str:
    """4294967295 as written, 1e+12 as %g: the bound in an error reads as the flag's documentation."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e10 else f"{x:g}"


def one_of(value: Any, choices: tuple[str, ...], flag: str) -> None:
    """The one choice check of every config: the error names the flag and the valid values."""
    if value not in choices:
        raise ValueError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")


def _positive(name: str, value: float | None, flag: str) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{flag} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class RopeScaling:
    """How to rescale RoPE. Key names are transformers' (`rope_parameters`), so configs round-trip."""

    rope_type: str = knob(
        "none",
        "scaling method (none = plain RoPE; the others as transformers names them)",
        flag="--method",
        choices=METHOD_NAMES,
    )
    factor: float = knob(1.0, f"scale factor s = L'/L (new window / original window), in [1, {FACTOR_MAX:g}]")
    original_max_position_embeddings: int | None = knob(
        None, "original (pre-training) window L; default: the model's max_position_embeddings"
    )
    attention_factor: float | None = knob(
        None, "yarn/longrope: multiplier on cos/sin (default: the method's formula)"
    )
    beta_fast: float | None = knob(
        None, f"yarn: rotations above which a dimension is untouched (default {_YARN['beta_fast']:g})"
    )
    beta_slow: float | None = knob(
        None,
        f"yarn: rotations below which a dimension is fully interpolated (default {_YARN['beta_slow']:g})",
    )
    mscale: float | None = knob(None, "yarn (DeepSeek style): mscale numerator of the attention factor")
    mscale_all_dim: float | None = knob(
        None, "yarn (DeepSeek style): mscale denominator of the attention factor"
    )
    truncate: bool = knob(True, "yarn: round the correction range to whole dimensions (floor/ceil)")
    low_freq_factor: float | None = knob(
        None,
        f"llama3: wavelengths above L/low_freq_factor are interpolated (default {_LLAMA3['low_freq_factor']:g})",
    )
    high_freq_factor: float | None = knob(
        None,
        f"llama3: wavelengths below L/high_freq_factor are kept (default {_LLAMA3['high_freq_factor']:g})",
    )
    short_factor: tuple[float, ...] | None = knob(
        None, "longrope: per-dimension factors (head_dim/2 values, comma-separated) used within L"
    )
    long_factor: tuple[float, ...] | None = knob(
        None, "longrope: per-dimension factors (head_dim/2 values, comma-separated) used beyond L"
    )

    def __post_init__(self) -> None:
        one_of(self.rope_type, tuple(sorted(METHOD_NAMES)), "--method")
        if not isinstance(self.factor, (int, float)) or not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError(f"--factor must be >= 1, got {self.factor}")
        if self.factor > FACTOR_MAX:
            raise ValueError(f"--factor must be in [1, {FACTOR_MAX:g}], got {self.factor:g}")
        orig = self.original_max_position_embeddings
        if orig is not None and (isinstance(orig, bool) or not isinstance(orig, int) or orig < 1):
            raise ValueError(f"--original-max-position-embeddings must be a positive integer, got {orig!r}")
        for name in (
            "attention_factor",
            "beta_fast",
            "beta_slow",
            "mscale",
            "mscale_all_dim",
            "low_freq_factor",
        ):
            _positive(name, getattr(self, name), "--" + name.replace("_", "-"))
        _positive("high_freq_factor", self.high_freq_factor, "--high-freq-factor")
        for name in ("short_factor", "long_factor"):
            values = getattr(self, name)
            if values is None:
                continue
            object.__setattr__(self, name, tuple(float(v) for v in values))
            bad = [v for v in getattr(self, name) if not (math.isfinite(v) and v > 0)]
            if bad or not values:
                raise ValueError(f"--{name.replace('_', '-')} must be a non-empty list of positive numbers")
        METHODS[self.rope_type].check(self, None)  # the method's own checks (rope/methods.py)

    def require_original(self) -> int:
        """The original window L; methods whose formula needs it call this."""
        if self.original_max_position_embeddings is None:
            raise ValueError(
                f"--method {self.rope_type} needs --original-max-position-embeddings (the pre-training window)"
            )
        return self.original_max_position_embeddings

    def with_original(self, original: int) -> RopeScaling:
        """This spec with L filled in where the user left it unset."""
        if self.original_max_position_embeddings is not None:
            return self
        return dataclasses.replace(self, original_max_position_embeddings=int(original))

    @property
    def new_window(self) -> int | None:
        """The extended window L' = s * L (None while L is unknown)."""
        orig = self.original_max_position_embeddings
        return None if orig is None else round(orig * self.factor)

    def to_dict(self) -> dict[str, Any]:
        """Only the keys that are set, with lists for the per-dimension factors (JSON friendly)."""
        out: dict[str, Any] = {"rope_type": self.rope_type, "factor": float(self.factor)}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in out or value is None or (f.name == "truncate" and value is True):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RopeScaling:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown rope scaling keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)


def resolve_path(value: str | Path) -> Path:
    return Path(value).expanduser()


DTYPES = ("auto", "float32", "bfloat16", "float16")
GGUF_TYPES = ("f16", "q8_0", "f32")  # llama.cpp converter --outtype values ropescale offers


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model (shared by every command that loads one)."""

    device: str = knob("cpu", "torch device to run on (cpu, cuda, cuda:1, ...)")
    dtype: str = knob("auto", "weights dtype (auto = float32 on CPU, bfloat16 on GPU)", choices=DTYPES)
    trust_remote_code: bool = knob(
        False, "allow the checkpoint's own Python code to run (off unless you ask)"
    )

    def __post_init__(self) -> None:
        one_of(self.dtype, DTYPES, "--dtype")
        if self.device != "cpu":
            check_device(self.device)


def check_device(device: str) -> None:
    """--device names a torch device type this torch was built with and a device that is present."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    backend = getattr(torch.backends, dev.type, None) if dev.type == "mps" else getattr(torch, dev.type, None)
    available = getattr(backend, "is_available", None)
    if dev.type != "cpu" and not (callable(available) and available()):
        raise ValueError(
            f"--device {device}: this torch ({torch.__version__}) has no usable {dev.type} device"
        )
    count = getattr(backend, "device_count", lambda: 1)()
    if dev.index is not None and dev.index >= count:
        raise ValueError(f"--device {device}: only {count} {dev.type} device(s) are visible")


@dataclass(frozen=True)
class ExtendConfig:
    """ropescale extend: write a checkpoint whose config carries the scaling."""

    model: str = knob(
        help="model: local directory, .gguf file, hub id, or a built-in: tiny, smollm2-135m", positional=True
    )
    out: Path = knob(help="output directory for the scaled checkpoint (safetensors + tokenizer)")
    rope: RopeScaling = knob(RopeScaling(), "scaling")
    load: LoadOptions = knob(LoadOptions(), "loading")
    overwrite: bool = knob(False, "replace --out if it exists and is not empty")
    gguf: bool = knob(
        False,
        "also write a GGUF (llama.cpp) into --out with llama.cpp's converter, checked against the scaling "
        "(pip install 'ropescale[gguf-export]')",
    )
    gguf_type: str = knob("f16", "weights type of the --gguf file", choices=GGUF_TYPES)

    def __post_init__(self) -> None:
        one_of(self.gguf_type, GGUF_TYPES, "--gguf-type")
        if self.gguf:
            reason = gguf_unsupported(self.rope)
            if reason:
                raise ValueError(f"--gguf with --method {self.rope.rope_type}: {reason}")


def gguf_unsupported(s: RopeScaling) -> str | None:
    """Why llama.cpp cannot run a scaling as transformers does (None when it can). LongRoPE also needs a
    Phi-3 model, checked once the model's config is known (models/gguf.py)."""
    return METHODS[s.rope_type].gguf_refusal(s)


@dataclass(frozen=True)
class InspectConfig:
    """ropescale inspect: what RoPE scaling a model carries, per dimension, and whether it is live."""

    model: str = knob(
        help="model: local directory, .gguf file, hub id, or a built-in: tiny, smollm2-135m", positional=True
    )
    rope: RopeScaling | None = knob(
        None, "preview a scaling instead of the model's own (same flags as extend)"
    )
    load: LoadOptions = knob(LoadOptions(), "loading")
    json: bool = knob(False, "print machine-readable JSON instead of tables")
