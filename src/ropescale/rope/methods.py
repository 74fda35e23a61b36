"""The scaling methods: one record each (`Method`), registered once by name in `METHODS`.

A record holds everything ropescale knows about a method: its formula, the defaults of its optional
parameters, its checks, how stock transformers' ``rope_parameters`` express it (both ways) and how to serve
it with vLLM and llama.cpp. The config's method names, the CLI's --method, scaling, export and inspect all
read it from here, so adding a method means adding a formula and a record in this file (and its tests).

Every formula has the signature ``fn(head_dim, base, s, seq_len=None) -> RopeFreqs`` where
``head_dim`` is the rotary dimension d (even), ``base`` the RoPE base b, ``s`` a `RopeScaling` and
``seq_len`` the current sequence length (only `dynamic` and `longrope` read it). Frequencies are computed
in float64 and returned as float32, the dtype of transformers' rotary buffers. Notation: theta_i = b^(-2i/d)
for i in [0, d/2), s.factor = L'/L, L = s.original_max_position_embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

if TYPE_CHECKING:  # spec.py imports this module for the method names and defaults
    from .spec import RopeScaling


class RopeFreqs(NamedTuple):
    """inv_freq: (d/2,) float32 angular frequencies theta'_i; attention_factor multiplies cos and sin."""

    inv_freq: torch.Tensor
    attention_factor: float


def base_inv_freq(head_dim: int, base: float) -> torch.Tensor:
    """theta_i = base^(-2i/d), i = 0..d/2-1, float64. (RoFormer; the unscaled frequencies.)"""
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even number, got {head_dim}")
    if not base > 1:
        raise ValueError(f"rope base (rope_theta) must be > 1, got {base}")
    exponent = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    return 1.0 / (float(base) ** exponent)


def _out(inv_freq: torch.Tensor, attention_factor: float = 1.0) -> RopeFreqs:
    return RopeFreqs(inv_freq.to(torch.float32), float(attention_factor))


def flag_number(x: float) -> str:
    """Shortest exact spelling for a command line: 2 for 2.0, full precision otherwise (a rounded base
    changes the model)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _no_check(s: RopeScaling, rotary_dim: int | None) -> None:
    return None


def _no_notes(s: RopeScaling) -> list[str]:
    return []


def _no_flags(s: RopeScaling, base: float, rotary_dim: int) -> tuple[list[str], list[str]]:
    return [], []


def _no_refusal(s: RopeScaling) -> str | None:
    return None


ORIGINAL = "original_max_position_embeddings"


@dataclass(frozen=True)
class Method:
    """Everything ropescale knows about one scaling method (`METHODS[name]`).

    freqs: the formula, ``fn(head_dim, base, s, seq_len=None) -> RopeFreqs``.
    parameters: the optional `RopeScaling` knobs the method reads, each with its default (None: the
      formula derives it); the only keys written to or read from transformers besides factor and L.
    transformers_type: the rope_type stock transformers computes the method with ("default" = plain RoPE
      frequencies, with the base `new_base` returns when the method is a base change).
    original_key: transformers reads L from rope_parameters' original_max_position_embeddings (else it
      derives L from max_position_embeddings); window_is_original: max_position_embeddings holds L, not L'.
    required: optional parameters transformers insists on, written with their defaults.
    check(s, rotary_dim): method-specific validation, raising ValueError naming the flag; rotary_dim is
      None until the model is known.
    llama_cpp(s, base, rotary_dim) -> (runtime flags, notes); vllm_notes(s); gguf_refusal(s): why
      llama.cpp cannot run it as transformers does (None when it can); gguf_model_refusal(model_type): the
      same for a model architecture.
    """

    name: str
    freqs: Callable[..., RopeFreqs]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    transformers_type: str = ""
    new_base: Callable[[int, float, RopeScaling], float] | None = None
    original_key: bool = True
    window_is_original: bool = False
    required: tuple[str, ...] = ()
    check: Callable[[RopeScaling, int | None], None] = _no_check
    llama_cpp: Callable[[RopeScaling, float, int], tuple[list[str], list[str]]] = _no_flags
    vllm_notes: Callable[[RopeScaling], list[str]] = _no_notes
    gguf_refusal: Callable[[RopeScaling], str | None] = _no_refusal
    gguf_model_refusal: Callable[[str], str | None] = _no_refusal

    def __post_init__(self) -> None:
        if not self.transformers_type:
            object.__setattr__(self, "transformers_type", self.name)

    def param(self, s: RopeScaling, name: str) -> Any:
        """The value of optional parameter `name`: the spec's, else this method's default."""
        value = getattr(s, name)
        return self.parameters[name] if value is None else value

    def to_transformers(self, s: RopeScaling, base: float, rotary_dim: int) -> tuple[dict[str, Any], int]:
        """The rope_parameters (with rope_theta) and max_position_embeddings that make stock transformers
        compute `s`."""
        orig = s.require_original()
        if self.transformers_type == "default":
            theta = base if self.new_base is None else self.new_base(rotary_dim, base, s)
            params: dict[str, Any] = {"rope_theta": float(theta), "rope_type": "default"}
        else:
            params = {
                "rope_theta": float(base),
                "rope_type": self.transformers_type,
                "factor": float(s.factor),
            }
            if self.original_key:
                params[ORIGINAL] = orig
            params.update({k: v for k, v in s.to_dict().items() if k in self.parameters})
            params.update({k: self.param(s, k) for k in self.required})
        return params, orig if self.window_is_original else s.new_window

    def from_transformers(self, params: dict[str, Any], max_pos: int | None) -> dict[str, Any]:
        """The `RopeScaling` keyword arguments of transformers' `params` (relative to the unscaled base)
        for a model whose max_position_embeddings is `max_pos`."""
        if self.transformers_type == "default":
            return {"rope_type": self.name, "factor": 1.0, ORIGINAL: max_pos}
        extra = {k: v for k, v in params.items() if k in self.parameters and v is not None}
        if self.original_key:
            orig = params.get(ORIGINAL) or max_pos
            factor = params.get("factor") or (max_pos / orig if max_pos and orig else 1.0)
        else:
            factor = params["factor"]
            orig = max_pos if self.window_is_original or max_pos is None else round(max_pos / factor)
        return {"rope_type": self.name, "factor": float(factor), ORIGINAL: orig, **extra}


def _extrapolation_note(s: RopeScaling) -> list[str]:
    return ["plain RoPE beyond the original window is direct extrapolation"] if s.factor > 1 else []


# ----------------------------------------------------------------------------- none
def none(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Plain RoPE (Su et al. 2021): theta_i = b^(-2i/d). Used beyond L this is direct extrapolation."""
    return _out(base_inv_freq(head_dim, base))


NONE = Method(
    "none",
    none,
    transformers_type="default",
    llama_cpp=lambda s, base, dim: ([], _extrapolation_note(s)),
    vllm_notes=_extrapolation_note,
)


# ----------------------------------------------------------------------------- linear (PI)
def linear(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Position Interpolation (Chen et al. 2023, Eq. 4): positions m -> m / s, equivalently theta_i / s."""
    return _out(base_inv_freq(head_dim, base) / s.factor)


LINEAR = Method(
    "linear",
    linear,
    original_key=False,
    llama_cpp=lambda s, base, dim: (
        ["--rope-scaling", "linear", "--rope-scale", flag_number(s.factor)],
        ["converter: writes rope.scaling.type=linear and the factor"],
    ),
)


# ----------------------------------------------------------------------------- ntk
def ntk_base(head_dim: int, base: float, factor: float) -> float:
    """NTK-aware base b' = b * s^(d/(d-2)) (bloc97 2023; YaRN paper Eq. 16)."""
    return float(base) * float(factor) ** (head_dim / (head_dim - 2))


def ntk(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """NTK-aware scaling: theta_i = b'^(-2i/d) with b' = b * s^(d/(d-2)); the lowest frequency is divided by s."""
    return _out(base_inv_freq(head_dim, ntk_base(head_dim, base, s.factor)))


NTK = Method(
    "ntk",
    ntk,
    transformers_type="default",  # saved as a plain base change, which every reader of the format runs
    new_base=lambda dim, base, s: ntk_base(dim, base, s.factor),
    llama_cpp=lambda s, base, dim: (
        ["--rope-freq-base", flag_number(ntk_base(dim, base, s.factor))],
        ["NTK-aware scaling is a base change; the converter writes the new rope_theta as freq_base"],
    ),
)


# ----------------------------------------------------------------------------- abf
def abf(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Adjusted base frequency (Xiong et al. 2023, "Effective Long-Context Scaling"; Code Llama, Qwen2.5,
    SmolLM3): theta_i = b'^(-2i/d) with the base b' = --rope-theta typed in, whatever the model's b."""
    _abf_check(s, head_dim)
    return _out(base_inv_freq(head_dim, s.rope_theta))


def _abf_check(s: RopeScaling, rotary_dim: int | None) -> None:
    theta = s.rope_theta
    if theta is None:
        raise ValueError("--method abf needs --rope-theta (the new RoPE base, e.g. 5e6)")
    if (
        isinstance(theta, bool)
        or not isinstance(theta, (int, float))
        or not math.isfinite(theta)
        or theta <= 1
    ):
        raise ValueError(f"--rope-theta must be a number > 1, got {theta!r}")


ABF = Method(
    "abf",
    abf,
    parameters={"rope_theta": None},
    transformers_type="default",  # saved as a plain base change, which every reader of the format runs
    new_base=lambda dim, base, s: float(s.rope_theta),
    check=_abf_check,
    llama_cpp=lambda s, base, dim: (
        ["--rope-freq-base", flag_number(s.rope_theta)],
        ["ABF is a base change; the converter writes the new rope_theta as freq_base"],
    ),
)


# ----------------------------------------------------------------------------- dynamic NTK
def dynamic(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Dynamic NTK (emozilla 2023): NTK base recomputed per length,
    b' = b * (s * l/L - (s - 1))^(d/(d-2)) with l = max(seq_len, L); plain RoPE while l <= L."""
    orig = s.require_original()
    length = orig if seq_len is None else max(int(seq_len), orig)
    new_base = float(base) * (s.factor * length / orig - (s.factor - 1)) ** (head_dim / (head_dim - 2))
    return _out(base_inv_freq(head_dim, new_base))


DYNAMIC = Method(
    "dynamic",
    dynamic,
    original_key=False,
    window_is_original=True,
    llama_cpp=lambda s, base, dim: (
        [],
        ["llama.cpp has no dynamic NTK; the converter drops it (the model runs unscaled)"],
    ),
    vllm_notes=lambda s: [
        "vLLM's dynamic NTK uses one fixed base computed for the longest length, not a base per sequence "
        "length as transformers does; short prompts are scored differently."
    ],
    gguf_refusal=lambda s: (
        "llama.cpp has no dynamic NTK (its converter drops it, the GGUF would run unscaled); "
        "use --method ntk (a fixed base change) or yarn"
    ),
)


# ----------------------------------------------------------------------------- YaRN
def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN attention temperature sqrt(1/t) = 0.1 * mscale * ln(s) + 1 (1 when s <= 1)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def yarn_correction_range(head_dim: int, base: float, s: RopeScaling) -> tuple[float, float]:
    """Dimension indices (low, high) bounding the ramp: dim d(n) = d ln(L / (2 pi n)) / (2 ln b) for
    n = beta_fast (low) and n = beta_slow (high) rotations within L; floor/ceil when `truncate`."""
    orig = s.require_original()

    def dim_for(rotations: float) -> float:
        return head_dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = dim_for(YARN.param(s, "beta_fast")), dim_for(YARN.param(s, "beta_slow"))
    if s.truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, head_dim - 1)


def yarn(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """YaRN (Peng et al. 2023): NTK-by-parts, theta'_i = (1 - g_i) theta_i + g_i theta_i / s with a linear
    ramp g over the correction range, plus cos/sin multiplied by 0.1 ln s + 1 (attention temperature)."""
    if s.attention_factor is not None:
        attention = s.attention_factor
    elif s.mscale and s.mscale_all_dim:
        attention = yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim)
    else:
        attention = yarn_mscale(s.factor)
    low, high = yarn_correction_range(head_dim, base, s)
    if low == high:
        high += 0.001  # as in the reference code: avoid a zero-width ramp
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    theta = base_inv_freq(head_dim, base)
    return _out(theta / s.factor * ramp + theta * (1 - ramp), attention)


def _yarn_check(s: RopeScaling, rotary_dim: int | None) -> None:
    fast, slow = YARN.param(s, "beta_fast"), YARN.param(s, "beta_slow")
    if fast <= slow:
        raise ValueError(f"--beta-fast must be greater than --beta-slow, got {fast} <= {slow}")


def _yarn_llama_cpp(s: RopeScaling, base: float, rotary_dim: int) -> tuple[list[str], list[str]]:
    args = ["--rope-scaling", "yarn", "--rope-scale", flag_number(s.factor)]
    args += ["--yarn-orig-ctx", str(s.original_max_position_embeddings)]
    if s.beta_fast is not None:
        args += ["--yarn-beta-fast", flag_number(s.beta_fast)]
    if s.beta_slow is not None:
        args += ["--yarn-beta-slow", flag_number(s.beta_slow)]
    notes = ["llama.cpp applies YaRN's 0.1 ln(s) + 1 attention factor itself; do not pass it again"]
    if s.attention_factor is not None:
        notes.append(
            "a custom attention_factor is written by the converter; --yarn-attn-factor differs by version"
        )
    return args, notes


def _yarn_gguf_refusal(s: RopeScaling) -> str | None:
    if s.attention_factor is not None or s.mscale or s.mscale_all_dim:
        return (
            "llama.cpp computes YaRN's attention factor itself (0.1 ln s + 1) and versions differ in how "
            "they combine a custom one; drop --attention-factor/--mscale/--mscale-all-dim"
        )
    if not s.truncate:
        return "llama.cpp always rounds YaRN's correction range (--truncate); drop --no-truncate"
    return None


YARN = Method(
    "yarn",
    yarn,
    parameters={
        "attention_factor": None,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "mscale": None,
        "mscale_all_dim": None,
        "truncate": True,
    },
    check=_yarn_check,
    llama_cpp=_yarn_llama_cpp,
    gguf_refusal=_yarn_gguf_refusal,
)


# ----------------------------------------------------------------------------- llama3
def llama3(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Llama 3.1 (Meta 2024): on r_i = L / wavelength_i, keep theta_i where r > high_freq_factor, divide by
    s where r < low_freq_factor, blend linearly in between."""
    orig = s.require_original()
    low, high = LLAMA3.param(s, "low_freq_factor"), LLAMA3.param(s, "high_freq_factor")
    theta = base_inv_freq(head_dim, base)
    wavelen = 2 * math.pi / theta
    smooth = ((orig / wavelen - low) / (high - low)).clamp(0, 1)
    return _out(theta / s.factor * (1 - smooth) + theta * smooth)


def _llama3_check(s: RopeScaling, rotary_dim: int | None) -> None:
    low, high = LLAMA3.param(s, "low_freq_factor"), LLAMA3.param(s, "high_freq_factor")
    if low >= high:
        raise ValueError(f"--high-freq-factor must be greater than --low-freq-factor, got {high} <= {low}")


LLAMA3 = Method(
    "llama3",
    llama3,
    parameters={"low_freq_factor": 1.0, "high_freq_factor": 4.0},
    required=("low_freq_factor", "high_freq_factor"),  # transformers requires both keys
    check=_llama3_check,
    llama_cpp=lambda s, base, dim: (
        [],
        [
            "no runtime flag: the converter bakes llama3 scaling into a rope_freqs tensor; it reads "
            "original_max_position_embeddings at the top level of config.json (ropescale writes it there)"
        ],
    ),
)


# ----------------------------------------------------------------------------- LongRoPE
def longrope(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """LongRoPE (Ding et al. 2024): per-dimension factors, theta'_i = theta_i / lambda_i with lambda the long
    factors when seq_len > L and the short ones otherwise; cos/sin times sqrt(1 + ln s / ln L)."""
    orig = s.require_original()
    _longrope_check(s, head_dim, model=False)
    factors = s.long_factor if seq_len is not None and seq_len > orig else s.short_factor
    if s.attention_factor is not None:
        attention = s.attention_factor
    elif s.factor <= 1:
        attention = 1.0
    else:
        attention = math.sqrt(1 + math.log(s.factor) / math.log(orig))
    lam = torch.tensor(factors, dtype=torch.float64)
    return _out(base_inv_freq(head_dim, base) / lam, attention)


def _longrope_check(s: RopeScaling, rotary_dim: int | None, model: bool = True) -> None:
    """Both factor lists, of one length, head_dim/2 values once the rotary dimension is known (`model`:
    the model's, else the formula's head_dim)."""
    if s.short_factor is None or s.long_factor is None:
        raise ValueError(
            "--method longrope needs both --short-factor and --long-factor (head_dim/2 values each)"
        )
    if len(s.short_factor) != len(s.long_factor):
        raise ValueError(
            f"--short-factor and --long-factor must have the same length (head_dim/2), got "
            f"{len(s.short_factor)} and {len(s.long_factor)}"
        )
    if rotary_dim is not None and len(s.long_factor) != rotary_dim // 2:
        where = " for this model" if model else ""
        raise ValueError(
            f"--long-factor/--short-factor need head_dim/2 = {rotary_dim // 2} values{where}, "
            f"got {len(s.long_factor)}"
        )


LONGROPE = Method(
    "longrope",
    longrope,
    parameters={"attention_factor": None, "short_factor": None, "long_factor": None},
    check=_longrope_check,
    llama_cpp=lambda s, base, dim: (
        [],
        ["llama.cpp supports LongRoPE factors only for the Phi-3 architecture"],
    ),
    gguf_model_refusal=lambda model_type: (
        None
        if model_type == "phi3"
        else f"llama.cpp supports LongRoPE only for Phi-3 models, this is {model_type!r}; use yarn or llama3"
    ),
)


# ----------------------------------------------------------------------------- the registry
METHODS: dict[str, Method] = {m.name: m for m in (NONE, LINEAR, NTK, ABF, DYNAMIC, YARN, LLAMA3, LONGROPE)}


def method(name: str) -> Method:
    """The record of method `name`. An unknown name raises ValueError listing the valid ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown rope method {name!r}; valid: {', '.join(sorted(METHODS))}") from None


def reading(rope_type: str) -> Method | None:
    """The method a transformers rope_type reads back as (`default` is plain RoPE; None: no such method)."""
    return next(
        (m for m in METHODS.values() if m.transformers_type == rope_type and m.new_base is None), None
    )


def compute_freqs(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Dispatch on s.rope_type. An unknown name raises ValueError listing the valid ones."""
    return method(s.rope_type).freqs(head_dim, base, s, seq_len)
