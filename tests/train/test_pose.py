"""Training with PoSE position ids: the model uses them, every path passes them, and bad set-ups are refused."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from ropescale.commands import train as run_module
from ropescale.commands.train import run_train
from ropescale.config import LoadOptions, RopeScaling
from ropescale.data.positions import Positions
from ropescale.models.prepare import prepare_model
from ropescale.train.loss import CausalLMLoss, reference_loss

from .conftest import metrics, train_cfg

POSE = dict(positions="pose", seq_len=32)  # window 32 -> 64 (PI x2): 32-token rows spanning [0, 64)
LONGROPE = RopeScaling(
    "longrope", 2.0, short_factor=(1.0,) * 8, long_factor=tuple(1 + i / 7 for i in range(8))
)
METHODS = {
    "none": RopeScaling("none", 2.0),
    "linear": RopeScaling("linear", 2.0),
    "ntk": RopeScaling("ntk", 2.0),
    "yarn": RopeScaling("yarn", 2.0),
    "llama3": RopeScaling("llama3", 2.0),
    "longrope": LONGROPE,
}


def test_the_loss_uses_the_position_ids(tiny_base):
    """CausalLMLoss with PoSE ids equals transformers' own forward given the same position_ids (full
    logits), and differs from the contiguous forward."""
    lm, _, _ = prepare_model(str(tiny_base[0]), LoadOptions(dtype="float32"), RopeScaling("linear", 2.0))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 300, (2, 32), generator=g)
    pos = torch.stack([torch.from_numpy(Positions("pose", 2, 64).draw(32, 0, i)) for i in range(2)])
    assert (pos[:, -1] > 31).any()  # the draw really skips
    ours, n = CausalLMLoss(lm)(ids, ids, pos)
    theirs, m = reference_loss(lm, ids, ids, pos)
    assert n == m
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
    plain, _ = CausalLMLoss(lm)(ids, ids)
    assert abs(plain.item() - ours.item()) > 1e-3


def test_the_loop_hands_the_samplers_positions_to_the_model(tmp_path, tiny_base, corpus, monkeypatch):
    """Through gradient accumulation (4 micro-batches) and activation checkpointing, each forward gets its
    rows' ids from the sampler's global batch."""
    from ropescale.data import sampler as sampler_module

    drawn, seen = [], []
    real_next, real_forward = sampler_module.BatchSampler.next_batch, CausalLMLoss.forward

    def next_batch(self):
        batch = real_next(self)
        drawn.append(batch.positions)
        return batch

    def forward(self, input_ids, labels, position_ids=None):
        seen.append(position_ids)
        return real_forward(self, input_ids, labels, position_ids)

    monkeypatch.setattr(sampler_module.BatchSampler, "next_batch", next_batch)
    monkeypatch.setattr(CausalLMLoss, "forward", forward)
    cfg = train_cfg(tiny_base[0], tmp_path / "run", corpus, steps=2, batch_size=8, micro_batch_size=2, **POSE)
    assert cfg.memory.activation_checkpointing
    result = run_train(cfg)
    train_seen = [p for p in seen if p is not None]  # validation runs with contiguous ids (None)
    assert len(drawn) == 2 and len(train_seen) == 8
    assert torch.equal(torch.cat(train_seen[:4]), drawn[0]) and torch.equal(
        torch.cat(train_seen[4:]), drawn[1]
    )
    assert result["max_position_id"] == max(int(p.max()) for p in drawn) > 31
    saved = json.loads((cfg.out / "ropescale.json").read_text())
    assert saved["positions"] == {
        "scheme": "pose", "chunks": 2, "target_window": 64, "position_ids": [0, 63], "sequence_tokens": 32,
        "validation": [0, 31],
    }  # fmt: skip


def test_pose_with_no_skips_is_the_contiguous_run(tmp_path, tiny_base, corpus, monkeypatch):
    """Skips forced to 0 (a target window equal to the sequence) give explicit ids 0..T-1: bit for bit the
    run with the model's own positions. A real PoSE run differs."""
    kw = dict(steps=3, seq_len=32)
    run_train(train_cfg(tiny_base[0], tmp_path / "plain", corpus, **kw))
    monkeypatch.setattr(run_module, "training_positions", lambda cfg, spec, window: Positions("pose", 2, 32))
    run_train(train_cfg(tiny_base[0], tmp_path / "zero", corpus, **kw))
    monkeypatch.undo()
    run_train(train_cfg(tiny_base[0], tmp_path / "pose", corpus, **{**kw, **POSE}))
    plain, zero, pose = (
        load_file(str(tmp_path / n / "model.safetensors")) for n in ("plain", "zero", "pose")
    )
    assert all(torch.equal(plain[k], zero[k]) for k in plain)
    assert not all(torch.equal(plain[k], pose[k]) for k in plain)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_with_pose(tmp_path, tiny_base, corpus, method):
    result = run_train(
        train_cfg(tiny_base[0], tmp_path / method, corpus, rope=METHODS[method], steps=2, **POSE)
    )
    assert result["positions"]["scheme"] == "pose" and 31 < result["max_position_id"] < 64
    assert torch.isfinite(torch.tensor(result["final_loss"]))


def test_lora_and_passkey_rehearsal_get_pose_ids(tmp_path, tiny_base, corpus):
    """Passkey rows get PoSE ids too (so the key-to-question distance spans the target window). The prompt
    needs ~180 tokens here: window 32 -> 512 (PI x16), 256-token rows spanning [0, 512)."""
    cfg = train_cfg(
        tiny_base[0], tmp_path / "lora", corpus, rope=RopeScaling("linear", 16.0), steps=3, lora=True,
        passkey_fraction=0.5, passkey_loss="answer", positions="pose", seq_len=256,
    )  # fmt: skip
    result = run_train(cfg)
    assert 255 < result["max_position_id"] < 512 and len(metrics(cfg.out)) == 3


BAD = [
    (["--positions", "skippy"], "--positions must be one of contiguous, pose"),
    (
        ["--positions", "pose", "--seq-len", "32", "--pose-chunks", "0"],
        "--pose-chunks must be an integer >= 1",
    ),
    (
        ["--positions", "pose", "--seq-len", "32", "--pose-chunks", "33"],
        "--pose-chunks (33) must be <= --seq-len",
    ),
    (["--positions", "pose"], "already cover the target window (64)"),
    (["--positions", "pose", "--seq-len", "48", "--target-window", "40"], "--target-window (40) must be >="),
    (["--positions", "pose", "--seq-len", "32", "--target-window", "128"], "--target-window 128 is beyond"),
    (["--target-window", "64"], "--target-window goes with --positions pose"),
    (["--seq-len", "128"], "--seq-len 128 is beyond the model's window after scaling (64)"),
    (["--positions", "pose", "--seq-len", "16", "--method", "dynamic"], "does not go with --method dynamic"),
]


@pytest.mark.parametrize(("flags", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_position_setups_exit_2_and_write_nothing(tmp_path, tiny_base, corpus, capsys, flags, message):
    from ropescale.cli import main

    out = tmp_path / "out"
    argv = ["train", str(tiny_base[0]), "--data", str(corpus), "--out", str(out), "--steps", "1"]
    if "--method" not in flags:
        argv += ["--method", "linear", "--factor", "2"]
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main([*argv, *flags]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not out.exists()
