"""Shared fixtures: tiny models built in-process, so the default suite is offline and fast."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tiny_llama_config(max_position_embeddings: int = 64, head_dim: int = 16, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=96,
        hidden_size=head_dim * 4,
        intermediate_size=head_dim * 8,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        attn_implementation="sdpa",
        **kw,
    )


@pytest.fixture
def tiny_llama():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config()).eval()


def save_tiny_llama(model, path):
    """Save `model` with a word-level tokenizer (EOS <1>) as a user's local checkpoint directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"<{i}>": i for i in range(model.config.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<0>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<0>", eos_token="<1>", bos_token="<2>")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture
def tiny_llama_dir(tmp_path, tiny_llama):
    """A saved tiny LLaMA checkpoint with a byte-level tokenizer, as a user's local directory."""
    return save_tiny_llama(tiny_llama, tmp_path / "tiny")
