"""Library noise stays off stderr: a bad input is one line with nothing before it, and a good run prints no
library warnings. In a subprocess (the libraries' log handlers write to the process's real stderr), with
`ropescale` imported from wherever this test's copy of it lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ropescale

SRC = str(Path(ropescale.__file__).parents[1])


def _run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    env.pop("ROPESCALE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "ropescale", *argv], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("noise") / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)).save_pretrained(path)
    return path


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        # lm-eval warned twice about the model before the unknown task was found
        (
            ["eval", "harness", "tiny", "--tasks", "no_such_task", "--data", "{corpus}"],
            "--tasks no_such_task",
        ),
        # a base model without RoPE: transformers' config warnings came first
        (["demo", "--model", "tiny", "--quick", "--base", "{gpt2}", "--out", "{tmp}/d"], "--base {gpt2}"),
    ],
)
def test_a_bad_input_is_one_line_with_no_library_noise(argv, expect, gpt2, tmp_path):
    (tmp_path / "c.txt").write_text("some words " * 400)
    paths = {"corpus": tmp_path / "c.txt", "gpt2": gpt2, "tmp": tmp_path}
    done = _run(*(a.format(**paths) for a in argv))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ropescale: error: "), done.stderr
    assert expect.format(**paths) in done.stderr


def test_passkey_beyond_the_window_prints_no_transformers_reminder():
    """generate() past max_position_embeddings: transformers' "friendly reminder" stays off stderr."""
    done = _run(
        "eval",
        "passkey",
        "tiny",
        "--lengths",
        "512",
        "--num-k",
        "1",
        "--trials",
        "1",
        "--allow-extrapolation",
    )
    assert done.returncode == 0, done.stderr
    assert "reminder" not in done.stderr and "warn" not in done.stderr.lower(), done.stderr
