"""Knobs of `ropescale pretrain` and `ropescale train`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .base import LoadOptions, RopeScaling, at_least, knob

TASKS = ("lm", "summarize")
SCHEDULES = ("constant", "cosine")
PASSKEY_LOSSES = ("document", "answer")
POSITION_SCHEMES = ("contiguous", "pose")  # ropescale.data.positions
FLOAT32_MAX = 3.4028234663852886e38  # the optimizer applies --lr to float32 tensors


def check_head_dim(head_dim: int) -> None:
    """A head size for `ropescale pretrain` (0 = hidden / heads): RoPE rotates pairs of dimensions."""
    if head_dim % 2:
        raise ValueError(f"--head-dim must be even (RoPE rotates pairs of dimensions), got {head_dim}")


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """Knobs shared by `ropescale pretrain` and `ropescale train` (defaults: the paper's fine-tuning recipe)."""

    out: Path = knob(
        help="output directory: final checkpoint, metrics.jsonl, train_config.json, checkpoints/"
    )
    data: str = knob(
        "shakespeare",
        "training text: .txt/.jsonl/.parquet file or directory, hf:ORG/NAME[:CONFIG], shakespeare, pystdlib "
        "(comma-separated to mix)",
    )
    text_field: str = knob("text", "jsonl/parquet/datasets field holding the text")
    split: str = knob("train", "datasets split to read (hf: data only)")
    seq_len: int | None = knob(None, "training sequence length (default: the model's window after scaling)")
    val_fraction: float = knob(0.02, "fraction of documents held out for validation (whole documents)")
    max_tokens: int | None = knob(None, "read the corpus only until this many training tokens")
    passkey_fraction: float = knob(
        0.0, "fraction of training sequences that are passkey-format documents (random key and position)"
    )
    passkey_loss: str = knob(
        "document",
        choices=PASSKEY_LOSSES,
        help="passkey documents' loss: document (every token) or answer (only the key's digits; passkey "
        "documents then come as whole batches so the answer is not diluted by the other tokens)",
    )
    passkey_min_fill: float = knob(
        0.5, "passkey filler fills between this fraction and all of the window (0 = keys at every distance)"
    )
    passkey_span: int | None = knob(
        None,
        "passkey documents fit in this many tokens (default: the sequence length); with --passkey-loss "
        "answer a passkey batch then holds seq-len/span times the documents, else they are padded",
    )
    passkey_span_mix: bool = knob(
        False,
        "with --passkey-loss answer: each passkey batch takes its span at random from --passkey-span, twice "
        "it, ... up to the sequence length (short spans teach many keys per step, long ones long distances)",
    )
    steps: int = knob(1000, "optimizer steps")
    batch_size: int = knob(64, "global batch in sequences (micro-batches x accumulation x processes)")
    micro_batch_size: int = knob(1, "sequences per forward/backward in each process")
    lr: float = knob(2e-5, "peak learning rate")
    warmup_steps: int = knob(20, "linear warmup steps")
    warmup_start: float = knob(0.1, "warmup starts at this fraction of --lr")
    schedule: str = knob("constant", "rate after warmup", choices=SCHEDULES)
    min_lr_ratio: float = knob(0.1, "cosine: final rate as a fraction of --lr")
    weight_decay: float = knob(0.0, "AdamW weight decay (matrices only)")
    beta1: float = knob(0.9, "AdamW beta1")
    beta2: float = knob(0.95, "AdamW beta2")
    max_grad_norm: float = knob(0.0, "clip the global gradient norm to this (0 = off; the paper states none)")
    activation_checkpointing: bool = knob(True, "recompute decoder layers in backward (less memory)")
    checkpoint_every_n_layers: int = knob(1, "with activation checkpointing: recompute only every n-th layer")
    loss_chunk: int = knob(
        0, "positions per chunk of output layer + cross-entropy (0 = auto: ~64 MB of logits per chunk)"
    )
    save_every: int = knob(100, "write a resumable checkpoint every N steps (0 = never)")
    keep_checkpoints: int = knob(2, "how many of the newest checkpoints to keep")
    eval_every: int = knob(0, "validation loss every N steps (0 = only at the end)")
    eval_sequences: int = knob(
        16, "validation sequences per evaluation (the first of the held-out documents)"
    )
    resume: bool = knob(False, "continue from the newest checkpoint in --out (same rope, data and batch)")
    overwrite: bool = knob(False, "replace --out if it exists and is not empty")
    seed: int = knob(0, "seed for initialisation, data order and passkey documents")
    deterministic: bool = knob(
        False,
        "deterministic GPU kernels (torch.use_deterministic_algorithms + cuBLAS workspace): a resumed GPU "
        "run is then bit-identical to an uninterrupted one, at some speed (CPU runs always are; docs/gpu.md)",
    )
    cache_dir: Path | None = knob(None, "cache for packed token files (default: OUT/.cache)")
    load: LoadOptions = knob(LoadOptions(), "loading")

    def __post_init__(self) -> None:
        at_least(
            self,
            1,
            "steps",
            "batch_size",
            "micro_batch_size",
            "eval_sequences",
            "checkpoint_every_n_layers",
            "keep_checkpoints",
            "max_tokens",
        )
        at_least(self, 2, "seq_len", "passkey_span")
        at_least(self, 0, "loss_chunk")
        at_least(self, 0, "warmup_steps", "save_every", "eval_every", "seed")
        at_least(self, 0, "weight_decay", "max_grad_norm", integer=False)
        if self.passkey_loss not in PASSKEY_LOSSES:
            raise ValueError(
                f"--passkey-loss must be one of {', '.join(PASSKEY_LOSSES)}, got {self.passkey_loss!r}"
            )
        for name in ("val_fraction", "passkey_fraction", "passkey_min_fill", "warmup_start", "min_lr_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        if self.val_fraction >= 1.0:
            raise ValueError("--val-fraction must be < 1 (some documents must be left to train on)")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.lr > FLOAT32_MAX:
            raise ValueError(f"--lr must be a positive number (float32: <= {FLOAT32_MAX:.4g}), got {self.lr}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"--{name} must be in [0, 1), got {getattr(self, name)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"--batch-size ({self.batch_size}) must be a multiple of --micro-batch-size ({self.micro_batch_size})"
            )
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite contradict each other; pass one")


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(TrainOptions):
    """ropescale pretrain: train the built-in `tiny` LLaMA and its BPE tokenizer from scratch at window L."""

    seq_len: int | None = knob(256, "the window L (max_position_embeddings) to pre-train at")
    passkey_fraction: float = knob(
        0.0, "fraction of training sequences that are passkey-format documents (random key and position)"
    )
    steps: int = knob(300, "optimizer steps")
    batch_size: int = knob(16, "global batch in sequences (micro-batches x accumulation x processes)")
    micro_batch_size: int = knob(16, "sequences per forward/backward in each process")
    lr: float = knob(2e-3, "peak learning rate")
    warmup_steps: int = knob(30, "linear warmup steps")
    warmup_start: float = knob(0.0, "warmup starts at this fraction of --lr")
    schedule: str = knob("cosine", "rate after warmup", choices=SCHEDULES)
    weight_decay: float = knob(0.1, "AdamW weight decay (matrices only)")
    max_grad_norm: float = knob(1.0, "clip the global gradient norm to this (0 = off)")
    activation_checkpointing: bool = knob(False, "recompute decoder layers in backward (less memory)")
    vocab_size: int = knob(2048, "BPE vocabulary size (byte-level, digits split)")
    tokenizer_chars: int = knob(4_000_000, "characters of the corpus used to train the tokenizer")
    hidden_size: int = knob(256, "model width")
    num_layers: int = knob(4, "decoder layers")
    num_heads: int = knob(4, "attention heads")
    head_dim: int = knob(0, "attention head size (0 = hidden / heads)")
    num_kv_heads: int = knob(2, "key/value heads (grouped-query attention)")
    intermediate_size: int = knob(688, "SwiGLU hidden size")
    rope_theta: float = knob(10000.0, "RoPE base")

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size")
        at_least(self, 0, "head_dim")
        check_head_dim(self.head_dim)
        at_least(self, 1000, "tokenizer_chars")
        if self.seq_len is None:
            raise ValueError("--seq-len (the window L) is required for pretrain")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(TrainOptions):
    """ropescale train: fine-tune a model on long sequences with scaled (or plain) RoPE positions."""

    model: str = knob(help="model: local directory, .gguf file, hub id, or smollm2-135m", positional=True)
    rope: RopeScaling | None = knob(
        None, "scaling applied before training (--method none --factor S = direct fine-tuning at S x L)"
    )
    task: str = knob("lm", "training objective (summarize: prompt masked out of the loss)", choices=TASKS)
    report_field: str = knob("report", "summarize: record field holding the document")
    summary_field: str = knob("summary", "summarize: record field holding the reference summary")
    max_summary_tokens: int = knob(1000, "summarize: summaries are cut to this many tokens")
    lora: bool = knob(
        False, "train LoRA adapters (+ embeddings and norms) instead of all weights; merged on save"
    )
    lora_rank: int = knob(8, "LoRA rank r")
    lora_alpha: float = knob(16.0, "LoRA alpha (scale alpha / r)")
    lora_targets: tuple[str, ...] = knob(
        ("q_proj", "k_proj", "v_proj", "o_proj"), "LoRA target module names (comma-separated)"
    )
    positions: str = knob(
        "contiguous",
        choices=POSITION_SCHEMES,
        help="position ids of training sequences (pose: chunks with random "
        "skips so short sequences span the whole target window; Zhu et al. 2023)",
    )
    pose_chunks: int = knob(2, "pose: chunks per sequence (the paper: 2)")
    target_window: int | None = knob(
        None, "pose: the window the position ids span (default: the model's window after scaling)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.positions not in POSITION_SCHEMES:
            raise ValueError(
                f"--positions must be one of {', '.join(POSITION_SCHEMES)}, got {self.positions!r}"
            )
        at_least(self, 1, "pose_chunks")
        at_least(self, 2, "target_window")
        if self.positions == "contiguous" and self.target_window is not None:
            raise ValueError("--target-window goes with --positions pose (contiguous ids are 0..seq-len-1)")
        if self.positions == "pose" and self.seq_len is not None and self.pose_chunks > self.seq_len:
            raise ValueError(
                f"--pose-chunks ({self.pose_chunks}) must be <= --seq-len ({self.seq_len}): "
                "every chunk holds at least one token"
            )
        if self.positions == "pose" and self.rope is not None and self.rope.rope_type == "dynamic":
            raise ValueError(
                "--positions pose does not go with --method dynamic: dynamic NTK rescales by the largest "
                "position id of each batch, so random skips would train every batch at another scaling; "
                "use --method ntk (a fixed base) or yarn"
            )
        if self.task not in TASKS:
            raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        at_least(self, 1, "max_summary_tokens", "lora_rank")
        if self.task == "summarize" and self.passkey_fraction > 0:
            raise ValueError("--passkey-fraction mixes language-modelling documents; use it with --task lm")
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
