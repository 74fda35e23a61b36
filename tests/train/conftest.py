"""A tiny pre-trained model (built once per session by `ropescale pretrain`) and a small corpus."""

from __future__ import annotations

import json

import pytest

from ropescale.config import PretrainConfig, TrainConfig, build

TINY = dict(vocab_size=320, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is faster, and on a busy machine two OpenMP threads spin-wait on
    each other for milliseconds per op. Subprocesses get OMP_NUM_THREADS=1 for the same reason (and so a
    killed-and-resumed run does the same arithmetic as the in-process one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """60 short documents of plain English (a few thousand tokens)."""
    from ropescale.data import load_documents

    folder = tmp_path_factory.mktemp("corpus")
    play = next(load_documents("shakespeare"))[:120_000]
    for i in range(60):
        (folder / f"{i:02d}.txt").write_text(play[i * 2000 : (i + 1) * 2000])
    return folder


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, corpus):
    """(directory, pretrain result): the tiny model pre-trained for 12 steps at window 32."""
    from ropescale.commands.train import run_pretrain

    out = tmp_path_factory.mktemp("base") / "tiny"
    cfg = build(
        PretrainConfig, recipe="pretrain", out=out, data=str(corpus), seq_len=32, steps=12, batch_size=8,
        micro_batch_size=8, lr=5e-3, warmup_steps=2, save_every=0, **TINY,
    )  # fmt: skip
    return out, run_pretrain(cfg)


def train_cfg(model, out, data, **kw) -> TrainConfig:
    """Small fine-tuning runs: window 32 -> 64 with PI unless told otherwise (`kw`: flags' names)."""
    from ropescale.config import RopeScaling

    base = dict(
        model=str(model), out=out, data=str(data), rope=RopeScaling("linear", 2.0), steps=3, batch_size=4,
        micro_batch_size=2, lr=1e-3, warmup_steps=1, save_every=0, eval_sequences=4,
    )  # fmt: skip
    base.update(kw)
    return build(TrainConfig, base)


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
