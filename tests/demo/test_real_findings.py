"""The real-model demo's rules (L -> 2L, one 2L window per model), on hand-made numbers: each holds when
the paper's pattern is there and fails on its own counterexample; plus the bucket arithmetic behind them."""

from __future__ import annotations

import math

import pytest

from ropescale.demo.evals import Row, beyond_ppl, first_part_ppl
from ropescale.demo.findings import check_real_findings, format_findings

L, S = 8192, 16384


def _buckets(first: float, second: float) -> list[dict]:
    """Eighths of a 2L window: the first four at ppl `first`, the last four at `second`, 2048 tokens each."""
    return [
        {"from": i * 2048, "to": (i + 1) * 2048, "tokens": 2048, "ppl": first if i < 4 else second}
        for i in range(8)
    ]


SHORT = 4096  # a passkey prompt inside L (where SmolLM2 retrieves)


def _row(key, method, steps, first, second, passkey=None, factor=2.0):
    """passkey: (accuracy at SHORT, accuracy at S)."""
    buckets = _buckets(first, second)
    ppl = {L: first_part_ppl(buckets, L), S: math.sqrt(first * second)}  # geometric mean of equal halves
    return Row(key, key, method, factor, steps, ppl=ppl, by_position={S: buckets},
               depth_accuracy={} if passkey is None else dict(zip((SHORT, S), passkey, strict=True)))  # fmt: skip


def paper_like():
    return {
        "base": _row("base", "none", 0, 20.0, 400.0, (1.0, 0.0), 1.0),
        "pi2": _row("pi2", "linear", 0, 22.0, 30.0),
        "pi_ft": _row("pi_ft", "linear", 20, 20.5, 18.0, (1.0, 1.0)),
        "direct_ft": _row("direct_ft", "none", 20, 21.0, 40.0, (1.0, 0.0)),
    }


def test_bucket_arithmetic():
    b = _buckets(20.0, 400.0)
    assert first_part_ppl(b, L) == pytest.approx(20.0) and beyond_ppl(b, L) == pytest.approx(400.0)
    assert first_part_ppl(b, 2048) == pytest.approx(20.0)
    mixed = [
        {"from": 0, "to": 10, "tokens": 1, "ppl": math.e},
        {"from": 10, "to": 20, "tokens": 3, "ppl": 1.0},
    ]
    assert first_part_ppl(mixed, 20) == pytest.approx(math.exp(1 / 4))  # token-weighted mean log-ppl


def test_paper_pattern_holds_everywhere():
    found = check_real_findings(paper_like(), L, 2)
    assert [f["id"] for f in found] == [1, 2, 3, 4, 5, 6]
    assert all(f["holds"] for f in found), format_findings(found)


BREAKS = {
    1: lambda r: r["base"].by_position.update({S: _buckets(20.0, 30.0)}),  # extrapolation barely hurts
    2: lambda r: r["pi_ft"].ppl.update({S: 21.0}),  # PI fine-tuned worse at 2L than at L
    3: lambda r: r["direct_ft"].ppl.update({S: 15.0}),  # direct as good as PI at the same cost
    4: lambda r: r["pi_ft"].depth_accuracy.update({S: 0.0}),  # PI misses the key at 2L
    5: lambda r: r["pi_ft"].ppl.update({L: 23.0}),  # +15% inside the window
    6: lambda r: r["pi2"].ppl.update({S: 500.0}),  # PI x2 untuned worse than extrapolating
}


@pytest.mark.parametrize("finding", sorted(BREAKS))
def test_each_rule_fails_on_its_own_counterexample(finding):
    rows = paper_like()
    BREAKS[finding](rows)
    holds = {f["id"]: f["holds"] for f in check_real_findings(rows, L, 2)}
    assert holds == {i: i != finding for i in range(1, 7)}


def test_passkey_rule_needs_pi_ahead_of_direct_and_base():
    rows = paper_like()
    rows["direct_ft"].depth_accuracy[S] = 1.0  # direct retrieves as well: (3) still holds (not better)
    holds = {f["id"]: f["holds"] for f in check_real_findings(rows, L, 2)}
    assert holds[3] and holds[4]  # PI only needs to match direct beyond L
    rows["direct_ft"].depth_accuracy[S], rows["pi_ft"].depth_accuracy[S] = 1.0, 0.5
    holds = {f["id"]: f["holds"] for f in check_real_findings(rows, L, 2)}
    assert not holds[3] and not holds[4]
    rows = paper_like()
    rows["base"].depth_accuracy[S] = 1.0  # the base retrieves beyond L too: nothing extended
    assert not {f["id"]: f["holds"] for f in check_real_findings(rows, L, 2)}[4]


def test_passkey_rule_inside_the_window():
    """Inside L the rule asks PI to keep what the base has: the SmolLM2 case (PI fine-tuned garbles the key
    at 4096 where the base retrieves it) fails; a short prompt alone leaves the beyond-L half not measured."""
    rows = paper_like()
    rows["pi_ft"].depth_accuracy[SHORT] = 0.0
    found = {f["id"]: f for f in check_real_findings(rows, L, 2)}
    assert not found[4]["holds"] and "at 4096: PI fine-tuned 0%, base 100%" in found[4]["numbers"]
    for r in ("base", "pi_ft", "direct_ft"):
        del rows[r].depth_accuracy[S]
    rows["pi_ft"].depth_accuracy[SHORT] = 1.0
    found = {f["id"]: f for f in check_real_findings(rows, L, 2)}
    assert found[4]["holds"] is None  # kept inside L, but nothing tested beyond it
    assert found[4]["missing"] == [
        "the passkey beyond L (8192 < length <= 16384) (`ropescale demo --full` tests prompts beyond L)"
    ]
    rows["base"].depth_accuracy[SHORT] = rows["pi_ft"].depth_accuracy[SHORT] = 0.0  # nobody retrieves
    assert not {f["id"]: f["holds"] for f in check_real_findings(rows, L, 2)}[4]


def test_direct_vs_pi_reads_the_passkey_at_sl_only():
    """The `make demo` case before the fix: no passkey at sL, direct retrieves at a prompt inside L where PI
    does not. (3) must not judge on that prompt: with ppl(sL) worse for direct it is not measured (the
    passkey half is missing), and with ppl(sL) better for direct it does not hold."""
    rows = paper_like()
    for r in ("base", "pi_ft", "direct_ft"):
        del rows[r].depth_accuracy[S]
    rows["pi_ft"].depth_accuracy[SHORT], rows["direct_ft"].depth_accuracy[SHORT] = 0.0, 1.0
    three = check_real_findings(rows, L, 2)[2]
    assert three["holds"] is None
    assert "not measured in this run: the passkey at 16384" in three["numbers"]
    assert "passkey at 16384 PI n/a vs direct n/a" in three["numbers"]
    rows["direct_ft"].ppl[S] = 15.0
    assert check_real_findings(rows, L, 2)[2]["holds"] is False


def test_summary_line_puts_extension_beside_its_cost():
    """ppl on [L, sL) is the second half's ppl (400 here), the retention ppl(L) / base ppl(L) as %."""
    from ropescale.demo.markdown import extension_line

    rows = paper_like()
    base, pi = rows["base"], rows["pi_ft"]
    pi.ppl[L] = 21.0  # 5% above the base's 20
    line = extension_line(pi, base, L, S)
    assert (
        line
        == f"ppl(16384) {math.sqrt(20.5 * 18.0):.4g}, on [8192, 16384) 18; ppl(8192) 21 = 105% of the base's"
    )
    assert "on [8192, 16384) 400; ppl(8192) 20 = 100% of the base's" in extension_line(base, base, L, S)
    pi.by_position.clear()
    assert "on [8192, 16384) -;" in extension_line(pi, base, L, S)
