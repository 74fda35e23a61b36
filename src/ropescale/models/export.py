"""How to serve a scaled model the same way elsewhere: vLLM and llama.cpp flags for a `RopeScaling`.

A checkpoint written by `ropescale extend` already carries the scaling in config.json, which vLLM and
llama.cpp's converter (convert_hf_to_gguf.py) read. These flags are for applying the same scaling to the
*unscaled* checkpoint at serve time, and the notes say where a runtime cannot reproduce a method.
`ropescale extend --gguf` writes the scaled GGUF itself (models/gguf.py).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..config import RopeScaling
from .scale import transformers_rope


def vllm_flags(spec: RopeScaling, base: float, rotary_dim: int) -> dict[str, Any]:
    """vLLM: --max-model-len and an --hf-overrides rope_parameters block (vLLM >= 0.11 syntax)."""
    params, max_pos = transformers_rope(spec, base, rotary_dim)
    window = spec.new_window
    args = ["--max-model-len", str(window)]
    notes = []
    if spec.rope_type != "none" or max_pos != spec.original_max_position_embeddings:
        override: dict[str, Any] = {"rope_parameters": params}
        if max_pos != spec.original_max_position_embeddings:
            override["max_position_embeddings"] = max_pos
        args += ["--hf-overrides", json.dumps(override, sort_keys=True)]
    if spec.rope_type == "dynamic":
        notes.append(
            "vLLM's dynamic NTK uses one fixed base computed for the longest length, not a base per sequence "
            "length as transformers does; short prompts are scored differently."
        )
    if spec.rope_type == "none" and spec.factor > 1:
        notes.append("plain RoPE beyond the original window is direct extrapolation")
    return {"args": args, "command": "vllm serve MODEL " + shlex.join(args), "notes": notes}


def llama_cpp_flags(spec: RopeScaling, base: float, rotary_dim: int) -> dict[str, Any]:
    """llama.cpp (llama-cli / llama-server) runtime flags for the unscaled GGUF, plus what its HF->GGUF
    converter keeps from a scaled config.json."""
    window = spec.new_window
    args = ["-c", str(window)]
    notes: list[str] = []
    kind = spec.rope_type
    if kind == "linear":
        args += ["--rope-scaling", "linear", "--rope-scale", _num(spec.factor)]
        notes.append("converter: writes rope.scaling.type=linear and the factor")
    elif kind == "ntk":
        params, _ = transformers_rope(spec, base, rotary_dim)
        args += ["--rope-freq-base", _num(params["rope_theta"])]
        notes.append(
            "NTK-aware scaling is a base change; the converter writes the new rope_theta as freq_base"
        )
    elif kind == "yarn":
        args += ["--rope-scaling", "yarn", "--rope-scale", _num(spec.factor)]
        args += ["--yarn-orig-ctx", str(spec.original_max_position_embeddings)]
        if spec.beta_fast is not None:
            args += ["--yarn-beta-fast", _num(spec.beta_fast)]
        if spec.beta_slow is not None:
            args += ["--yarn-beta-slow", _num(spec.beta_slow)]
        notes.append("llama.cpp applies YaRN's 0.1 ln(s) + 1 attention factor itself; do not pass it again")
        if spec.attention_factor is not None:
            notes.append(
                "a custom attention_factor is written by the converter; --yarn-attn-factor differs by version"
            )
    elif kind == "llama3":
        notes.append(
            "no runtime flag: the converter bakes llama3 scaling into a rope_freqs tensor; it reads "
            "original_max_position_embeddings at the top level of config.json (ropescale writes it there)"
        )
    elif kind == "dynamic":
        notes.append("llama.cpp has no dynamic NTK; the converter drops it (the model runs unscaled)")
    elif kind == "longrope":
        notes.append("llama.cpp supports LongRoPE factors only for the Phi-3 architecture")
    elif kind == "none" and spec.factor > 1:
        notes.append("plain RoPE beyond the original window is direct extrapolation")
    return {"args": args, "command": "llama-server -m MODEL.gguf " + shlex.join(args), "notes": notes}


def serving_flags(spec: RopeScaling, base: float, rotary_dim: int) -> dict[str, Any]:
    return {"vllm": vllm_flags(spec, base, rotary_dim), "llama_cpp": llama_cpp_flags(spec, base, rotary_dim)}


def _num(x: float) -> str:
    """Shortest exact spelling: 2 for 2.0, full precision otherwise (a rounded base changes the model)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))
