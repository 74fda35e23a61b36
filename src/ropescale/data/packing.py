"""Tokenise a corpus once into fixed-length training sequences, stored as memory-mapped token files.

Language modelling (`task="lm"`): documents are tokenised with the model's tokenizer, each followed by EOS,
and the token stream is cut into sequences of exactly `seq_len` tokens (the last partial one is dropped).
A document goes to validation or training as a whole (a hash of its text decides, so the split does not
depend on the order or on which other documents exist); never by position inside a document.

Summarization (`task="summarize"`): one sequence per record, prompt + summary + EOS + padding, with a loss
mask that is true only on the summary and its EOS (see `summarize_example`).

Corpora are streamed a batch of documents at a time and written straight to disk, so memory does not grow
with the corpus. The result lives in a cache directory named by a hash of everything that determines it
(data spec, tokenizer, length, split), so runs on the same data share it; its content hashes are the data
fingerprint that a resumed run must match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import outputs, prompts
from .corpora import load_documents, load_records

FORMAT_VERSION = 1


@dataclass(frozen=True)
class DataRequest:
    """Everything that determines the packed sequences (and so the cache key)."""

    data: str
    seq_len: int
    text_field: str = "text"
    split: str = "train"
    val_fraction: float = 0.02
    max_tokens: int | None = None
    task: str = "lm"
    report_field: str = "report"
    summary_field: str = "summary"
    max_summary_tokens: int = 1000


def tokenizer_hash(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def cache_key(request: DataRequest, tokenizer: Any) -> str:
    blob = json.dumps([FORMAT_VERSION, asdict(request), tokenizer_hash(tokenizer)], sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


class Packed:
    """A packed corpus on disk: `train`/`val` token arrays (N, seq_len) and, where the task masks part of
    each sequence, `train_mask`/`val_mask` (N, seq_len) booleans; `meta` and `fingerprint`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.meta = json.loads((self.root / "meta.json").read_text())
        self.seq_len = int(self.meta["seq_len"])
        dtype = np.dtype(self.meta["dtype"])
        for split in ("train", "val"):
            n = int(self.meta[f"{split}_sequences"])
            setattr(self, split, _open(self.root / f"{split}.bin", dtype, n, self.seq_len))
            has_mask = (self.root / f"{split}_mask.bin").exists()
            mask = (
                _open(self.root / f"{split}_mask.bin", np.dtype(bool), n, self.seq_len) if has_mask else None
            )
            setattr(self, f"{split}_mask", mask)

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])


def _open(path: Path, dtype: np.dtype, n: int, seq_len: int) -> np.ndarray:
    if n == 0:
        return np.zeros((0, seq_len), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n, seq_len))


def pack(request: DataRequest, tokenizer: Any, cache_dir: Path) -> Packed:
    """The packed corpus for `request`, built on first use (atomically) and reused after."""
    root = Path(cache_dir) / cache_key(request, tokenizer)
    if (root / "meta.json").is_file():
        return Packed(root)
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token, which packing needs between documents")
    with outputs.atomic_dir(root, overwrite=True, flag="--cache-dir") as tmp:
        dtype = np.dtype(np.uint16 if len(tokenizer) <= 2**16 else np.uint32)
        writers = {s: _Writer(tmp, s, dtype, request.task == "summarize") for s in ("train", "val")}
        if request.task == "summarize":
            _pack_summaries(request, tokenizer, writers)
        else:
            _pack_documents(request, tokenizer, writers)
        meta = {
            "request": asdict(request),
            "format": FORMAT_VERSION,
            "dtype": dtype.name,
            "seq_len": request.seq_len,
        }
        meta["tokenizer"] = tokenizer_hash(tokenizer)
        for name, w in writers.items():
            meta.update(w.close(name))
        if meta["train_sequences"] == 0:
            raise ValueError(
                f"--data {request.data}: too little text for one training sequence of {request.seq_len} tokens"
            )
        meta["fingerprint"] = hashlib.blake2b(
            json.dumps(meta, sort_keys=True).encode(), digest_size=8
        ).hexdigest()
        outputs.write_json(tmp / "meta.json", meta)
    return Packed(root)


class _Writer:
    """Appends (seq_len,) rows to <split>.bin (and <split>_mask.bin), hashing what it writes."""

    def __init__(self, root: Path, split: str, dtype: np.dtype, masked: bool):
        self.dtype, self.rows, self.tokens = dtype, 0, 0
        self.file = (root / f"{split}.bin").open("wb")
        self.mask_file = (root / f"{split}_mask.bin").open("wb") if masked else None
        self.hash = hashlib.blake2b(digest_size=8)
        self.pending: list[np.ndarray] = []  # token stream not yet cut into rows (lm task)
        self.pending_len = 0

    def row(self, ids: np.ndarray, mask: np.ndarray | None = None) -> None:
        data = ids.astype(self.dtype).tobytes()
        self.file.write(data)
        self.hash.update(data)
        if self.mask_file is not None:
            self.mask_file.write(mask.astype(bool).tobytes())
            self.hash.update(mask.astype(bool).tobytes())
        self.rows += 1

    def stream(self, ids: np.ndarray, seq_len: int) -> None:
        """Append to the token stream and write every complete row."""
        self.pending.append(ids)
        self.pending_len += len(ids)
        self.tokens += len(ids)
        if self.pending_len < seq_len:
            return
        flat = np.concatenate(self.pending)
        full = len(flat) // seq_len * seq_len
        for row in flat[:full].reshape(-1, seq_len):
            self.row(row)
        self.pending, self.pending_len = [flat[full:]], len(flat) - full

    def close(self, split: str) -> dict[str, Any]:
        self.file.close()
        if self.mask_file is not None:
            self.mask_file.close()
        return {f"{split}_sequences": self.rows, f"{split}_hash": self.hash.hexdigest()}


def is_validation(text: str, fraction: float) -> bool:
    """Whether a document belongs to validation: its text's hash, read as a number in [0, 1), < fraction."""
    digest = hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def _batches(texts: Iterator[str], max_chars: int = 2_000_000) -> Iterator[list[str]]:
    batch, size = [], 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= max_chars or len(batch) >= 512:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _pack_documents(request: DataRequest, tokenizer: Any, writers: dict[str, _Writer]) -> None:
    eos = np.array([tokenizer.eos_token_id])
    docs = load_documents(request.data, request.text_field, request.split)
    for batch in _batches(docs):
        encoded = tokenizer(batch, add_special_tokens=False)["input_ids"]
        for text, ids in zip(batch, encoded, strict=False):
            split = "val" if is_validation(text, request.val_fraction) else "train"
            writers[split].stream(np.concatenate([np.asarray(ids, dtype=np.int64), eos]), request.seq_len)
            if request.max_tokens is not None and writers["train"].tokens >= request.max_tokens:
                return


def summarize_example(tokenizer: Any, report: str, summary: str, seq_len: int, max_summary: int):
    """(input_ids, loss_mask), both (seq_len,): summarize_prompt(report truncated to fit) + " " + summary
    truncated to `max_summary` tokens + EOS, then EOS padding. The loss mask is true on the summary and its
    EOS only (the paper masks the prompt). None if not even an empty document fits."""
    eos = tokenizer.eos_token_id
    answer = [*tokenizer(" " + summary, add_special_tokens=False)["input_ids"][:max_summary], eos]
    frame = len(tokenizer(prompts.summarize_prompt(""), add_special_tokens=False)["input_ids"])
    budget = seq_len - len(answer) - frame
    if budget < 0:
        return None
    doc_ids = tokenizer(report, add_special_tokens=False)["input_ids"]
    while True:  # decode the truncated document so the prompt is built from text, as at evaluation time
        text = tokenizer.decode(doc_ids[:budget])
        prompt = tokenizer(prompts.summarize_prompt(text), add_special_tokens=False)["input_ids"]
        if len(prompt) + len(answer) <= seq_len or budget == 0:
            break
        budget = max(0, budget - (len(prompt) + len(answer) - seq_len))
    if len(prompt) + len(answer) > seq_len:
        return None
    ids = np.full(seq_len, eos, dtype=np.int64)
    ids[: len(prompt) + len(answer)] = prompt + answer
    mask = np.zeros(seq_len, dtype=bool)
    mask[len(prompt) : len(prompt) + len(answer)] = True
    return ids, mask


def _pack_summaries(request: DataRequest, tokenizer: Any, writers: dict[str, _Writer]) -> None:
    fields = (request.report_field, request.summary_field)
    for record in load_records(request.data, fields, request.split):
        report, summary = record[request.report_field], record[request.summary_field]
        example = summarize_example(tokenizer, report, summary, request.seq_len, request.max_summary_tokens)
        if example is None:
            continue
        split = "val" if is_validation(report, request.val_fraction) else "train"
        writers[split].row(*example)
        writers[split].tokens += int(example[1].sum())
        if request.max_tokens is not None and writers["train"].tokens >= request.max_tokens:
            return
