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
from ..rope import METHODS
from .scale import transformers_rope


def vllm_flags(
    spec: RopeScaling, base: float, rotary_dim: int, rope_parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """vLLM: --max-model-len and an --hf-overrides rope_parameters block (vLLM >= 0.11 syntax).
    `rope_parameters`: the scaled config's whole rope settings (every key it needs, partial rotary and
    the keys ropescale keeps included); default: the method's own keys only."""
    params, max_pos = transformers_rope(spec, base, rotary_dim)
    params = params if rope_parameters is None else rope_parameters
    args = ["--max-model-len", str(spec.new_window)]
    if spec.rope_type != "none" or max_pos != spec.original_max_position_embeddings:
        override: dict[str, Any] = {"rope_parameters": params}
        if max_pos != spec.original_max_position_embeddings:
            override["max_position_embeddings"] = max_pos
        args += ["--hf-overrides", json.dumps(override, sort_keys=True)]
    notes = METHODS[spec.rope_type].vllm_notes(spec)
    return {"args": args, "command": "vllm serve MODEL " + shlex.join(args), "notes": notes}


def llama_cpp_flags(spec: RopeScaling, base: float, rotary_dim: int) -> dict[str, Any]:
    """llama.cpp (llama-cli / llama-server) runtime flags for the unscaled GGUF, plus what its HF->GGUF
    converter keeps from a scaled config.json."""
    flags, notes = METHODS[spec.rope_type].llama_cpp(spec, base, rotary_dim)
    args = ["-c", str(spec.new_window), *flags]
    return {"args": args, "command": "llama-server -m MODEL.gguf " + shlex.join(args), "notes": notes}


def serving_flags(
    spec: RopeScaling, base: float, rotary_dim: int, rope_parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "vllm": vllm_flags(spec, base, rotary_dim, rope_parameters),
        "llama_cpp": llama_cpp_flags(spec, base, rotary_dim),
    }
