"""The family matrix: a tiny random checkpoint of each RoPE family the installed transformers builds, and
the methods to try on it. Shared by tests/models/test_families.py and tools/gen_models_doc.py."""

from __future__ import annotations

import dataclasses
from typing import Any

from ropescale import RopeScaling

SMALL = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=256,
    max_position_embeddings=128,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
MLA = dict(kv_lora_rank=16, q_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16)
MOE = dict(moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2, n_group=1, topk_group=1)


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    model_type: str
    layout: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    fast: bool = False  # in the default (not slow) subset


FAMILIES = [
    Family("Llama", "llama", "one rope dict", fast=True),
    Family("Mistral", "mistral", "one rope dict"),
    Family("Qwen2", "qwen2", "one rope dict"),
    Family("Qwen3", "qwen3", "one rope dict, head_dim 32", {"head_dim": 32}),
    Family("Gemma", "gemma", "head_dim != hidden/heads", {"head_dim": 32}),
    Family(
        "GPT-NeoX", "gpt_neox", "partial rotary 0.25, fused qkv", {"partial_rotary_factor": 0.25}, fast=True
    ),
    Family("StableLM", "stablelm", "partial rotary 0.25", {"partial_rotary_factor": 0.25}),
    Family("Phi-2", "phi", "partial rotary 0.5", {"partial_rotary_factor": 0.5}),
    Family("OLMo 2", "olmo2", "one rope dict"),
    Family("SmolLM3", "smollm3", "one rope dict (NoPE layers)"),
    Family(
        "GPT-OSS",
        "gpt_oss",
        "yarn x2 already, MoE",
        {
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "head_dim": 16,
            "rope_parameters": {
                "rope_type": "yarn",
                "factor": 2.0,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "truncate": False,
                "original_max_position_embeddings": 64,
                "rope_theta": 150000.0,
            },
        },
    ),
    Family(
        "Qwen3-Next",
        "qwen3_next",
        "partial rotary, hybrid linear attention",
        {
            "layer_types": ["linear_attention", "full_attention"],
            "head_dim": 16,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 32,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 8,
        },
    ),
    Family(
        "Phi-3", "phi3", "admits only default/longrope", {"original_max_position_embeddings": 128}, fast=True
    ),
    Family("DeepSeek-V2", "deepseek_v2", "MLA", {**MLA, **MOE, "first_k_dense_replace": 1}),
    Family("DeepSeek-V3", "deepseek_v3", "MLA, softmax scale from yarn mscale", {**MLA, **MOE}, fast=True),
    Family(
        "Gemma 3",
        "gemma3_text",
        "rope per layer type (sliding/full)",
        {"head_dim": 16, "sliding_window": 32, "layer_types": ["sliding_attention", "full_attention"]},
        fast=True,
    ),
    Family(
        "Gemma 4",
        "gemma4_text",
        "rope per layer type, full layers proportional",
        {
            "head_dim": 16,
            "global_head_dim": 32,
            "sliding_window": 32,
            "layer_types": ["sliding_attention", "full_attention"],
            "vocab_size_per_layer_input": 256,
            "hidden_size_per_layer_input": 8,
        },
    ),
    Family(
        "Olmo 3",
        "olmo3",
        "rope per layer type (sliding/full)",
        {"sliding_window": 32, "layer_types": ["sliding_attention", "full_attention"]},
    ),
    Family(
        "Ministral 3",
        "ministral3",
        "yarn x2 already + llama_4_scaling_beta",
        {
            "rope_parameters": {
                "type": "yarn",
                "rope_theta": 1000000.0,
                "factor": 2.0,
                "original_max_position_embeddings": 64,
                "max_position_embeddings": 128,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "mscale_all_dim": 1.0,
                "mscale": 1.0,
                "llama_4_scaling_beta": 0.1,
            }
        },
        fast=True,
    ),
    Family("Cohere", "cohere", "interleaved rotation"),
    Family("GLM-4", "glm4", "partial rotary, interleaved"),
    Family("Llama 4", "llama4_text", "one rope dict, NoPE layers", {"intermediate_size_mlp": 128}),
    Family("MiniCPM3", "minicpm3", "MLA", {**MLA, "head_dim": None}),
    Family(
        "Exaone 4",
        "exaone4",
        "sliding + full, one rope dict",
        {"sliding_window": 32, "layer_types": ["sliding_attention", "full_attention"]},
    ),
    Family("GPT-J", "gptj", "rotary_dim, no rope parameters", {"rotary_dim": 8}),
    Family("CodeGen", "codegen", "rotary_dim, no rope parameters", {"rotary_dim": 8}),
]
BY_NAME = {f.name: f for f in FAMILIES}

METHODS = {
    "linear": RopeScaling("linear", 2.0),
    "ntk": RopeScaling("ntk", 2.0),
    "abf": RopeScaling("abf", 2.0, rope_theta=1e6),
    "dynamic": RopeScaling("dynamic", 2.0),
    "yarn": RopeScaling("yarn", 2.0),
    "llama3": RopeScaling("llama3", 2.0),
}


def tiny_config(family: Family) -> Any:
    """The family's config at toy size, built by stock transformers."""
    from transformers import AutoConfig

    kwargs = {**SMALL, **family.overrides}
    if family.model_type in ("gptj", "codegen"):
        kwargs = dict(n_embd=64, n_layer=2, n_head=4, n_positions=128, vocab_size=256, rotary_dim=8)
    return AutoConfig.for_model(family.model_type, **kwargs)


def matrix_rows() -> list[dict[str, Any]]:
    """Per family, from its config alone: the rope layout ropescale reads, the methods it plans and the
    refusal line of the others (the logits behind "works" are checked by test_families.py)."""
    from ropescale.models import plan_scaling

    rows = []
    for family in FAMILIES:
        works, refused, notes = [], {}, set()
        for name, spec in METHODS.items():
            try:
                plan = plan_scaling(tiny_config(family), spec)
            except ValueError as err:
                refused[name] = str(err)
                continue
            works.append(name)
            if plan.expressed_as:
                notes.add(f"written as {plan.expressed_as}")
            if plan.layer_types:
                notes.add(f"scales the {', '.join(plan.layer_types)} layers")
        rows.append({"family": family, "works": works, "refused": refused, "notes": sorted(notes)})
    return rows


HEADER = """# Supported models

Generated by `python tools/gen_models_doc.py` from the family matrix (tests/models/families.py); a test
keeps it in sync. Every family is a tiny random checkpoint that stock transformers builds
(`AutoModelForCausalLM.from_config`); for each method listed as working, tests/models/test_families.py
checks that `ropescale extend` writes a checkpoint that stock transformers, in a fresh process, loads to
the same logits as ropescale's in-memory scaling (relative difference < 1e-5 on 250 tokens, beyond the
original window), and that the rotary table equals what transformers computes from the intended rope
parameters typed by hand. The serving hints printed with it are checked too: the vLLM `--hf-overrides`
applied to the original config gives the saved rope settings, and the llama.cpp flags, through a model of
ggml's rope, give the live frequencies (or a note says what llama.cpp cannot take from a flag). Methods
tried: {methods} (factor 2; `abf` to base 1e6). `longrope` takes per-dimension factors that the user
supplies and is not part of the matrix.

Models that nest their rope by layer type (Gemma 3/4, Olmo 3) have the full-attention layers scaled by
default; sliding-window layers only see distances below their window (`--layer-types` picks others).
Rope keys ropescale does not model (`partial_rotary_factor`, `llama_4_scaling_beta`, `mrope_section`,
...) are kept as they are. A model that already carries a scaling is scaled relative to its unscaled
window (see docs/extend.md).

| family | model_type | rope layout | methods that work | notes | refused |
|---|---|---|---|---|---|
"""


def render_models_doc() -> str:
    lines = [HEADER.format(methods=", ".join(f"`{m}`" for m in METHODS)).rstrip("\n")]
    for row in matrix_rows():
        f = row["family"]
        by_reason: dict[str, list[str]] = {}
        for m, reason in row["refused"].items():
            by_reason.setdefault(reason.removeprefix(f"--method {m}: "), []).append(f"`{m}`")
        refused = "; ".join(f"{', '.join(ms)}: {reason}" for reason, ms in by_reason.items())
        works = ", ".join(f"`{m}`" for m in row["works"]) or "none"
        cells = [f.name, f"`{f.model_type}`", f.layout, works, "; ".join(row["notes"]), refused]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def save_family(model: Any, path: Any) -> Any:
    """Save `model` with a word-level tokenizer whose words w0 .. w{V-1} are its token ids (w0 unknown, w1
    end of text), as a user's checkpoint directory. (transformers picks some families' own tokenizer class
    by model_type, Qwen2's among them, which does not read this one: text then has no tokens.)"""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(model.config.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="w0", eos_token="w1", bos_token="w2")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path
