"""The gradient of one training step, before the optimizer, equals transformers' own full-batch
`loss.backward()` (mean token cross-entropy of the whole global batch), in one process and in two (FSDP2,
gloo), with micro-batches and ranks that score very different numbers of tokens; and the validation loss
equals an independent sum over the validation sequences divided by their tokens, with padding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from . import grad_worker as w


def _reference():
    """transformers' loss on the whole global batch at once, its gradients, and the validation loss as
    a sum over every validation sequence (full logits) divided by the number of scored targets."""
    lm = w.build_model()
    ids, labels = w.train_batch()
    loss = lm(input_ids=ids, labels=labels).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in lm.named_parameters()}
    total, count = 0.0, 0
    with torch.no_grad():
        for vids, vlabels in w.val_batches():
            for row in range(len(vids)):
                logits = lm(input_ids=vids[row : row + 1]).logits[0, :-1].double()
                target = vlabels[row, 1:]
                total += float(F.cross_entropy(logits, target, ignore_index=-100, reduction="sum"))
                count += int((target != -100).sum())
    return float(loss.detach()), grads, total / count


def _check(result):
    want_loss, want_grads, want_val = _reference()
    assert result["loss"] == pytest.approx(want_loss, rel=1e-5)
    assert set(result["grads"]) == set(want_grads)
    for name, g in want_grads.items():
        torch.testing.assert_close(result["grads"][name], g, rtol=1e-4, atol=1e-7, msg=name)
    assert result["val_loss"] == pytest.approx(want_val, rel=1e-5)


def test_the_batch_really_is_uneven():
    """The premise: micro-batches (2 rows) and ranks (4 rows) score different numbers of tokens."""
    _, labels = w.train_batch()
    scored = (labels[:, 1:] != -100).sum(1).tolist()
    assert scored == w.SCORED
    per_micro = [sum(scored[i : i + w.MICRO]) for i in range(0, len(scored), w.MICRO)]
    assert per_micro == [6, 46, 20, 2] and [sum(scored[:4]), sum(scored[4:])] == [52, 22]
    assert all(n % (2 * w.MICRO) for n in w.VAL_ROWS)  # the validation batches need padding


def test_one_process_gradient_equals_full_batch_backward(tmp_path):
    from ropescale.train.dist import Dist

    _check(w.one_step(Dist(0, 1, 0, torch.device("cpu")), tmp_path))


def test_two_process_fsdp_gradient_equals_full_batch_backward(tmp_path):
    out = tmp_path / "two.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    src = str(Path(__file__).parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([p for p in (env.get("PYTHONPATH"), src) if p])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(w.__file__)), str(out)]  # fmt: skip
    # its own session, so a run that hangs (the timeout only bounds that) is killed with its workers
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        _, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    _check(torch.load(out, weights_only=True))
