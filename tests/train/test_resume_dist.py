"""Checkpoints and resume (SIGKILL mid-run, refused mismatches, NaN), and 2-process FSDP on CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from ropescale.config import RopeScaling
from ropescale.train import checkpoint
from ropescale.train.run import run_train

from .conftest import metrics, train_cfg

RUN = dict(steps=20, batch_size=16, micro_batch_size=4, save_every=2, keep_checkpoints=2)
# the window is 32 -> 64 (PI x2): contiguous trains on 64-token sequences, PoSE on 32 spanning [0, 64)
SCHEMES = {"contiguous": {}, "pose": {"positions": "pose", "seq_len": 32}}


def _argv(cfg) -> list[str]:
    extra = ["--positions", cfg.positions] + (["--seq-len", str(cfg.seq_len)] if cfg.seq_len else [])
    return [
        "train", cfg.model, "--data", cfg.data, "--out", str(cfg.out), "--method", cfg.rope.rope_type,
        "--factor", str(cfg.rope.factor), "--steps", str(cfg.steps), "--batch-size", str(cfg.batch_size),
        "--micro-batch-size", str(cfg.micro_batch_size), "--lr", str(cfg.lr), "--warmup-steps", "1",
        "--save-every", str(cfg.save_every), "--eval-sequences", "4", "--val-fraction", str(cfg.val_fraction),
        *extra,
    ]  # fmt: skip


def _assert_same_weights(a, b):
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert set(wa) == set(wb)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.mark.parametrize("scheme", SCHEMES)
def test_resume_after_sigkill_gives_the_same_weights(tmp_path, tiny_base, corpus, scheme):
    base, _ = tiny_base
    run = {**RUN, **SCHEMES[scheme]}
    whole = run_train(train_cfg(base, tmp_path / "whole", corpus, **run))
    cfg = train_cfg(base, tmp_path / "killed", corpus, **run)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ropescale", *_argv(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.time() + 120
        while not (checkpoint.checkpoint_dir(cfg.out, 4) / "state.json").exists():
            assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (cfg.out / "config.json").exists()  # killed mid-run: no final model
    resumed = run_train(train_cfg(base, tmp_path / "killed", corpus, resume=True, **run))
    assert resumed["resumed_from"] and resumed["final_loss"] == whole["final_loss"]
    assert resumed["max_position_id"] == whole["max_position_id"]  # restored with the checkpoint
    _assert_same_weights(tmp_path / "whole", tmp_path / "killed")
    assert [r["step"] for r in metrics(tmp_path / "killed")] == list(range(1, 21))
    assert [p.name for p in checkpoint.list_checkpoints(cfg.out)] == ["step-0000018", "step-0000020"]
    if scheme == "pose":  # another position scheme is another run
        with pytest.raises(ValueError, match=r"different setup \(positions: checkpoint"):
            run_train(train_cfg(base, cfg.out, corpus, resume=True, **{**RUN, "seq_len": 32}))
        return

    with pytest.raises(ValueError, match=r"different setup \(rope: checkpoint"):
        run_train(
            train_cfg(
                base,
                cfg.out,
                corpus,
                resume=True,
                **{**RUN, "rope": RopeScaling("linear", 4.0), "seq_len": 64},
            )
        )
    other = tmp_path / "other.txt"
    other.write_text("Completely different words for this run. " * 400)
    with pytest.raises(ValueError, match=r"different setup \(data: checkpoint"):
        run_train(train_cfg(base, cfg.out, other, resume=True, **RUN))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_base, corpus, monkeypatch):
    from ropescale.train import loss as loss_module

    base, _ = tiny_base
    real, calls = loss_module.chunked_lm_loss, []

    def poisoned(*args, **kwargs):
        total, count = real(*args, **kwargs)
        calls.append(1)
        return (total * float("nan") if len(calls) > 4 else total), count  # step 3's first micro-batch

    monkeypatch.setattr(loss_module, "chunked_lm_loss", poisoned)
    cfg = train_cfg(base, tmp_path / "nan", corpus, steps=5, save_every=1, eval_sequences=4)
    with pytest.raises(ValueError, match=r"loss is nan at step 3: .*step-0000002"):
        run_train(cfg)
    assert [p.name for p in checkpoint.list_checkpoints(cfg.out)] == ["step-0000001", "step-0000002"]
    assert not (cfg.out / "config.json").exists()
    assert [r["step"] for r in metrics(cfg.out)] == [1, 2]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_two_process_fsdp_matches_one_process(tmp_path, tiny_base, corpus, scheme):
    base, _ = tiny_base
    kw = dict(steps=3, batch_size=8, micro_batch_size=2, save_every=3, val_fraction=0.1, **SCHEMES[scheme])
    single = train_cfg(base, tmp_path / "one", corpus, **kw)
    run_train(single)
    two = train_cfg(base, tmp_path / "two", corpus, **kw)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ropescale", *_argv(two)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on 2 process(es)" in done.stdout
    one_loss = [r["loss"] for r in metrics(tmp_path / "one")]
    two_loss = [r["loss"] for r in metrics(tmp_path / "two")]
    assert two_loss == pytest.approx(one_loss, rel=1e-5)
    assert metrics(tmp_path / "two")[-1]["val_loss"] == pytest.approx(
        metrics(tmp_path / "one")[-1]["val_loss"], rel=1e-5
    )
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(tmp_path / "one").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "two").state_dict()  # a full, normal checkpoint
    assert set(a) == set(b)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-6, msg=name)
    assert (checkpoint.checkpoint_dir(tmp_path / "two", 3) / "model.safetensors").is_file()
