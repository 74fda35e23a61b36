"""Checkpoints and resume (SIGKILL mid-run, refused mismatches, NaN), and 2-process FSDP on CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ropescale.commands.train import run_train
from ropescale.config import RopeScaling
from ropescale.train import checkpoint

from .conftest import metrics, train_cfg

RUN = dict(steps=20, batch_size=16, micro_batch_size=4, save_every=2, keep_checkpoints=2)
# the window is 32 -> 64 (PI x2): contiguous trains on 64-token sequences, PoSE on 32 spanning [0, 64)
SCHEMES = {"contiguous": {}, "pose": {"positions": "pose", "seq_len": 32}}


def _argv(cfg) -> list[str]:
    extra = ["--positions", cfg.positions.scheme] + (["--seq-len", str(cfg.seq_len)] if cfg.seq_len else [])
    return [
        "train", cfg.model, "--data", cfg.data.source, "--out", str(cfg.out), "--method", cfg.rope.rope_type,
        "--factor", str(cfg.rope.factor), "--steps", str(cfg.steps), "--batch-size", str(cfg.batch_size),
        "--micro-batch-size", str(cfg.micro_batch_size), "--lr", str(cfg.optim.lr), "--warmup-steps", "1",
        "--save-every", str(cfg.checkpoints.save_every), "--eval-sequences", "4", "--val-fraction", str(cfg.data.val_fraction),
        *extra,
    ]  # fmt: skip


def _assert_same_weights(a, b):
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert set(wa) == set(wb)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.fixture(scope="module")
def dropout_base(tmp_path_factory, tiny_base):
    """The tiny base model with attention dropout: its training draws from torch's RNG every step, so a
    resume that does not restore the RNG state trains on other dropout masks."""
    out = tmp_path_factory.mktemp("dropout") / "tiny"
    shutil.copytree(tiny_base[0], out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "attention_dropout": 0.25}))
    return out


def _observable(rows) -> list[dict]:
    """Everything a metrics row records except the timings."""
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "peak_memory_mb")} for r in rows]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_resume_after_sigkill_gives_the_same_weights(tmp_path, dropout_base, corpus, scheme):
    """Killed right after step 5 (checkpoints at 2 and 4): --resume redoes step 5 and finishes with the
    uninterrupted run's weights, losses, learning rates and token counts (dropout makes the weights depend
    on the restored RNG state, the schedule's position on the restored scheduler)."""
    base = dropout_base
    run = {**RUN, **SCHEMES[scheme]}
    whole = run_train(train_cfg(base, tmp_path / "whole", corpus, **run))
    cfg = train_cfg(base, tmp_path / "killed", corpus, **run)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROPESCALE_TEST_KILL_AT": "step:5"}
    done = subprocess.run(
        [sys.executable, "-m", "ropescale", *_argv(cfg)], env=env, capture_output=True, text=True, timeout=900
    )  # the timeout only bounds a hung run on a loaded machine; the kill point itself is deterministic
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    running = checkpoint.partial_dir(cfg.out)  # a run trains here until it has finished
    assert [p.name for p in checkpoint.list_checkpoints(running)] == ["step-0000002", "step-0000004"]
    assert [r["step"] for r in metrics(running)] == [1, 2, 3, 4, 5]
    assert not cfg.out.exists()  # killed mid-run: no --out at all
    resumed = run_train(train_cfg(base, tmp_path / "killed", corpus, resume=True, **run))
    assert resumed["resumed_from"].endswith("step-0000004")
    assert _observable(metrics(tmp_path / "killed")) == _observable(metrics(tmp_path / "whole"))
    assert resumed["resumed_from"] and resumed["final_loss"] == whole["final_loss"]
    assert resumed["max_position_id"] == whole["max_position_id"]  # restored with the checkpoint
    _assert_same_weights(tmp_path / "whole", tmp_path / "killed")
    assert [r["step"] for r in metrics(tmp_path / "killed")] == list(range(1, 21))
    assert [p.name for p in checkpoint.list_checkpoints(cfg.out)] == ["step-0000018", "step-0000020"]
    # training on from a finished run (a larger --steps) must keep its setup; a refused one writes nothing
    more = {**RUN, "steps": 22}
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    if scheme == "pose":  # another position scheme is another run
        with pytest.raises(ValueError, match=r"different setup \(positions: checkpoint"):
            run_train(train_cfg(base, cfg.out, corpus, resume=True, **{**more, "seq_len": 32}))
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before
        return

    with pytest.raises(ValueError, match=r"different setup \(rope: checkpoint"):
        run_train(
            train_cfg(
                base,
                cfg.out,
                corpus,
                resume=True,
                **{**more, "rope": RopeScaling("linear", 4.0), "seq_len": 64},
            )
        )
    other = tmp_path / "other.txt"
    other.write_text("Completely different words for this run. " * 400)
    with pytest.raises(ValueError, match=r"different setup \(data: checkpoint"):
        run_train(train_cfg(base, cfg.out, other, resume=True, **more))
    with pytest.raises(ValueError, match=r"different setup \(recipe: checkpoint"):
        run_train(train_cfg(base, cfg.out, corpus, resume=True, **{**more, "lr": 1e-4}))
    with pytest.raises(ValueError, match=r"step-0000020 is at step 20 and --steps is 20: nothing to train"):
        run_train(train_cfg(base, cfg.out, corpus, resume=True, **RUN))
    assert sorted(str(p) for p in tmp_path.rglob("*") if p != other) == before


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
    running = checkpoint.partial_dir(cfg.out)  # kept for --resume; --out is not written
    assert [p.name for p in checkpoint.list_checkpoints(running)] == ["step-0000001", "step-0000002"]
    assert not cfg.out.exists()
    assert [r["step"] for r in metrics(running)] == [1, 2]


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


# before the first checkpoint (start-up, once the data is cached, after the first step), inside a checkpoint
# write and a prune, in the final save and the final swap
KILLS = [
    "start-up:0",
    "data-cache:0",
    "step:1",
    "checkpoint-write:4",
    "checkpoint-prune:6",
    "final-save:8",
    "final-swap:8",
]
SHORT = dict(steps=8, batch_size=16, micro_batch_size=4, save_every=2, keep_checkpoints=2)


def _debris(root) -> list[str]:
    marks = (*checkpoint.DEBRIS, ".partial")
    return sorted(str(p) for p in root.rglob(".*") if any(m in p.name for m in marks))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_base, corpus):
    out = tmp_path_factory.mktemp("whole") / "run"
    return out, run_train(train_cfg(tiny_base[0], out, corpus, **SHORT))


@pytest.mark.slow
@pytest.mark.parametrize("point", KILLS)
def test_sigkill_anywhere_then_resume_gives_the_same_run_and_no_debris(
    tmp_path, tiny_base, corpus, uninterrupted, point
):
    """SIGKILL inside a checkpoint write, a prune, the final save and the final swap: --resume finishes the
    run with the uninterrupted run's weights, and nothing of the interruption is left."""
    whole, summary = uninterrupted
    cfg = train_cfg(tiny_base[0], tmp_path / "killed", corpus, **SHORT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROPESCALE_TEST_KILL_AT": point}
    done = subprocess.run(
        [sys.executable, "-m", "ropescale", *_argv(cfg), "--keep-checkpoints", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert not cfg.out.exists()  # --out appears only complete
    resumed = run_train(train_cfg(tiny_base[0], cfg.out, corpus, resume=True, **SHORT))
    assert resumed["final_loss"] == summary["final_loss"] and resumed["val_loss"] == summary["val_loss"]
    _assert_same_weights(whole, cfg.out)
    assert [r["step"] for r in metrics(cfg.out)] == list(range(1, 9))
    assert [p.name for p in checkpoint.list_checkpoints(cfg.out)] == ["step-0000006", "step-0000008"]
    assert _debris(tmp_path) == []
    if point.startswith("checkpoint"):  # what the kill left was removed, and the summary says so
        assert resumed["cleaned"], resumed
    if point in KILLS[:3]:  # nothing to continue from: the run started over, and the summary says so
        assert resumed["resumed_from"] is None and "started over by --resume" in " ".join(resumed["cleaned"])
    assert (cfg.out / "config.json").is_file() and (cfg.out / "tokenizer.json").is_file()


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over(
    tmp_path, tiny_base, corpus, uninterrupted, capsys
):
    """What a kill before the first checkpoint leaves (.OUT.partial with the run's record and a token cache,
    no checkpoints/step-*): `--resume` said "no checkpoint" and the plain command "pass --resume", in a
    circle. Now `--resume` starts the run over and ends with the uninterrupted run's weights; the plain
    command still refuses to replace the unfinished run silently."""
    from ropescale.cli import main

    whole, _ = uninterrupted
    out = tmp_path / "killed"
    work = checkpoint.partial_dir(out)
    (work / ".cache").mkdir(parents=True)
    (work / "train_config.json").write_text("{}")
    (work / "checkpoints").mkdir()
    argv = _argv(train_cfg(tiny_base[0], out, corpus, **SHORT))
    assert main(argv) == 2 and "pass --resume to continue it" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0, capsys.readouterr().err
    _assert_same_weights(whole, out)
    assert not work.exists() and [p.name for p in tmp_path.iterdir()] == ["killed"]


def _interrupt_at(monkeypatch, point):
    """In-process stand-in for a kill: an exception at the named point (the run keeps what it wrote)."""
    from ropescale.train import dist

    def hook(name, step):
        if f"{name}:{step}" == point:
            raise KeyboardInterrupt

    monkeypatch.setattr(dist, "test_kill_point", hook)


@pytest.mark.parametrize("victim", ["model.safetensors", "optimizer.pt", "rng.pt", "state.json"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(
    tmp_path, tiny_base, corpus, uninterrupted, monkeypatch, victim
):
    whole, summary = uninterrupted
    cfg = train_cfg(tiny_base[0], tmp_path / "run", corpus, **SHORT)
    _interrupt_at(monkeypatch, "final-swap:8")
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg)
    monkeypatch.undo()
    newest = checkpoint.checkpoint_dir(checkpoint.partial_dir(cfg.out), 8)
    damaged = newest / victim
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated, as by a full disk
    resumed = run_train(train_cfg(tiny_base[0], cfg.out, corpus, resume=True, **SHORT))
    assert resumed["resumed_from"].endswith("step-0000006")
    (skipped,) = resumed["skipped_checkpoints"]
    assert skipped.startswith(f"{newest} ({victim} has 100 bytes, the manifest says")
    _assert_same_weights(whole, cfg.out)
    assert resumed["final_loss"] == summary["final_loss"]


def test_a_damaged_metrics_file_is_named(tmp_path, tiny_base, corpus, monkeypatch):
    cfg = train_cfg(tiny_base[0], tmp_path / "run", corpus, **SHORT)
    _interrupt_at(monkeypatch, "final-save:8")
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg)
    monkeypatch.undo()
    log = checkpoint.partial_dir(cfg.out) / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(["{garbage", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=rf"--resume: {log} line 1 is damaged"):
        run_train(train_cfg(tiny_base[0], cfg.out, corpus, resume=True, **SHORT))
    log.write_text("\n".join([*lines, '{"step": 9, "lo']))  # a last line cut short by a kill is dropped
    resumed = run_train(train_cfg(tiny_base[0], cfg.out, corpus, resume=True, **SHORT))
    assert [r["step"] for r in metrics(cfg.out)] == list(range(1, 9)) and resumed["steps"] == 8


def test_weights_that_are_not_finite_are_never_a_checkpoint(tmp_path, tiny_base, corpus, monkeypatch):
    """Divergence that reaches the weights before the loss: step 2 leaves a NaN weight that the loss of step
    2 cannot show. The step-2 checkpoint is refused, and the message names step 1 as the last good one."""
    from ropescale.train import loop

    real = loop.train_step

    def poisoning(job):
        loss = real(job)
        if job.step == 1:  # inside step 2, after its update
            with torch.no_grad():
                next(job.root.parameters()).view(-1)[0] = float("nan")
        return loss

    monkeypatch.setattr(loop, "train_step", poisoning)
    cfg = train_cfg(tiny_base[0], tmp_path / "nan", corpus, steps=4, save_every=1)
    with pytest.raises(ValueError, match=r"weights are not finite after step 2 .*step-0000001 \(--resume"):
        run_train(cfg)
    running = checkpoint.partial_dir(cfg.out)
    assert [p.name for p in checkpoint.list_checkpoints(running)] == ["step-0000001"]
