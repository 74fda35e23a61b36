"""Dataclasses for every knob. Each field's `help` is its one-line doc and its `--help` text.

A field's metadata may also carry:
  - ``flag``: the CLI spelling when it differs from ``--field-name`` (e.g. ``rope_type`` is ``--method``);
  - ``positional``: the field is a positional argument.
Validation lives in ``__post_init__`` and raises ``ValueError`` naming the flag.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The scaling methods ropescale implements, by the name users pass to --method. `none` is plain RoPE
# (extrapolation); the others follow transformers' rope_type names where transformers has one.
METHOD_NAMES = ("none", "linear", "ntk", "dynamic", "yarn", "llama3", "longrope")


def knob(default: Any = dataclasses.MISSING, help: str = "", **meta: Any) -> Any:
    """A dataclass field with its one-line doc (and optional CLI metadata)."""
    meta["help"] = help
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _positive(name: str, value: float | None, flag: str) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{flag} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class RopeScaling:
    """How to rescale RoPE. Key names are transformers' (`rope_parameters`), so configs round-trip."""

    rope_type: str = knob(
        "none", f"scaling method: one of {', '.join(METHOD_NAMES)} (none = plain RoPE)", flag="--method"
    )
    factor: float = knob(1.0, "scale factor s = L'/L (new window / original window), >= 1")
    original_max_position_embeddings: int | None = knob(
        None, "original (pre-training) window L; default: the model's max_position_embeddings"
    )
    attention_factor: float | None = knob(
        None, "yarn/longrope: multiplier on cos/sin (default: the method's formula)"
    )
    beta_fast: float | None = knob(None, "yarn: rotations above which a dimension is untouched (default 32)")
    beta_slow: float | None = knob(
        None, "yarn: rotations below which a dimension is fully interpolated (default 1)"
    )
    mscale: float | None = knob(None, "yarn (DeepSeek style): mscale numerator of the attention factor")
    mscale_all_dim: float | None = knob(
        None, "yarn (DeepSeek style): mscale denominator of the attention factor"
    )
    truncate: bool = knob(True, "yarn: round the correction range to whole dimensions (floor/ceil)")
    low_freq_factor: float | None = knob(
        None, "llama3: wavelengths above L/low_freq_factor are interpolated (default 1)"
    )
    high_freq_factor: float | None = knob(
        None, "llama3: wavelengths below L/high_freq_factor are kept (default 4)"
    )
    short_factor: tuple[float, ...] | None = knob(
        None, "longrope: per-dimension factors (head_dim/2 values, comma-separated) used within L"
    )
    long_factor: tuple[float, ...] | None = knob(
        None, "longrope: per-dimension factors (head_dim/2 values, comma-separated) used beyond L"
    )

    def __post_init__(self) -> None:
        if self.rope_type not in METHOD_NAMES:
            raise ValueError(
                f"--method must be one of {', '.join(sorted(METHOD_NAMES))}, got {self.rope_type!r}"
            )
        if not isinstance(self.factor, (int, float)) or not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError(f"--factor must be >= 1, got {self.factor}")
        orig = self.original_max_position_embeddings
        if orig is not None and (isinstance(orig, bool) or not isinstance(orig, int) or orig < 1):
            raise ValueError(f"--original-max-position-embeddings must be a positive integer, got {orig!r}")
        for name in ("attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim"):
            _positive(name, getattr(self, name), "--" + name.replace("_", "-"))
        for name in ("low_freq_factor", "high_freq_factor"):
            _positive(name, getattr(self, name), "--" + name.replace("_", "-"))
        if self.beta_fast_or_default <= self.beta_slow_or_default:
            raise ValueError(
                f"--beta-fast must be greater than --beta-slow, got {self.beta_fast_or_default} "
                f"<= {self.beta_slow_or_default}"
            )
        if self.low_freq_factor_or_default >= self.high_freq_factor_or_default:
            raise ValueError(
                f"--high-freq-factor must be greater than --low-freq-factor, got "
                f"{self.high_freq_factor_or_default} <= {self.low_freq_factor_or_default}"
            )
        for name in ("short_factor", "long_factor"):
            values = getattr(self, name)
            if values is None:
                continue
            object.__setattr__(self, name, tuple(float(v) for v in values))
            bad = [v for v in getattr(self, name) if not (math.isfinite(v) and v > 0)]
            if bad or not values:
                raise ValueError(f"--{name.replace('_', '-')} must be a non-empty list of positive numbers")
        if self.rope_type == "longrope" and (self.short_factor is None or self.long_factor is None):
            raise ValueError(
                "--method longrope needs both --short-factor and --long-factor (head_dim/2 values each)"
            )
        if self.rope_type == "longrope" and len(self.short_factor) != len(self.long_factor):
            raise ValueError(
                f"--short-factor and --long-factor must have the same length (head_dim/2), got "
                f"{len(self.short_factor)} and {len(self.long_factor)}"
            )

    # Defaults of the optional method parameters, as transformers and the papers define them.
    @property
    def beta_fast_or_default(self) -> float:
        return 32.0 if self.beta_fast is None else float(self.beta_fast)

    @property
    def beta_slow_or_default(self) -> float:
        return 1.0 if self.beta_slow is None else float(self.beta_slow)

    @property
    def low_freq_factor_or_default(self) -> float:
        return 1.0 if self.low_freq_factor is None else float(self.low_freq_factor)

    @property
    def high_freq_factor_or_default(self) -> float:
        return 4.0 if self.high_freq_factor is None else float(self.high_freq_factor)

    def require_original(self) -> int:
        """The original window L; methods whose formula needs it call this."""
        if self.original_max_position_embeddings is None:
            raise ValueError(
                f"--method {self.rope_type} needs --original-max-position-embeddings (the pre-training window)"
            )
        return self.original_max_position_embeddings

    def with_original(self, original: int) -> RopeScaling:
        """This spec with L filled in where the user left it unset."""
        if self.original_max_position_embeddings is not None:
            return self
        return dataclasses.replace(self, original_max_position_embeddings=int(original))

    @property
    def new_window(self) -> int | None:
        """The extended window L' = s * L (None while L is unknown)."""
        orig = self.original_max_position_embeddings
        return None if orig is None else round(orig * self.factor)

    def to_dict(self) -> dict[str, Any]:
        """Only the keys that are set, with lists for the per-dimension factors (JSON friendly)."""
        out: dict[str, Any] = {"rope_type": self.rope_type, "factor": float(self.factor)}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in out or value is None or (f.name == "truncate" and value is True):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RopeScaling:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown rope scaling keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)


def resolve_path(value: str | Path) -> Path:
    return Path(value).expanduser()


DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model (shared by every command that loads one)."""

    device: str = knob("cpu", "torch device to run on (cpu, cuda, cuda:1, ...)")
    dtype: str = knob("auto", f"weights dtype: {', '.join(DTYPES)} (auto = float32 on CPU, bfloat16 on GPU)")
    trust_remote_code: bool = knob(
        False, "allow the checkpoint's own Python code to run (off unless you ask)"
    )

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


@dataclass(frozen=True)
class ExtendConfig:
    """ropescale extend: write a checkpoint whose config carries the scaling."""

    model: str = knob(help="model: local directory, .gguf file, hub id, or smollm2-135m", positional=True)
    out: Path = knob(help="output directory for the scaled checkpoint (safetensors + tokenizer)")
    rope: RopeScaling = knob(RopeScaling(), "scaling")
    load: LoadOptions = knob(LoadOptions(), "loading")
    overwrite: bool = knob(False, "replace --out if it exists and is not empty")


@dataclass(frozen=True)
class InspectConfig:
    """ropescale inspect: what RoPE scaling a model carries, per dimension, and whether it is live."""

    model: str = knob(help="model: local directory, .gguf file, hub id, or smollm2-135m", positional=True)
    rope: RopeScaling | None = knob(
        None, "preview a scaling instead of the model's own (same flags as extend)"
    )
    load: LoadOptions = knob(LoadOptions(), "loading")
    json: bool = knob(False, "print machine-readable JSON instead of tables")


# ----------------------------------------------------------------------------- theory (paper section 4)

THEORY_FIT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class TheoryConfig:
    """ropescale theory: the paper's interpolation vs extrapolation bounds on a model, and its figures."""

    model: str | None = knob(
        None,
        "model to analyse (local directory, .gguf file, hub id, or smollm2-135m); optional with --figures",
        positional=True,
    )
    figures: Path | None = knob(
        None, "write the paper's Figure 2 and Figure 5 (PNG, plus JSON with the numbers) into this directory"
    )
    rope: RopeScaling | None = knob(None, "the scaling to analyse (default: the model's own)")
    load: LoadOptions = knob(LoadOptions(), "loading")
    text: Path | None = knob(
        None, "sample text file for the q/k vectors (default: Python's own textwrap.py, present everywhere)"
    )
    tokens: int = knob(
        512, "sample-text tokens to run through the model (at most the window it was trained on)"
    )
    pairs: int = knob(64, "number of sampled (query, key) position pairs whose a(s) is measured per head")
    seed: int = knob(0, "seed for the sampled pairs and the Figure 2 targets")
    out: Path | None = knob(None, "also write the model report as JSON to this file")
    json: bool = knob(False, "print machine-readable JSON instead of tables")
    head_dim: int = knob(128, "figures: head dimension d (paper: 128, LLaMA 7B)")
    base: float = knob(10000.0, "figures: RoPE base c (paper: 10000)")
    window: int = knob(2048, "figures: original window L (paper: 2048)")
    eps: float = knob(
        0.0, "figures: ridge eps of the Figure 2 fit (0 = plain least squares, as in the paper)"
    )
    fit_dtype: str = knob(
        "float64", f"figures: precision of the Figure 2 solve: {', '.join(THEORY_FIT_DTYPES)}"
    )
    overwrite: bool = knob(False, "replace --figures / --out if they exist")

    def __post_init__(self) -> None:
        if self.model is None and self.figures is None:
            raise ValueError("give a MODEL to analyse, --figures DIR, or both")
        for name in ("tokens", "pairs", "head_dim", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.tokens < 2:
            raise ValueError(f"--tokens must be at least 2, got {self.tokens}")
        if self.head_dim % 2:
            raise ValueError(f"--head-dim must be even, got {self.head_dim}")
        if not (isinstance(self.base, (int, float)) and math.isfinite(self.base) and self.base > 1):
            raise ValueError(f"--base must be a number > 1, got {self.base!r}")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"--eps must be a number >= 0, got {self.eps!r}")
        if self.fit_dtype not in THEORY_FIT_DTYPES:
            raise ValueError(
                f"--fit-dtype must be one of {', '.join(THEORY_FIT_DTYPES)}, got {self.fit_dtype!r}"
            )
        for name in ("figures", "out", "text"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, resolve_path(value))


# ----------------------------------------------------------------------------- training (pretrain, train)

TASKS = ("lm", "summarize")
SCHEDULES = ("constant", "cosine")


def _at_least(cfg: Any, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and (isinstance(value, bool) or value < minimum):
            raise ValueError(f"--{name.replace('_', '-')} must be >= {minimum:g}, got {value!r}")


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
    steps: int = knob(1000, "optimizer steps")
    batch_size: int = knob(64, "global batch in sequences (micro-batches x accumulation x processes)")
    micro_batch_size: int = knob(1, "sequences per forward/backward in each process")
    lr: float = knob(2e-5, "peak learning rate")
    warmup_steps: int = knob(20, "linear warmup steps")
    warmup_start: float = knob(0.1, "warmup starts at this fraction of --lr")
    schedule: str = knob("constant", f"rate after warmup: {', '.join(SCHEDULES)}")
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
    cache_dir: Path | None = knob(None, "cache for packed token files (default: OUT/.cache)")
    load: LoadOptions = knob(LoadOptions(), "loading")

    def __post_init__(self) -> None:
        _at_least(
            self,
            1,
            "steps",
            "batch_size",
            "micro_batch_size",
            "eval_sequences",
            "checkpoint_every_n_layers",
            "keep_checkpoints",
        )
        _at_least(self, 2, "seq_len")
        _at_least(self, 0, "loss_chunk")
        _at_least(
            self, 0, "warmup_steps", "save_every", "eval_every", "weight_decay", "max_grad_norm", "seed"
        )
        for name in ("val_fraction", "passkey_fraction", "warmup_start", "min_lr_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        if self.val_fraction >= 1.0:
            raise ValueError("--val-fraction must be < 1 (some documents must be left to train on)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
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
    schedule: str = knob("cosine", f"rate after warmup: {', '.join(SCHEDULES)}")
    weight_decay: float = knob(0.1, "AdamW weight decay (matrices only)")
    max_grad_norm: float = knob(1.0, "clip the global gradient norm to this (0 = off)")
    activation_checkpointing: bool = knob(False, "recompute decoder layers in backward (less memory)")
    vocab_size: int = knob(2048, "BPE vocabulary size (byte-level, digits split)")
    tokenizer_chars: int = knob(4_000_000, "characters of the corpus used to train the tokenizer")
    hidden_size: int = knob(256, "model width")
    num_layers: int = knob(4, "decoder layers")
    num_heads: int = knob(4, "attention heads (head_dim = hidden / heads)")
    num_kv_heads: int = knob(2, "key/value heads (grouped-query attention)")
    intermediate_size: int = knob(688, "SwiGLU hidden size")
    rope_theta: float = knob(10000.0, "RoPE base")

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, 1, "hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size")
        _at_least(self, 1000, "tokenizer_chars")
        if self.seq_len is None:
            raise ValueError("--seq-len (the window L) is required for pretrain")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(TrainOptions):
    """ropescale train: fine-tune a model on long sequences with scaled (or plain) RoPE positions."""

    model: str = knob(help="model: local directory, .gguf file, hub id, or smollm2-135m", positional=True)
    rope: RopeScaling | None = knob(
        None, "scaling applied before training (--method none --factor S = direct fine-tuning at S x L)"
    )
    task: str = knob(
        "lm", f"training objective: {', '.join(TASKS)} (summarize: prompt masked out of the loss)"
    )
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task not in TASKS:
            raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        _at_least(self, 1, "max_summary_tokens", "lora_rank")
        if self.task == "summarize" and self.passkey_fraction > 0:
            raise ValueError("--passkey-fraction mixes language-modelling documents; use it with --task lm")
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))


# ----------------------------------------------------------------------------- evaluation (eval/, report/)

MODEL_HELP = "model: local directory, .gguf file, hub id, or smollm2-135m"
DATA_HELP = (
    "documents: pystdlib, shakespeare, a .txt/.jsonl/.parquet file or a directory of them, "
    "or hf:ORG/NAME[:CONFIG] (a cached datasets hub dataset)"
)


def _int_at_least(value: int | None, low: int, flag: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise ValueError(f"{flag} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class PplConfig:
    """ropescale eval ppl: sliding-window perplexity (Press et al.) at one or more window lengths."""

    model: str = knob(help=MODEL_HELP)
    data: str = knob("pystdlib", DATA_HELP)
    text_field: str = knob("text", "field holding the text in .jsonl/.parquet/hub records")
    split: str = knob("test", "split of a hub dataset")
    lengths: list[int] | None = knob(
        None, "evaluation windows, comma-separated, e.g. 2048,4096,8192 (default: the model's window)"
    )
    stride: int = knob(256, "tokens scored per window after the first (Press et al. stride S)")
    max_docs: int | None = knob(None, "evaluate at most this many documents (in the data's order)")
    truncate_to: int | None = knob(
        None, "keep only documents with at least N tokens and cut them to N (the proof-pile protocol)"
    )
    allow_extrapolation: bool = knob(False, "allow --lengths beyond the model's (scaled) window")
    batch_tokens: int = knob(16384, "at most this many tokens per forward pass (windows are batched)")
    bootstrap: int = knob(1000, "bootstrap resamples over documents for the 95 percent confidence interval")
    seed: int = knob(0, "seed of the bootstrap")
    rope: RopeScaling | None = knob(None, "scaling applied on load (default: the model's own)")
    load: LoadOptions = knob(LoadOptions(), "loading")
    out: Path | None = knob(None, "write the result JSON here")

    def __post_init__(self) -> None:
        for value in self.lengths or []:
            _int_at_least(value, 2, "--lengths")
        if self.lengths is not None and not self.lengths:
            raise ValueError("--lengths must name at least one length")
        _int_at_least(self.stride, 1, "--stride")
        if self.lengths and self.stride > min(self.lengths):
            raise ValueError(f"--stride {self.stride} must be <= every --lengths value ({min(self.lengths)})")
        _int_at_least(self.max_docs, 1, "--max-docs")
        _int_at_least(self.truncate_to, 2, "--truncate-to")
        if self.truncate_to and self.lengths and max(self.lengths) > self.truncate_to:
            raise ValueError(
                f"--lengths {max(self.lengths)} is longer than the documents (--truncate-to {self.truncate_to})"
            )
        _int_at_least(self.batch_tokens, 1, "--batch-tokens")
        _int_at_least(self.bootstrap, 1, "--bootstrap")


@dataclass(frozen=True)
class PasskeyConfig:
    """ropescale eval passkey: passkey retrieval accuracy by distance k, the effective window k_max."""

    model: str = knob(help=MODEL_HELP)
    lengths: list[int] | None = knob(
        None, "prompt lengths in tokens, comma-separated (default: the model's window)"
    )
    num_k: int = knob(32, "distances k (key to end of prompt) uniformly over each length; 0 = none")
    trials: int = knob(10, "trials per k (and per depth), each with a fresh random 5-digit key")
    depths: list[float] | None = knob(
        None, "also a length x depth grid: key depths in [0,1] (0 = start of the text, 1 = end)"
    )
    max_new_tokens: int = knob(10, "tokens to generate greedily after the prompt")
    seed: int = knob(0, "seed of the keys")
    allow_extrapolation: bool = knob(False, "allow --lengths beyond the model's (scaled) window")
    rope: RopeScaling | None = knob(None, "scaling applied on load (default: the model's own)")
    load: LoadOptions = knob(LoadOptions(), "loading")
    out: Path | None = knob(None, "write the result JSON here")

    def __post_init__(self) -> None:
        if self.lengths is not None and not self.lengths:
            raise ValueError("--lengths must name at least one length")
        for value in self.lengths or []:
            _int_at_least(value, 64, "--lengths")
        _int_at_least(self.num_k, 0, "--num-k")
        _int_at_least(self.trials, 1, "--trials")
        _int_at_least(self.max_new_tokens, 1, "--max-new-tokens")
        for d in self.depths or []:
            if not (isinstance(d, (int, float)) and 0.0 <= d <= 1.0):
                raise ValueError(f"--depths must lie in [0, 1], got {d!r}")
        if self.num_k == 0 and not self.depths:
            raise ValueError("--num-k 0 needs --depths (otherwise there is nothing to evaluate)")


@dataclass(frozen=True)
class SummarizeConfig:
    """ropescale eval summarize: sample summaries of long documents, ROUGE-1/2/L against references."""

    model: str = knob(help=MODEL_HELP)
    data: str = knob(
        help="records with a document and a summary: a .jsonl/.parquet file, a directory of them, or "
        "hf:ORG/NAME[:CONFIG] (e.g. hf:ccdv/govreport-summarization when cached)"
    )
    report_field: str = knob("report", "field holding the document")
    summary_field: str = knob("summary", "field holding the reference summary")
    split: str = knob("test", "split of a hub dataset")
    max_docs: int | None = knob(None, "evaluate at most this many documents")
    max_input_tokens: int = knob(15000, "cut each document to its first N tokens (the paper: 15000)")
    max_new_tokens: int = knob(1000, "longest summary in tokens (the paper: 1000)")
    temperature: float = knob(0.5, "sampling temperature (0 = greedy)")
    top_p: float = knob(0.95, "nucleus sampling: keep the most likely tokens up to this probability mass")
    seed: int = knob(0, "seed of the sampling (one generator per document) and of the bootstrap")
    bootstrap: int = knob(1000, "bootstrap resamples over documents for the 95 percent confidence interval")
    allow_extrapolation: bool = knob(False, "allow prompt + summary to exceed the model's (scaled) window")
    rope: RopeScaling | None = knob(None, "scaling applied on load (default: the model's own)")
    load: LoadOptions = knob(LoadOptions(), "loading")
    out: Path | None = knob(None, "write the result JSON here")

    def __post_init__(self) -> None:
        _int_at_least(self.max_docs, 1, "--max-docs")
        _int_at_least(self.max_input_tokens, 1, "--max-input-tokens")
        _int_at_least(self.max_new_tokens, 1, "--max-new-tokens")
        _int_at_least(self.bootstrap, 1, "--bootstrap")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"--temperature must be >= 0, got {self.temperature}")
        if not (0 < self.top_p <= 1):
            raise ValueError(f"--top-p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class HarnessConfig:
    """ropescale eval harness: short-context regression before vs after the scaling."""

    model: str = knob(help=MODEL_HELP)
    tasks: list[str] | None = knob(
        None,
        "lm-evaluation-harness tasks, comma-separated (needs the harness extra); none = built-in check only",
    )
    include_path: Path | None = knob(None, "directory of local lm-evaluation-harness task YAML files")
    num_fewshot: int | None = knob(None, "few-shot examples per task (default: the task's own)")
    limit: int | None = knob(None, "evaluate at most this many examples per task")
    batch_size: int = knob(1, "lm-evaluation-harness batch size")
    ppl: bool = knob(True, "built-in check: perplexity inside the original window, before and after")
    ppl_length: int | None = knob(None, "built-in check window (default: the model's original window L)")
    data: str = knob("pystdlib", DATA_HELP)
    text_field: str = knob("text", "field holding the text in .jsonl/.parquet/hub records")
    split: str = knob("test", "split of a hub dataset")
    max_docs: int = knob(8, "built-in check: documents (each at least the window long, cut to it)")
    batch_tokens: int = knob(16384, "built-in check: at most this many tokens per forward pass")
    seed: int = knob(0, "seed for the harness (sampling of few-shot examples)")
    rope: RopeScaling | None = knob(None, "the scaling to compare against the model as given")
    load: LoadOptions = knob(LoadOptions(), "loading")
    out: Path | None = knob(None, "write the result JSON here")

    def __post_init__(self) -> None:
        if not self.ppl and not self.tasks:
            raise ValueError("--no-ppl needs --tasks (otherwise there is nothing to evaluate)")
        _int_at_least(self.num_fewshot, 0, "--num-fewshot")
        _int_at_least(self.limit, 1, "--limit")
        _int_at_least(self.batch_size, 1, "--batch-size")
        _int_at_least(self.ppl_length, 2, "--ppl-length")
        _int_at_least(self.max_docs, 1, "--max-docs")
        _int_at_least(self.batch_tokens, 1, "--batch-tokens")
        if self.include_path is not None and not Path(self.include_path).is_dir():
            raise ValueError(f"--include-path {self.include_path}: not a directory")


@dataclass(frozen=True)
class ReportConfig:
    """ropescale report: markdown tables and PNG plots from evaluation result files."""

    results: list[Path] = knob(help="result JSON files written by ropescale eval ... --out", positional=True)
    out: Path = knob(help="output directory for report.md and the plots")
    overwrite: bool = knob(False, "replace --out if it exists and is not empty")
    plots: bool = knob(True, "draw PNG plots (needs matplotlib)")

    def __post_init__(self) -> None:
        for path in self.results:
            if not Path(path).is_file():
                raise ValueError(f"RESULTS {path}: no such file")
