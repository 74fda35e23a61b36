"""The rope spec: how to rescale RoPE (`RopeScaling`), beside the math that reads it (methods.py).

Key names are transformers' (`rope_parameters`), so a spec round-trips through a saved config.json.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..knobs import check_knobs, knob, one_of
from .methods import METHODS

# The scaling methods ropescale implements, by the name users pass to --method (one record each in
# rope/methods.py). `none` is plain RoPE (extrapolation); the others follow transformers' rope_type names
# where transformers has one.
METHOD_NAMES = tuple(METHODS)
_YARN, _LLAMA3 = METHODS["yarn"].parameters, METHODS["llama3"].parameters


FACTOR_MAX = 1024.0  # s = L'/L: 2M tokens from a 2k window; the theory's per-position tables stay in memory


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
        None,
        "yarn/longrope: multiplier on cos/sin (default: the method's formula)",
        positive=True,
    )
    beta_fast: float | None = knob(
        None,
        f"yarn: rotations above which a dimension is untouched (default {_YARN['beta_fast']:g})",
        positive=True,
    )
    beta_slow: float | None = knob(
        None,
        f"yarn: rotations below which a dimension is fully interpolated (default {_YARN['beta_slow']:g})",
        positive=True,
    )
    mscale: float | None = knob(
        None, "yarn (DeepSeek style): mscale numerator of the attention factor", positive=True
    )
    mscale_all_dim: float | None = knob(
        None,
        "yarn (DeepSeek style): mscale denominator of the attention factor",
        positive=True,
    )
    truncate: bool = knob(True, "yarn: round the correction range to whole dimensions (floor/ceil)")
    low_freq_factor: float | None = knob(
        None,
        f"llama3: wavelengths above L/low_freq_factor are interpolated (default {_LLAMA3['low_freq_factor']:g})",
        positive=True,
    )
    high_freq_factor: float | None = knob(
        None,
        f"llama3: wavelengths below L/high_freq_factor are kept (default {_LLAMA3['high_freq_factor']:g})",
        positive=True,
    )
    short_factor: tuple[float, ...] | None = knob(
        None, "longrope: per-dimension factors (head_dim/2 values, comma-separated) used within L"
    )
    long_factor: tuple[float, ...] | None = knob(
        None, "longrope: per-dimension factors (head_dim/2 values, comma-separated) used beyond L"
    )
    layer_types: tuple[str, ...] | None = knob(
        None,
        "models with rope per layer type (Gemma 3/4, Olmo 3): the layer types to scale, comma-separated "
        "(default: full_attention; sliding-window layers never see distances beyond their window)",
    )
    rope_theta: float | None = knob(
        None, "abf: the new RoPE base (config.json's rope_theta), e.g. 5e6; `ropescale theory` suggests one"
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
        check_knobs(self)  # the positive ones (their `positive=True` metadata)
        for name in ("short_factor", "long_factor"):
            values = getattr(self, name)
            if values is None:
                continue
            object.__setattr__(self, name, tuple(float(v) for v in values))
            bad = [v for v in getattr(self, name) if not (math.isfinite(v) and v > 0)]
            if bad or not values:
                raise ValueError(f"--{name.replace('_', '-')} must be a non-empty list of positive numbers")
        if self.layer_types is not None:
            object.__setattr__(self, "layer_types", tuple(str(v) for v in self.layer_types))
            if not self.layer_types or not all(self.layer_types):
                raise ValueError("--layer-types must name at least one layer type")
        if self.rope_theta is not None and "rope_theta" not in METHODS[self.rope_type].parameters:
            raise ValueError(f"--rope-theta applies to --method abf only, got --method {self.rope_type}")
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
