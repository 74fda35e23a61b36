"""Knobs of `ropescale eval ...` and `ropescale report`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..knobs import SEED_MAX, check_knobs, knob
from ..rope.spec import RopeScaling
from .base import LoadOptions

MODEL_HELP = "model: local directory, .gguf file, hub id, or a built-in: tiny, smollm2-135m"
DATA_HELP = (
    "documents: pystdlib, shakespeare, a .txt/.jsonl/.parquet file or a directory of them, "
    "or hf:ORG/NAME[:CONFIG] (a cached datasets hub dataset)"
)


@dataclass(frozen=True)
class PplConfig:
    """ropescale eval ppl: sliding-window perplexity (Press et al.) at one or more window lengths."""

    model: str = knob(help=MODEL_HELP, positional=True)
    data: str = knob("pystdlib", DATA_HELP)
    text_field: str = knob("text", "field holding the text in .jsonl/.parquet/hub records")
    split: str = knob("test", "split of a hub dataset")
    lengths: list[int] | None = knob(
        None,
        "evaluation windows, comma-separated, e.g. 2048,4096,8192 (default: the model's window)",
        at_least=2,
    )
    stride: int | None = knob(
        None,
        "tokens scored per window after the first (Press et al. stride S); default 256, or the shortest "
        "evaluation length when that is smaller",
        at_least=1,
    )
    max_docs: int | None = knob(
        None, "evaluate at most this many documents (in the data's order)", at_least=1
    )
    truncate_to: int | None = knob(
        None,
        "keep only documents with at least N tokens and cut them to N (the proof-pile protocol)",
        at_least=2,
    )
    allow_extrapolation: bool = knob(False, "allow --lengths beyond the model's (scaled) window")
    batch_tokens: int = knob(
        16384, "at most this many tokens per forward pass (windows are batched)", at_least=1
    )
    bootstrap: int = knob(
        1000,
        "bootstrap resamples over documents for the 95 percent confidence interval, 1..1000000",
        at_least=1,
        at_most=1_000_000,
    )
    seed: int = knob(0, "seed of the bootstrap, 0..2**32-1", at_least=0, at_most=SEED_MAX)
    rope: RopeScaling | None = knob(None, "scaling applied on load (default: the model's own)")
    load: LoadOptions = knob(LoadOptions(), "loading")
    out: Path | None = knob(None, "write the result JSON here")
    overwrite: bool = knob(False, "replace the --out file if it exists")

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if self.lengths is not None and not self.lengths:
            raise ValueError("--lengths must name at least one length")
        if self.lengths and self.stride is not None and self.stride > min(self.lengths):
            raise ValueError(f"--stride {self.stride} must be <= every --lengths value ({min(self.lengths)})")
        if self.truncate_to and self.lengths and max(self.lengths) > self.truncate_to:
            raise ValueError(
                f"--lengths {max(self.lengths)} is longer than the documents (--truncate-to {self.truncate_to})"
            )


@dataclass(frozen=True)
class PasskeyConfig:
    """ropescale eval passkey: passkey retrieval accuracy by distance k, the effective window k_max."""

    model: str = knob(help=MODEL_HELP, positional=True)
    lengths: list[int] | None = knob(
        None, "prompt lengths in tokens, comma-separated (default: the model's window)", at_least=64
    )
    num_k: int = knob(
        32,
        "distances k (key to end of prompt) uniformly over each length, 0..4096; 0 = none",
        at_least=0,
        at_most=4096,
    )
    trials: int = knob(
        10,
        "trials per k (and per depth), each with a fresh random 5-digit key, 1..10000",
        at_least=1,
        at_most=10_000,
    )
    depths: list[float] | None = knob(
        None, "also a length x depth grid: key depths in [0,1] (0 = start of the text, 1 = end)"
    )
    max_new_tokens: int = knob(
        10, "tokens to generate greedily after the prompt, 1..4096", at_least=1, at_most=4096
    )
    seed: int = knob(0, "seed of the keys, 0..2**32-1", at_least=0, at_most=SEED_MAX)
    allow_extrapolation: bool = knob(False, "allow --lengths beyond the model's (scaled) window")
    rope: RopeScaling | None = knob(None, "scaling applied on load (default: the model's own)")
    load: LoadOptions = knob(LoadOptions(), "loading")
    out: Path | None = knob(None, "write the result JSON here")
    overwrite: bool = knob(False, "replace the --out file if it exists")

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if self.lengths is not None and not self.lengths:
            raise ValueError("--lengths must name at least one length")
        for d in self.depths or []:
            if not (isinstance(d, (int, float)) and 0.0 <= d <= 1.0):
                raise ValueError(f"--depths must lie in [0, 1], got {d!r}")
        if self.num_k == 0 and not self.depths:
            raise ValueError("--num-k 0 needs --depths (otherwise there is nothing to evaluate)")


@dataclass(frozen=True)
class SummarizeConfig:
    """ropescale eval summarize: sample summaries of long documents, ROUGE-1/2/L against references."""

    model: str = knob(help=MODEL_HELP, positional=True)
    data: str = knob(
        help="records with a document and a summary: a .jsonl/.parquet file, a directory of them, or "
        "hf:ORG/NAME[:CONFIG] (e.g. hf:ccdv/govreport-summarization when cached)"
    )
    report_field: str = knob("report", "field holding the document")
    summary_field: str = knob("summary", "field holding the reference summary")
    split: str = knob("test", "split of a hub dataset")
    max_docs: int | None = knob(None, "evaluate at most this many documents", at_least=1)
    max_input_tokens: int = knob(
        15000, "cut each document to its first N tokens (the paper: 15000)", at_least=1
    )
    max_new_tokens: int = knob(
        1000, "longest summary in tokens (the paper: 1000), 1..65536", at_least=1, at_most=65536
    )
    temperature: float = knob(0.5, "sampling temperature (0 = greedy)")
    top_p: float = knob(0.95, "nucleus sampling: keep the most likely tokens up to this probability mass")
    seed: int = knob(
        0,
        "seed of the sampling (one generator per document) and of the bootstrap, 0..2**32-1",
        at_least=0,
        at_most=SEED_MAX,
    )
    bootstrap: int = knob(
        1000,
        "bootstrap resamples over documents for the 95 percent confidence interval, 1..1000000",
        at_least=1,
        at_most=1_000_000,
    )
    allow_extrapolation: bool = knob(False, "allow prompt + summary to exceed the model's (scaled) window")
    rope: RopeScaling | None = knob(None, "scaling applied on load (default: the model's own)")
    load: LoadOptions = knob(LoadOptions(), "loading")
    out: Path | None = knob(None, "write the result JSON here")
    overwrite: bool = knob(False, "replace the --out file if it exists")

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"--temperature must be >= 0, got {self.temperature}")
        if not (0 < self.top_p <= 1):
            raise ValueError(f"--top-p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class HarnessConfig:
    """ropescale eval harness: short-context regression before vs after the scaling."""

    model: str = knob(help=MODEL_HELP, positional=True)
    tasks: list[str] | None = knob(
        None,
        "lm-evaluation-harness tasks, comma-separated (needs the harness extra); none = built-in check only",
    )
    include_path: Path | None = knob(None, "directory of local lm-evaluation-harness task YAML files")
    num_fewshot: int | None = knob(None, "few-shot examples per task (default: the task's own)", at_least=0)
    limit: int | None = knob(None, "evaluate at most this many examples per task", at_least=1)
    batch_size: int = knob(1, "lm-evaluation-harness batch size", at_least=1)
    ppl: bool = knob(True, "built-in check: perplexity inside the original window, before and after")
    ppl_length: int | None = knob(
        None, "built-in check window (default: the model's original window L)", at_least=2
    )
    data: str = knob("pystdlib", DATA_HELP)
    text_field: str = knob("text", "field holding the text in .jsonl/.parquet/hub records")
    split: str = knob("test", "split of a hub dataset")
    max_docs: int = knob(
        8, "built-in check: documents (each at least the window long, cut to it)", at_least=1
    )
    batch_tokens: int = knob(16384, "built-in check: at most this many tokens per forward pass", at_least=1)
    seed: int = knob(
        0, "seed for the harness (sampling of few-shot examples), 0..2**32-1", at_least=0, at_most=SEED_MAX
    )
    rope: RopeScaling | None = knob(None, "the scaling to compare against the model as given")
    load: LoadOptions = knob(LoadOptions(), "loading")
    out: Path | None = knob(None, "write the result JSON here")
    overwrite: bool = knob(False, "replace the --out file if it exists")

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if not self.ppl and not self.tasks:
            raise ValueError("--no-ppl needs --tasks (otherwise there is nothing to evaluate)")
        if self.include_path is not None and not Path(self.include_path).is_dir():
            raise ValueError(f"--include-path {self.include_path}: not a directory")


@dataclass(frozen=True)
class RulerConfig:
    """ropescale eval ruler: the RULER long-context benchmark (lm-evaluation-harness tasks), offline."""

    model: str = knob(help=MODEL_HELP, positional=True)
    lengths: list[int] | None = knob(
        None,
        "RULER lengths in tokens (prompt + answer), comma-separated (default: the model's window)",
        at_least=1,
    )
    tasks: list[str] | None = knob(
        None,
        "RULER tasks, comma-separated, or `ruler` for all 13 (default: every task that runs offline)",
    )
    samples: int = knob(
        5, "samples per task and length (lm-eval generates 500 and takes the first N)", at_least=1
    )
    threshold: float = knob(85.6, "effective length: longest length whose average score beats this (0-100)")
    haystack: str = knob(
        "shakespeare", "local haystack of the *_local tasks (a --data spec: " + DATA_HELP + ")"
    )
    online: bool = knob(False, "allow the tasks that download data (Paul Graham essays, SQuAD, HotpotQA)")
    chat_template: bool = knob(False, "wrap prompts in the tokenizer's chat template (instruct models only)")
    batch_size: int = knob(1, "lm-evaluation-harness batch size", at_least=1)
    seed: int = knob(
        0,
        "seed of the sample generators (python and numpy) and of lm-evaluation-harness, 0..2**32-1",
        at_least=0,
        at_most=SEED_MAX,
    )
    allow_extrapolation: bool = knob(False, "allow --lengths beyond the model's (scaled) window")
    rope: RopeScaling | None = knob(None, "scaling applied on load (default: the model's own)")
    load: LoadOptions = knob(LoadOptions(), "loading")
    out: Path | None = knob(None, "write the result JSON here")

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if self.lengths is not None and not self.lengths:
            raise ValueError("--lengths must name at least one length")
        if self.lengths is not None and len(set(self.lengths)) != len(self.lengths):
            raise ValueError(f"--lengths must not repeat a length, got {self.lengths}")
        if self.tasks is not None and not self.tasks:
            raise ValueError("--tasks must name at least one task")
        if not (isinstance(self.threshold, (int, float)) and 0 <= self.threshold <= 100):
            raise ValueError(f"--threshold must lie in [0, 100], got {self.threshold!r}")


@dataclass(frozen=True)
class ReportConfig:
    """ropescale report: markdown tables and PNG plots from evaluation result files."""

    results: list[Path] = knob(help="result JSON files written by ropescale eval ... --out", positional=True)
    out: Path = knob(help="output directory for report.md and the plots")
    overwrite: bool = knob(False, "replace --out if it exists and is not empty")
    plots: bool = knob(True, "draw PNG plots (needs matplotlib)")

    def __post_init__(self) -> None:
        for path in self.results:
            if Path(path).is_dir():
                raise ValueError(f"RESULTS {path}: a directory, not a result file")
            if not Path(path).is_file():
                raise ValueError(f"RESULTS {path}: no such file")
