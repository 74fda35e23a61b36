"""Knobs of `ropescale pretrain` and `ropescale train`, in groups.

Every group is a small frozen dataclass that checks its own values; the command's config holds the run's
own knobs (steps, batch, seed, --out) and checks what spans groups. Flags are those of the fields (a
field's ``flag`` where it differs from its name: `PasskeyMix.fraction` is ``--passkey-fraction``), so the
command line is flat while the code reads ``cfg.optim.lr``. The defaults are the paper's fine-tuning recipe
(arXiv 2306.15595 section 3.1); `ropescale pretrain` starts from the shipped recipe file
recipes/pretrain.toml instead (see ``Command.recipe`` in cli.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..knobs import SEED_MAX, check_knobs, knob
from ..rope.spec import RopeScaling
from .base import LoadOptions

TASKS = ("lm", "summarize")
SCHEDULES = ("constant", "cosine")
PASSKEY_LOSSES = ("document", "answer")
POSITION_SCHEMES = ("contiguous", "pose")  # ropescale.data.positions
FLOAT32_MAX = 3.4028234663852886e38  # the optimizer applies --lr to float32 tensors


def check_head_dim(head_dim: int) -> None:
    """A head size for `ropescale pretrain` (0 = hidden / heads): RoPE rotates pairs of dimensions."""
    if head_dim % 2:
        raise ValueError(f"--head-dim must be even (RoPE rotates pairs of dimensions), got {head_dim}")


def _fraction(value: float, flag: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{flag} must be in [0, 1], got {value}")


@dataclass(frozen=True, kw_only=True)
class DataOptions:
    """The training text: where it is, which field, what is held out, where its tokens are cached."""

    source: str = knob(
        "shakespeare",
        "training text: .txt/.jsonl/.parquet file or directory, hf:ORG/NAME[:CONFIG], shakespeare, pystdlib "
        "(comma-separated to mix)",
        flag="--data",
    )
    text_field: str = knob("text", "jsonl/parquet/datasets field holding the text")
    split: str = knob("train", "datasets split to read (hf: data only)")
    val_fraction: float = knob(0.02, "fraction of documents held out for validation (whole documents)")
    max_tokens: int | None = knob(None, "read the corpus only until this many training tokens", at_least=1)
    cache_dir: Path | None = knob(None, "cache for packed token files (default: OUT/.cache)")

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        _fraction(self.val_fraction, "--val-fraction")
        if self.val_fraction >= 1.0:
            raise ValueError("--val-fraction must be < 1 (some documents must be left to train on)")


@dataclass(frozen=True, kw_only=True)
class PasskeyMix:
    """Passkey-format documents (random key and position) mixed into the training batches."""

    fraction: float = knob(
        0.0,
        "fraction of training sequences that are passkey-format documents (random key and position)",
        flag="--passkey-fraction",
    )
    loss: str = knob(
        "document",
        choices=PASSKEY_LOSSES,
        help="passkey documents' loss: document (every token) or answer (only the key's digits; passkey "
        "documents then come as whole batches so the answer is not diluted by the other tokens)",
        flag="--passkey-loss",
    )
    min_fill: float = knob(
        0.5,
        "passkey filler fills between this fraction and all of the window (0 = keys at every distance)",
        flag="--passkey-min-fill",
    )
    span: int | None = knob(
        None,
        "passkey documents fit in this many tokens (default: the sequence length); with --passkey-loss "
        "answer a passkey batch then holds seq-len/span times the documents, else they are padded",
        flag="--passkey-span",
        at_least=2,
    )
    span_mix: bool = knob(
        False,
        "with --passkey-loss answer: each passkey batch takes its span at random from --passkey-span, twice "
        "it, ... up to the sequence length (short spans teach many keys per step, long ones long distances)",
        flag="--passkey-span-mix",
    )

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        _fraction(self.fraction, "--passkey-fraction")
        _fraction(self.min_fill, "--passkey-min-fill")

    @property
    def whole_batches(self) -> bool:
        """Passkey documents come as whole batches (their loss is on the answer only)."""
        return self.loss == "answer"

    def spans(self, span: int, seq_len: int) -> list[int]:
        """The row lengths of passkey batches: `span` (the maker's, <= seq_len), then, with --passkey-span-mix,
        twice it and so on up to `seq_len`."""
        out = [span]
        while self.span_mix and out[-1] * 2 <= seq_len:
            out.append(out[-1] * 2)
        return out


@dataclass(frozen=True, kw_only=True)
class OptimOptions:
    """AdamW and its learning-rate schedule (a resumed run must keep all of these)."""

    lr: float = knob(2e-5, "peak learning rate")
    warmup_steps: int = knob(20, "linear warmup steps", at_least=0)
    warmup_start: float = knob(0.1, "warmup starts at this fraction of --lr")
    schedule: str = knob("constant", "rate after warmup", choices=SCHEDULES)
    min_lr_ratio: float = knob(0.1, "cosine: final rate as a fraction of --lr")
    weight_decay: float = knob(0.0, "AdamW weight decay (matrices only)", at_least=0, integer=False)
    beta1: float = knob(0.9, "AdamW beta1")
    beta2: float = knob(0.95, "AdamW beta2")
    max_grad_norm: float = knob(
        0.0,
        "clip the global gradient norm to this (0 = off; the paper states none)",
        at_least=0,
        integer=False,
    )

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        _fraction(self.warmup_start, "--warmup-start")
        _fraction(self.min_lr_ratio, "--min-lr-ratio")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.lr > FLOAT32_MAX:
            raise ValueError(f"--lr must be a positive number (float32: <= {FLOAT32_MAX:.4g}), got {self.lr}")
        for flag, beta in (("--beta1", self.beta1), ("--beta2", self.beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{flag} must be in [0, 1), got {beta}")


@dataclass(frozen=True, kw_only=True)
class MemoryOptions:
    """Trading compute for memory: activation checkpointing and the chunked output layer."""

    activation_checkpointing: bool = knob(True, "recompute decoder layers in backward (less memory)")
    checkpoint_every_n_layers: int = knob(
        1, "with activation checkpointing: recompute only every n-th layer", at_least=1
    )
    loss_chunk: int = knob(
        0,
        "positions per chunk of output layer + cross-entropy (0 = auto: ~64 MB of logits per chunk)",
        at_least=0,
    )

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)


@dataclass(frozen=True, kw_only=True)
class CheckpointOptions:
    """Resumable checkpoints and validation during the run."""

    save_every: int = knob(100, "write a resumable checkpoint every N steps (0 = never)", at_least=0)
    keep_checkpoints: int = knob(2, "how many of the newest checkpoints to keep", at_least=1)
    eval_every: int = knob(0, "validation loss every N steps (0 = only at the end)", at_least=0)
    eval_sequences: int = knob(
        16, "validation sequences per evaluation (the first of the held-out documents)", at_least=1
    )

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """Knobs shared by `ropescale pretrain` and `ropescale train` (defaults: the paper's fine-tuning recipe)."""

    out: Path = knob(
        help="output directory: final checkpoint, metrics.jsonl, train_config.json, checkpoints/"
    )
    seq_len: int | None = knob(
        None,
        "training sequence length (train: default the model's window after scaling; pretrain: the window L, "
        "max_position_embeddings)",
        at_least=2,
    )
    steps: int = knob(1000, "optimizer steps", at_least=1)
    batch_size: int = knob(
        64, "global batch in sequences (micro-batches x accumulation x processes)", at_least=1
    )
    micro_batch_size: int = knob(1, "sequences per forward/backward in each process", at_least=1)
    seed: int = knob(
        0,
        "seed for initialisation, data order and passkey documents, 0..2**32-1",
        at_least=0,
        at_most=SEED_MAX,
    )
    resume: bool = knob(False, "continue from the newest checkpoint in --out (same rope, data and batch)")
    overwrite: bool = knob(False, "replace --out if it exists and is not empty")
    deterministic: bool = knob(
        False,
        "deterministic GPU kernels (torch.use_deterministic_algorithms + cuBLAS workspace): a resumed GPU "
        "run is then bit-identical to an uninterrupted one, at some speed (CPU runs always are; docs/gpu.md)",
    )
    data: DataOptions = knob(DataOptions(), "training data")
    passkey: PasskeyMix = knob(PasskeyMix(), "passkey documents in training")
    optim: OptimOptions = knob(OptimOptions(), "optimizer and schedule")
    memory: MemoryOptions = knob(MemoryOptions(), "memory")
    checkpoints: CheckpointOptions = knob(CheckpointOptions(), "checkpoints and validation")
    load: LoadOptions = knob(LoadOptions(), "loading")

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"--batch-size ({self.batch_size}) must be a multiple of --micro-batch-size ({self.micro_batch_size})"
            )
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite contradict each other; pass one")


@dataclass(frozen=True, kw_only=True)
class ModelShape:
    """The `tiny` LLaMA's shape (models/tiny.py `tiny_config`; its window is --seq-len)."""

    hidden_size: int = knob(256, "model width", at_least=1)
    num_layers: int = knob(4, "decoder layers", at_least=1)
    num_heads: int = knob(4, "attention heads", at_least=1)
    head_dim: int = knob(0, "attention head size (0 = hidden / heads)", at_least=0)
    num_kv_heads: int = knob(2, "key/value heads (grouped-query attention)", at_least=1)
    intermediate_size: int = knob(688, "SwiGLU hidden size", at_least=1)
    rope_theta: float = knob(10000.0, "RoPE base")

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        check_head_dim(self.head_dim)


@dataclass(frozen=True, kw_only=True)
class TokenizerOptions:
    """The byte-level BPE tokenizer `ropescale pretrain` trains on the corpus."""

    vocab_size: int = knob(2048, "BPE vocabulary size (byte-level, digits split)", at_least=1)
    tokenizer_chars: int = knob(
        4_000_000, "characters of the corpus used to train the tokenizer", at_least=1000
    )

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(TrainOptions):
    """ropescale pretrain: train the built-in `tiny` LLaMA and its BPE tokenizer from scratch at window L
    (= --seq-len). The command's defaults are recipes/pretrain.toml over the fields' own."""

    shape: ModelShape = knob(ModelShape(), "model shape")
    tokenizer: TokenizerOptions = knob(TokenizerOptions(), "tokenizer")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len is None:
            raise ValueError("--seq-len (the window L) is required for pretrain")


@dataclass(frozen=True, kw_only=True)
class Objective:
    """What the loss scores: every token (lm), or only the summary of a (document, summary) record."""

    task: str = knob("lm", "training objective (summarize: prompt masked out of the loss)", choices=TASKS)
    report_field: str = knob("report", "summarize: record field holding the document")
    summary_field: str = knob("summary", "summarize: record field holding the reference summary")
    max_summary_tokens: int = knob(1000, "summarize: summaries are cut to this many tokens", at_least=1)

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)


@dataclass(frozen=True, kw_only=True)
class LoraOptions:
    """LoRA adapters (Hu et al. 2021) instead of full fine-tuning."""

    enabled: bool = knob(
        False,
        "train LoRA adapters (+ embeddings and norms) instead of all weights; merged on save",
        flag="--lora",
    )
    rank: int = knob(8, "LoRA rank r", flag="--lora-rank", at_least=1)
    alpha: float = knob(16.0, "LoRA alpha (scale alpha / r)", flag="--lora-alpha")
    targets: tuple[str, ...] = knob(
        ("q_proj", "k_proj", "v_proj", "o_proj"),
        "LoRA target module names (comma-separated)",
        flag="--lora-targets",
    )

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        object.__setattr__(self, "targets", tuple(self.targets))


@dataclass(frozen=True, kw_only=True)
class PositionOptions:
    """The position ids of training sequences: contiguous, or PoSE's chunks with random skips."""

    scheme: str = knob(
        "contiguous",
        choices=POSITION_SCHEMES,
        help="position ids of training sequences (pose: chunks with random "
        "skips so short sequences span the whole target window; Zhu et al. 2023)",
        flag="--positions",
    )
    pose_chunks: int = knob(2, "pose: chunks per sequence (the paper: 2)", at_least=1)
    target_window: int | None = knob(
        None, "pose: the window the position ids span (default: the model's window after scaling)", at_least=2
    )

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if self.scheme == "contiguous" and self.target_window is not None:
            raise ValueError("--target-window goes with --positions pose (contiguous ids are 0..seq-len-1)")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(TrainOptions):
    """ropescale train: fine-tune a model on long sequences with scaled (or plain) RoPE positions."""

    model: str = knob(
        help="model: local directory, .gguf file, hub id, or a built-in: tiny, smollm2-135m", positional=True
    )
    rope: RopeScaling | None = knob(
        None, "scaling applied before training (--method none --factor S = direct fine-tuning at S x L)"
    )
    objective: Objective = knob(Objective(), "objective")
    lora: LoraOptions = knob(LoraOptions(), "LoRA")
    positions: PositionOptions = knob(PositionOptions(), "position ids")

    def __post_init__(self) -> None:
        super().__post_init__()
        p = self.positions
        if p.scheme == "pose" and self.seq_len is not None and p.pose_chunks > self.seq_len:
            raise ValueError(
                f"--pose-chunks ({p.pose_chunks}) must be <= --seq-len ({self.seq_len}): "
                "every chunk holds at least one token"
            )
        if p.scheme == "pose" and self.rope is not None and self.rope.rope_type == "dynamic":
            raise ValueError(
                "--positions pose does not go with --method dynamic: dynamic NTK rescales by the largest "
                "position id of each batch, so random skips would train every batch at another scaling; "
                "use --method ntk (a fixed base) or yarn"
            )
        if self.objective.task == "summarize" and self.passkey.fraction > 0:
            raise ValueError("--passkey-fraction mixes language-modelling documents; use it with --task lm")
