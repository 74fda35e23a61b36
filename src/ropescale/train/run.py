"""`ropescale pretrain` and `ropescale train`: load (or build) a model, scale it, pack the data, train, save.

model --scale_model--> CausalLMLoss (chunked CE) --fully_shard (torchrun)--> fit --> transformers dir
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .. import io
from ..config import PretrainConfig, TrainConfig, TrainOptions
from ..data import BatchSampler, DataRequest, PasskeyMaker, pack, validation_batches
from ..data.positions import Positions
from ..models import compat, rope_state
from . import checkpoint, dist, loop
from .loss import CausalLMLoss
from .optim import make_optimizer, make_scheduler


def _start_out(cfg: TrainOptions) -> Path | None:
    """Check --out before slow work; returns the checkpoint to resume from (if --resume)."""
    out = Path(cfg.out)
    if cfg.resume:
        found = checkpoint.latest(out)
        if found is None:
            raise ValueError(f"--resume: no checkpoint in {out}/checkpoints to continue from")
        return found
    io.check_out_dir(out, cfg.overwrite)
    return None


def _clear_out(out: Path) -> None:
    """--overwrite: empty --out (all but the content-addressed token cache) once the model has loaded."""
    if out.is_dir():
        for child in out.iterdir():
            if child.name != ".cache":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)


def run_train(cfg: TrainConfig) -> dict[str, Any]:
    """Fine-tune MODEL at --seq-len with the scaling given by --method/--factor (the paper's recipe)."""
    from ..models.prepare import prepare_model

    resume_from = _start_out(cfg)
    d = dist.init(cfg.load.device)
    load = dataclasses.replace(cfg.load, dtype="float32") if cfg.load.dtype == "auto" else cfg.load
    if d.sharded:  # each rank reads the model on CPU; fully_shard moves its shard to the device
        load = dataclasses.replace(load, device="cpu")
    lm, tokenizer, spec = prepare_model(cfg.model, load, cfg.rope, check=lambda c, s: _positions(cfg, c, s))
    positions = _positions(cfg, lm.config, spec)
    if cfg.overwrite and d.main:
        _clear_out(Path(cfg.out))
    if cfg.activation_checkpointing:
        compat.set_activation_checkpointing(lm, True, cfg.checkpoint_every_n_layers)
    if cfg.lora:
        from .lora import add_lora

        lm = add_lora(lm, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets)
    return _fit_and_save(cfg, lm, tokenizer, spec, d, resume_from, "train", positions)


def _positions(cfg: TrainConfig, config: Any, spec: Any) -> Positions:
    return training_positions(cfg, spec, int(config.max_position_embeddings))


def training_positions(cfg: TrainConfig, spec: Any, window: int) -> Positions:
    """The position-id scheme of a run, checked against the model's window after scaling (before anything
    is written): contiguous ids 0..seq-len-1, or PoSE ids spanning the target window."""
    seq_len = cfg.seq_len or window
    target = cfg.target_window or window
    if spec.rope_type == "dynamic" and cfg.positions == "pose":
        raise ValueError(
            "--positions pose does not go with dynamic NTK (the model's own rope): it rescales by the "
            "largest position id of each batch, so random skips would train every batch at another scaling"
        )
    if seq_len > window:
        raise ValueError(
            f"--seq-len {seq_len} is beyond the model's window after scaling ({window}); raise --factor "
            "or lower --seq-len"
        )
    if target > window:
        raise ValueError(
            f"--target-window {target} is beyond the model's window after scaling ({window}); raise "
            "--factor or lower --target-window"
        )
    if target < seq_len:
        raise ValueError(f"--target-window ({target}) must be >= the sequence length ({seq_len})")
    if cfg.positions == "pose" and seq_len >= target:
        raise ValueError(
            f"--positions pose: the sequences (--seq-len {seq_len}) already cover the target window "
            f"({target}), so there is nothing to skip; lower --seq-len"
        )
    if cfg.pose_chunks > seq_len:
        raise ValueError(f"--pose-chunks ({cfg.pose_chunks}) must be <= the sequence length ({seq_len})")
    return Positions(cfg.positions, cfg.pose_chunks, target)


def run_pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Train the `tiny` model and its tokenizer from scratch at window L = --seq-len."""
    from ..models.tiny import build_tiny, tiny_config

    resume_from = _start_out(cfg)
    d = dist.init(cfg.load.device)
    tokenizer = _pretrain_tokenizer(cfg, d)
    config = tiny_config(
        len(tokenizer),
        window=cfg.seq_len,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        num_kv_heads=cfg.num_kv_heads,
        intermediate_size=cfg.intermediate_size,
        rope_theta=cfg.rope_theta,
        eos_token_id=tokenizer.eos_token_id,
        head_dim=cfg.head_dim,
    )
    lm = build_tiny(config, cfg.seed)
    if cfg.activation_checkpointing:
        compat.set_activation_checkpointing(lm, True, cfg.checkpoint_every_n_layers)
    positions = Positions(target_window=cfg.seq_len)
    return _fit_and_save(
        cfg, lm, tokenizer, rope_state(lm.config).spec, d, resume_from, "pretrain", positions
    )


def _pretrain_tokenizer(cfg: PretrainConfig, d: dist.Dist) -> Any:
    """Train the BPE tokenizer on the corpus (plus passkey documents when they are mixed in), or reuse the
    one saved when this run started (--resume). Rank 0 trains it, the others read it back."""
    from transformers import PreTrainedTokenizerFast

    from ..data.corpora import load_documents
    from ..data.passkey import passkey_text
    from ..models.tiny import train_tokenizer

    saved = Path(cfg.out) / "tokenizer"
    if d.main and not (saved / "tokenizer.json").is_file():
        texts = load_documents(cfg.data, cfg.text_field, cfg.split)
        if cfg.passkey_fraction > 0:  # the prompt is part of the training text, so the tokenizer sees it
            samples = [passkey_text(10000 + 7919 * i % 90000, 97 * i % 800, 61 * i % 800) for i in range(200)]
            texts = _chain(samples, texts)
        tok = train_tokenizer(texts, cfg.vocab_size, cfg.tokenizer_chars)
        if cfg.overwrite:
            _clear_out(Path(cfg.out))
        tmp = Path(tempfile.mkdtemp(prefix=".tokenizer.tmp-", dir=_ensure(Path(cfg.out))))
        tok.save_pretrained(tmp)
        tmp.chmod(0o755)
        os.replace(tmp, saved)
    dist.barrier(d)
    return PreTrainedTokenizerFast.from_pretrained(saved)


def _chain(first: list[str], rest: Any) -> Any:
    yield from first
    yield from rest


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _data(cfg: TrainOptions, tokenizer: Any, seq_len: int, d: dist.Dist) -> Any:
    request = DataRequest(
        data=cfg.data,
        seq_len=seq_len,
        text_field=cfg.text_field,
        split=cfg.split,
        val_fraction=cfg.val_fraction,
        max_tokens=cfg.max_tokens,
        task=getattr(cfg, "task", "lm"),
        report_field=getattr(cfg, "report_field", "report"),
        summary_field=getattr(cfg, "summary_field", "summary"),
        max_summary_tokens=getattr(cfg, "max_summary_tokens", 1000),
    )
    cache = Path(cfg.cache_dir) if cfg.cache_dir is not None else Path(cfg.out) / ".cache"
    packed = pack(request, tokenizer, cache) if d.main else None
    dist.barrier(d)
    return packed if packed is not None else pack(request, tokenizer, cache)


def _job(
    cfg: TrainOptions, lm: Any, tokenizer: Any, spec: Any, d: dist.Dist, seq_len: int, positions: Positions
) -> loop.Job:
    if cfg.batch_size % (cfg.micro_batch_size * d.world):
        raise ValueError(
            f"--batch-size ({cfg.batch_size}) must be a multiple of --micro-batch-size x processes "
            f"({cfg.micro_batch_size} x {d.world})"
        )
    packed = _data(cfg, tokenizer, seq_len, d)
    maker = None
    if cfg.passkey_fraction > 0:
        answer = cfg.passkey_loss == "answer"
        maker = PasskeyMaker.for_tokenizer(tokenizer, seq_len, cfg.passkey_min_fill, answer, cfg.passkey_span)
        if answer:  # whole passkey batches hold rows of the span's length, more of them per step
            spans = [maker.span]
            while cfg.passkey_span_mix and spans[-1] * 2 <= seq_len:
                spans.append(spans[-1] * 2)
            maker = tuple(dataclasses.replace(maker, seq_len=n, span=n) for n in spans)
    sampler = BatchSampler(
        packed,
        cfg.batch_size,
        cfg.seed,
        maker,
        cfg.passkey_fraction,
        cfg.passkey_loss == "answer",
        positions,
    )
    root = CausalLMLoss(lm, cfg.loss_chunk)
    gpu_bf16 = d.device.type == "cuda" and cfg.load.dtype == "auto"  # fp32 weights, bf16 compute
    dist.shard(root, lm, d, torch.bfloat16 if gpu_bf16 and d.sharded else None)
    if not d.sharded:
        root.to(d.device)
    optimizer = make_optimizer(root, cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    scheduler = make_scheduler(
        optimizer, cfg.warmup_steps, cfg.warmup_start, cfg.schedule, cfg.steps, cfg.min_lr_ratio
    )
    return loop.Job(
        root=root,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=sampler,
        val=validation_batches(packed, cfg.micro_batch_size * d.world, cfg.eval_sequences),
        d=d,
        out=Path(cfg.out),
        steps=cfg.steps,
        micro_batch_size=cfg.micro_batch_size,
        max_grad_norm=cfg.max_grad_norm,
        save_every=cfg.save_every,
        keep=cfg.keep_checkpoints,
        eval_every=cfg.eval_every,
        fingerprint=_fingerprint(cfg, spec, packed, seq_len, positions),
        autocast_dtype=torch.bfloat16 if gpu_bf16 and not d.sharded else None,
    )


def _fingerprint(
    cfg: TrainOptions, spec: Any, packed: Any, seq_len: int, positions: Positions
) -> dict[str, Any]:
    """What a resumed run must share with the checkpoint for its batches and positions to be the same."""
    return {
        "model": getattr(cfg, "model", "tiny"),
        "rope": spec.to_dict(),
        "data": packed.fingerprint,
        "seq_len": seq_len,
        "batch_size": cfg.batch_size,
        "passkey_fraction": cfg.passkey_fraction,
        "passkey_loss": cfg.passkey_loss,
        "passkey_min_fill": cfg.passkey_min_fill,
        "passkey_span": cfg.passkey_span,
        "passkey_span_mix": cfg.passkey_span_mix,
        "seed": cfg.seed,
        "lora": getattr(cfg, "lora", False),
        "positions": positions.fingerprint(),
    }


def _fit_and_save(cfg, lm, tokenizer, spec, d, resume_from, command, positions) -> dict[str, Any]:
    seq_len = cfg.seq_len or int(lm.config.max_position_embeddings)
    trainable = sum(p.numel() for p in lm.parameters() if p.requires_grad)
    try:
        job = _job(cfg, lm, tokenizer, spec, d, seq_len, positions)
        out = Path(cfg.out)
        if resume_from is not None:
            loop.restore(job, resume_from)
        if d.main:
            io.write_json(
                out / "train_config.json",
                {"command": command, "config": cfg, "environment": io.environment()},
            )
        dist.barrier(d)
        result = loop.fit(job)
        saved = _save_final(job, lm, tokenizer, cfg, d)
    finally:
        dist.close(d)
    packed = job.sampler.packed
    summary = {
        "command": command,
        "out": str(cfg.out),
        "model": getattr(cfg, "model", "tiny"),
        "parameters": saved.get("parameters"),
        "trainable_parameters": trainable,
        "scaling": spec.to_dict(),
        "seq_len": seq_len,
        # validation always runs with contiguous ids at the training length
        "positions": {**positions.describe(seq_len), "validation": [0, seq_len - 1]},
        "batch_size": cfg.batch_size,
        "processes": d.world,
        "rank": d.rank,
        "resumed_from": str(resume_from) if resume_from else None,
        "train_sequences": int(packed.meta["train_sequences"]),
        "val_sequences": int(packed.meta["val_sequences"]),
        **result,
    }
    if d.main:
        io.write_json(
            Path(cfg.out) / "ropescale.json", {**summary, "config": cfg, "environment": io.environment()}
        )
    return summary


def _final_model(job: loop.Job, lm: Any, cfg: Any, state: dict[str, torch.Tensor]) -> Any:
    """The model to save on rank 0: the live one when it is whole, else rebuilt from the full state."""
    from transformers import AutoModelForCausalLM

    state = {k.removeprefix("lm."): v for k, v in state.items()}
    config = lm.config
    if getattr(cfg, "lora", False):
        from .lora import merged

        model = merged(config, state, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets)
    elif not job.d.sharded:
        return lm
    else:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        model.to_empty(device="cpu")
        model.tie_weights()  # to_empty gives tied parameters separate storage
        model.load_state_dict(state, strict=True)
    compat.rebuild_rotary(model)  # rotary buffers are not in the state dict
    return model


def _save_final(job: loop.Job, lm: Any, tokenizer: Any, cfg: Any, d: dist.Dist) -> dict[str, Any]:
    """Write the final transformers checkpoint into --out (files moved in from a temporary directory)."""
    state = dist.model_state(job.root, d) if (d.sharded or getattr(cfg, "lora", False)) else {}
    info: dict[str, Any] = {}
    if d.main:
        model = _final_model(job, lm, cfg, state)
        if model.supports_gradient_checkpointing:
            compat.set_activation_checkpointing(model, False)
        out = Path(cfg.out)
        tmp = Path(tempfile.mkdtemp(prefix=".final.tmp-", dir=out))
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            compat.legacy_rope_keys(tmp / "config.json")
            names = sorted(p.name for p in tmp.iterdir())
            umask = os.umask(0)
            os.umask(umask)
            for name in [n for n in names if n != "config.json"] + ["config.json"]:  # config last
                (tmp / name).chmod(0o666 & ~umask)  # some writers use private temporary files
                os.replace(tmp / name, out / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        info["parameters"] = sum(p.numel() for p in model.parameters())
    return dist.broadcast(info, d)


def format_train(r: dict[str, Any]) -> str:
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
    return "\n".join(lines)
