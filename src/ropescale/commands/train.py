"""`ropescale pretrain` and `ropescale train`: load (or build) the model and tokenizer, hand them to a
`TrainRun` (train/run.py), and format its result."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import PretrainConfig, TrainConfig
from ..data.corpora import load_documents
from ..data.passkey import passkey_text
from ..data.positions import Positions
from ..models import compat, rope_state
from ..models.prepare import prepare_model
from ..models.tiny import build_tiny, tiny_config, train_tokenizer
from ..train import dist
from ..train.lora import add_lora
from ..train.run import Trainee, TrainResult, TrainRun, training_positions

__all__ = ["TrainResult", "format_train", "run_pretrain", "run_train"]


def run_train(cfg: TrainConfig) -> TrainResult:
    """Fine-tune MODEL at --seq-len with the scaling given by --method/--factor (the paper's recipe)."""
    run = TrainRun.prepare(cfg, Trainee(cfg.model, cfg.objective, cfg.lora), "train")
    torch.manual_seed(cfg.seed)  # dropout and LoRA's initialisation follow --seed (the same on every rank)
    load = dataclasses.replace(cfg.load, dtype="float32") if cfg.load.dtype == "auto" else cfg.load
    if run.d.sharded:  # each rank reads the model on CPU; fully_shard moves its shard to the device
        load = dataclasses.replace(load, device="cpu")
    lm, run.tokenizer, run.spec = prepare_model(
        cfg.model,
        load,
        cfg.rope,
        check=lambda plan: training_positions(cfg, plan.spec, plan.max_position_embeddings),
    )
    run.positions = training_positions(cfg, run.spec, int(lm.config.max_position_embeddings))
    if cfg.memory.activation_checkpointing:
        compat.set_activation_checkpointing(lm, True, cfg.memory.checkpoint_every_n_layers)
    run.model = add_lora(lm, cfg.lora.rank, cfg.lora.alpha, cfg.lora.targets) if cfg.lora.enabled else lm
    with run.open():
        return run.fit_and_save()


def run_pretrain(cfg: PretrainConfig) -> TrainResult:
    """Train the `tiny` model and its tokenizer from scratch at window L = --seq-len."""
    shape = dict(window=cfg.seq_len, **dataclasses.asdict(cfg.shape))
    tiny_config(cfg.tokenizer.vocab_size, **shape)  # refuses a bad shape before the tokenizer is trained
    run = TrainRun.prepare(cfg, Trainee("tiny"), "pretrain")
    with run.open():
        run.tokenizer = _pretrain_tokenizer(cfg, run.start.work, run.d)
        config = tiny_config(len(run.tokenizer), eos_token_id=run.tokenizer.eos_token_id, **shape)
        run.model = build_tiny(config, cfg.seed)
        if cfg.memory.activation_checkpointing:
            compat.set_activation_checkpointing(run.model, True, cfg.memory.checkpoint_every_n_layers)
        run.positions = Positions(target_window=cfg.seq_len)
        run.spec = rope_state(run.model.config).spec
        return run.fit_and_save()


def _pretrain_tokenizer(cfg: PretrainConfig, work: Path, d: dist.Dist) -> Any:
    """Train the BPE tokenizer on the corpus (plus passkey documents when they are mixed in), or reuse the
    one saved when this run started (--resume). Rank 0 trains it, the others read it back."""
    from transformers import PreTrainedTokenizerFast

    saved = work / "tokenizer"
    if d.main and not (saved / "tokenizer.json").is_file():
        texts = load_documents(cfg.data.source, cfg.data.text_field, cfg.data.split)
        if cfg.passkey.fraction > 0:  # the prompt is part of the training text, so the tokenizer sees it
            samples = [passkey_text(10000 + 7919 * i % 90000, 97 * i % 800, 61 * i % 800) for i in range(200)]
            texts = _chain(samples, texts)
        tok = train_tokenizer(texts, cfg.tokenizer.vocab_size, cfg.tokenizer.tokenizer_chars)
        tmp = Path(tempfile.mkdtemp(prefix=".tokenizer.tmp-", dir=work))
        tok.save_pretrained(tmp)
        tmp.chmod(0o755)
        os.replace(tmp, saved)
    dist.wait_for_main(d)
    return PreTrainedTokenizerFast.from_pretrained(saved)


def _chain(first: list[str], rest: Any) -> Any:
    yield from first
    yield from rest


def format_train(r: TrainResult) -> str:
    if r.get("rank", 0) != 0:  # under torchrun, one summary (rank 0's) is enough
        return ""
    s = r["scaling"]
    val = f"{r['val_loss']:.4f}" if r.get("val_loss") is not None else "n/a (no validation documents)"
    p = r["positions"]
    covered = (
        f"PoSE ids in [0, {p['target_window']}) from {p['chunks']} chunks (largest trained on: "
        f"{r['max_position_id']})"
        if p["scheme"] == "pose"
        else f"contiguous ids 0..{r['seq_len'] - 1} of the {p['window']}-token window"
    )
    lines = [
        f"wrote {r['out']} ({r['command']}, {r['parameters']:,} parameters, {r['trainable_parameters']:,} trained)",
        f"  rope {s['rope_type']} x{s['factor']:g}; {r['steps']} steps of {r['batch_size']} x {r['seq_len']} tokens "
        f"on {r['processes']} process(es)"
        + (f", resumed from {r['resumed_from']}" if r["resumed_from"] else ""),
        f"  positions: {covered}; validation at contiguous ids 0..{r['seq_len'] - 1}",
        f"  final train loss {r['final_loss']:.4f}, validation loss {val}",
        f"  {r['wall_s']:.1f} s, {r['tokens_per_s'] or 0:.0f} tokens/s, peak memory {r['peak_memory_mb'] or 0:.0f} MB",
        f"  data: {r['train_sequences']} training / {r['val_sequences']} validation sequences; "
        f"per-step metrics in {r['out']}/metrics.jsonl",
    ]
    lines += [f"  skipped damaged checkpoint {c}" for c in r.get("skipped_checkpoints", [])]
    lines += [f"  removed what an interrupted run left: {c}" for c in r.get("cleaned", [])]
    return "\n".join(lines)
