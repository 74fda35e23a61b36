"""The built-in `tiny` model: a small preset of transformers' LlamaForCausalLM and its own BPE tokenizer.

Why these choices (the demo, issue 6, trains it at a window L = 256 on 2 CPU cores in a few minutes, then
extends it 8x and asks it for a passkey):

- Tokenizer: byte-level BPE trained with the `tokenizers` library on the pre-training corpus, vocabulary
  2048 by default. Byte level means no unknown tokens on any text (Python sources, plays). A small vocabulary
  keeps the embedding and the output layer (the most expensive matmul per token at this size) cheap, while
  BPE still packs ~3-4 characters into a token, so the paper's passkey prompt (~250 characters of task,
  key line and question) costs ~70 tokens and leaves most of a 256-token window for filler: the key can
  sit anywhere within the window, as the evaluation needs. Raw bytes would need ~250 tokens for the
  overhead alone. Digits are split one per token, so every 5-digit passkey is exactly five tokens and
  copying it is the same task whatever the key (multi-digit BPE merges would make some keys single tokens
  and others odd splits).
- Model: 4 layers, hidden 256, 4 heads of head_dim 64 (2 key/value heads), SwiGLU 688, tied embeddings:
  3.4M parameters with the 2048 vocabulary, ~3000 tokens/s training in fp32 on one CPU thread at L = 256
  (measured with other jobs on the machine; 6 layers: 4.9M parameters, ~2100 tokens/s). head_dim 64 with
  base 10000 gives 32 rotary frequencies, the slowest with wavelengths far beyond L, so positions past L
  are truly unseen (plain extrapolation fails, as in the paper).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..config.train import check_head_dim

EOS = "<|endoftext|>"


def tiny_config(
    vocab_size: int,
    window: int = 256,
    hidden_size: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 688,
    rope_theta: float = 10000.0,
    eos_token_id: int = 0,
    head_dim: int = 0,
) -> Any:
    """The `tiny` LlamaConfig (window = max_position_embeddings = L). `head_dim` 0 means hidden / heads;
    a larger one gives each head more rotary frequencies at the same width (LLaMA's heads have 128)."""
    from transformers import LlamaConfig

    if (not head_dim and hidden_size % num_heads) or num_heads % num_kv_heads:
        raise ValueError(
            f"--hidden-size ({hidden_size}) must be divisible by --num-heads ({num_heads}) unless --head-dim "
            f"is given, and --num-heads by --num-kv-heads ({num_kv_heads})"
        )
    check_head_dim(head_dim)
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim or hidden_size // num_heads,
        max_position_embeddings=window,
        rope_parameters={"rope_type": "default", "rope_theta": float(rope_theta)},
        tie_word_embeddings=True,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
        attn_implementation="sdpa",
    )


def build_tiny(config: Any, seed: int = 0) -> Any:
    """A freshly initialised LlamaForCausalLM (fp32, train mode) from `tiny_config`."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def _batches(texts: Iterable[str], max_chars: int) -> Iterator[list[str]]:
    """Texts in lists of ~1 MB, stopping after `max_chars` characters in all (tokenizer training time grows
    with the text; a few MB already give stable merges for a 2k vocabulary)."""
    seen, batch, size = 0, [], 0
    for text in texts:
        text = text[: max(0, max_chars - seen)]
        if not text:
            break
        batch.append(text)
        size += len(text)
        seen += len(text)
        if size >= 1_000_000:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, max_chars: int = 4_000_000) -> Any:
    """Byte-level BPE (digits split one per token) trained on `texts`; returns a PreTrainedTokenizerFast
    whose only special token is EOS (id 0), also used as BOS and padding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ValueError(f"--vocab-size must be >= 300 (256 bytes + merges), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_batches(texts, max_chars), trainer=trainer)
    if tok.get_vocab_size() < 260:
        raise ValueError("the corpus is too small to train a tokenizer (fewer than 4 merges learned)")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS, model_max_length=int(1e9)
    )


def save_tiny(model: Any, tokenizer: Any, path: Path) -> None:
    """A normal transformers directory (safetensors + tokenizer.json)."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
