"""A tiny random LLaMA that llama.cpp's converter accepts, for the GGUF tests (test_gguf, test_llamacpp)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast


def save_tiny_llama(path: Path, head_dim: int, window: int, base: float, **config: object) -> Path:
    """Save the model and its tokenizer: a Llama-2-style BPE with byte fallback (259 specials and bytes, '▁'
    and a-z; no merges), so the converter takes it as a 'llama' (SentencePiece) vocab. `config` overrides
    LlamaConfig fields (e.g. initializer_range for sharper attention)."""
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256)), "▁"]
    tokens += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    bpe = models.BPE({t: i for i, t in enumerate(tokens)}, [], unk_token="<unk>", byte_fallback=True)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    settings = dict(
        vocab_size=len(tokens),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=head_dim,
        max_position_embeddings=window,
        rope_parameters={"rope_type": "default", "rope_theta": base},
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**{**settings, **config})).save_pretrained(path)
    fast.save_pretrained(path)
    return path
