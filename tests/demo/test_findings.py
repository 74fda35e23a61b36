"""The findings' rules, on hand-made numbers: each holds when the paper's pattern is there and not otherwise."""

from __future__ import annotations

import pytest

from ropescale.demo.evals import Row
from ropescale.demo.findings import check_findings, format_findings

L, S = 256, 2048


def _row(key, method, steps, ppl, k_max=None, factor=8.0):
    return Row(key, key, method, factor, steps, ppl=ppl, k_max=k_max or {})


def paper_like():
    return {
        "base": _row("base", "none", 0, {L: 20.0, 512: 80.0, S: 900.0}, {L: 256, S: 200}, 1.0),
        "pi2": _row("pi2", "linear", 0, {L: 22.0, 512: 25.0}, factor=2.0),
        "pi_ft": _row("pi_ft", "linear", 100, {L: 21.0, S: 18.0}, {L: 256, S: 2048}),
        "direct_ft": _row("direct_ft", "none", 100, {L: 21.5, S: 30.0}, {L: 256, S: 300}),
        "direct_long": _row("direct_long", "none", 300, {L: 21.0, S: 24.0}, {L: 256, S: 400}),
    }


def test_paper_pattern_holds_everywhere():
    found = check_findings(paper_like(), L, 8, k_top=2048)
    assert [f["id"] for f in found] == [1, 2, 3, 4, 5, 6]
    assert all(f["holds"] for f in found), format_findings(found)
    assert "x45" in found[0]["numbers"]  # 900 / 20


BREAKS = {
    1: lambda r: r["base"].ppl.update({S: 30.0}),  # extrapolation barely hurts
    2: lambda r: r["pi_ft"].ppl.update({S: 22.0}),  # PI fine-tuned is worse at 8L than at L
    3: lambda r: r["direct_long"].ppl.update({S: 17.0}),  # more direct steps catch up with PI
    4: lambda r: r["direct_ft"].k_max.update({S: 1500}),  # direct retrieves far beyond 2L
    5: lambda r: r["pi_ft"].ppl.update({L: 24.0}),  # +14% inside the window
    6: lambda r: r["pi2"].ppl.update({512: 90.0}),  # PI x2 without tuning worse than extrapolating
}


@pytest.mark.parametrize("finding", sorted(BREAKS))
def test_each_rule_fails_on_its_own_counterexample(finding):
    rows = paper_like()
    BREAKS[finding](rows)
    holds = {f["id"]: f["holds"] for f in check_findings(rows, L, 8, k_top=2048)}
    assert holds == {i: i != finding for i in range(1, 7)}


def test_passkey_finding_needs_a_base_that_can_retrieve():
    rows = paper_like()
    rows["base"].k_max[L] = 0
    assert not check_findings(rows, L, 8, k_top=2048)[3]["holds"]


def test_missing_runs_are_left_out():
    rows = {"base": paper_like()["base"]}
    assert [f["id"] for f in check_findings(rows, L, 8, k_top=None)] == [1]


def test_yarn_control_line_lists_each_checkpoint():
    from ropescale.demo.tiny import _yarn_line

    rows = {
        f"yarn_ft{s}": Row(
            f"yarn_ft{s}", "", "yarn", 8.0, s, ppl={S: p}, k_max={S: k}, passkey_accuracy={S: a}
        )
        for s, p, k, a in ((50, 8.34, 0, 0.425), (100, 8.329, 1792, 0.52))
    }
    assert _yarn_line(rows, (50, 100), S) == [
        "control: YaRN x8 fine-tuned the same way, at 2048: "
        "50 steps ppl 8.34, k_max 0 (42%), 100 steps ppl 8.329, k_max 1792 (52%)"
    ]
    assert _yarn_line({}, (50, 100), S) == []  # no YaRN run (--quick): no line


def test_digits_found_is_reported_but_never_decides_the_passkey_finding():
    """A PI model that finds every key but garbles it (our tiny model's failure) still fails finding 4."""
    rows = paper_like()
    rows["pi_ft"].k_max[S] = 0
    rows["pi_ft"].passkey_found[S] = 0.95
    rows["direct_ft"].passkey_found[S] = 0.05
    four = check_findings(rows, L, 8, k_top=2048)[3]
    assert four["holds"] is False
    assert "any order at 2048 (diagnostic): PI 95%, direct 5%" in four["numbers"]


def test_passkey_cells_show_k_max_exact_rate_and_digits_found():
    from ropescale.demo.markdown import passkey_table, steps_tables

    row = _row("pi_ft", "linear", 200, {S: 10.0}, {L: 256, S: 512})
    row.passkey_accuracy.update({L: 0.38, S: 0.125})
    row.passkey_found.update({L: 0.82, S: 0.6})
    table = passkey_table([row], [L, S])
    assert "| pi_ft | 256 (38%; 82%) | 512 (12%; 60%) |" in table
    _, t4 = steps_tables({"PI x8": [row]}, S)
    assert "| PI x8 | 2048 | 512 (12%; 60%) |" in t4
