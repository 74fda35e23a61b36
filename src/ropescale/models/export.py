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
from .scale import ScalingPlan, transformers_rope


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


def llama_cpp_flags(
    spec: RopeScaling, base: float, rotary_dim: int, plan: ScalingPlan | None = None
) -> dict[str, Any]:
    """llama.cpp (llama-cli / llama-server) runtime flags for the unscaled GGUF, plus what its HF->GGUF
    converter keeps from a scaled config.json. `plan`: the scaled model's plan; with it, the notes also say
    what of the scaled config no runtime flag carries (`llama_cpp_gaps`)."""
    flags, notes = METHODS[spec.rope_type].llama_cpp(spec, base, rotary_dim)
    args = ["-c", str(spec.new_window), *flags]
    notes = [*notes, *([] if plan is None else llama_cpp_gaps(plan, bool(flags)))]
    return {"args": args, "command": "llama-server -m MODEL.gguf " + shlex.join(args), "notes": notes}


# rope keys a scaled config may carry that llama.cpp reads from the GGUF only (no runtime flag sets them)
GGUF_ONLY_KEYS = {
    "mscale_all_dim": "the softmax scale DeepSeek's MLA derives from mscale_all_dim (GGUF "
    "rope.scaling.yarn_log_multiplier)",
    "llama_4_scaling_beta": "the position-dependent query temperature (llama_4_scaling_beta)",
}


def llama_cpp_gaps(plan: ScalingPlan, has_flags: bool) -> list[str]:
    """What of a scaled config llama.cpp's runtime flags do not carry: llama.cpp applies --rope-scale and
    --rope-freq-base to the layers that are not sliding-window ones only, and takes some rope keys from
    the GGUF alone. Each gap says to convert the extended checkpoint instead (`extend --gguf`)."""
    layers = plan.layer_types
    per = plan.rope_parameters
    scaled = [per[lt] for lt in layers] if layers else [per]
    notes = []
    sliding = [lt for lt in layers if "sliding" in lt]
    if has_flags and layers and not sliding:
        notes.append(
            f"llama.cpp applies these flags to the layers without a sliding window, the {', '.join(layers)} "
            "layers ropescale scales; the sliding-window layers keep the GGUF's own rope, as here"
        )
    if sliding:
        notes.append(
            f"llama.cpp's rope flags leave sliding-window layers alone: the scaling of the {', '.join(sliding)} "
            "layers reaches llama.cpp only through the converted extended checkpoint (ropescale extend --gguf)"
        )
    for key, what in GGUF_ONLY_KEYS.items():
        if any(p.get(key) for p in scaled):
            notes.append(
                f"{what} is read from the GGUF, not from a flag: convert the extended checkpoint for it ({key})"
            )
    return notes


def serving_flags(
    spec: RopeScaling, base: float, rotary_dim: int, plan: ScalingPlan | None = None
) -> dict[str, Any]:
    """vLLM and llama.cpp flags for `spec`; `plan` (the scaled model's) makes them whole for its config."""
    params = None if plan is None else plan.rope_parameters
    return {
        "vllm": vllm_flags(spec, base, rotary_dim, params),
        "llama_cpp": llama_cpp_flags(spec, base, rotary_dim, plan),
    }
