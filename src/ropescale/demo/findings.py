"""The paper's six findings (arXiv 2306.15595, section 3), each checked against a demo's numbers.

Every check states its rule in its text, so the summary says exactly what "holds" means here. The rules
are fixed in advance (not fitted to any run), and each is applied only to the measurements it names: when
one of them is missing from a run, the finding is NOT MEASURED and says which measurement is missing and
what would measure it ("not measured in this run: ..."), unless a condition that was measured already
fails (then it does not hold: one counterexample is enough). No rule falls back on another length:
  (1) base model beyond L:  ppl(8L) > 2 x ppl(L)  and  > 2 x the PI fine-tuned model's ppl(8L)
  (2) PI fine-tuned:         ppl(8L) < ppl(L) of the same model (longer context helps)
  (3) direct fine-tuning:    worse than PI at the same steps in ppl(8L) and in k_max, and still worse in
                             ppl(8L) than PI after several times more steps (when that run exists)
  (4) passkey:               PI fine-tuned k_max(8L) >= 90% of the longest distance tested at 8L, while
                             direct fine-tuning's k_max(8L) <= 2L (and the base retrieves within L)
  (5) inside the window:     PI fine-tuned ppl(L) within 10% of the base model's ppl(L)
  (6) PI without tuning, x2: ppl(2L) < extrapolation's ppl(2L) and < 2 x the base model's ppl(L)

The real-model demo (SmolLM2-135M, L = 8192 -> sL = 16384, short-sequence fine-tuning) adapts them to
what one sL window per model and a model whose retrieval reaches ~2k tokens can show:
  (1) base model beyond L:  its ppl on window positions [L, sL) > 2 x its ppl(L), and > 2 x the PI
                             fine-tuned model's ppl on [L, sL)
  (2) PI fine-tuned:         ppl(sL) < ppl(L) of the same model
  (3) direct fine-tuning:    worse than PI at the same steps and cost in ppl(sL), and not better at the
                             passkey at sL (a prompt of sL tokens; a shorter prompt is finding 4's ground)
  (4) passkey:               at every tested prompt length <= L, PI fine-tuned retrieves (key at the tested
                             depth, near the end) at least as often as the base model, and >= 50% at one of
                             them; at every tested length > L, >= 50%, more often than the base model
                             (extrapolating) and at least as often as direct fine-tuning (both halves
                             are needed: a run that tests no length > L does not measure the extension).
                             SmolLM2-135M retrieves only in prompts of up to ~6k tokens (base: 100% at 4096
                             and 6144, 0% at 8192, key at depth 0.9), so the short lengths test whether PI
                             keeps retrieval at all and the long ones whether it extends it
  (5) inside the window:     as above
  (6) PI without tuning, xs: ppl(sL) < extrapolation's ppl(sL) and < 2 x the base model's ppl(L)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from .evals import Row, beyond_ppl, first_part_ppl

NOT_MEASURED = "not measured in this run"


class Finding(TypedDict):
    """One finding as judged: holds is True/False when every measurement its rule names was made (or one
    that was made already refutes it), None when a measurement is missing: `missing` says which, and what
    would measure it."""

    id: int
    claim: str
    numbers: str
    holds: bool | None
    missing: list[str]


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


class _Findings:
    """Collects findings; `judge` applies a rule to the parts that were measured only."""

    def __init__(self) -> None:
        self.out: list[Finding] = []

    def judge(self, i: int, claim: str, numbers: str, rule: _Rule) -> None:
        """A measured condition that fails refutes the finding; otherwise it holds only when nothing the
        rule names is missing (then each missing measurement is named, with what would measure it)."""
        parts, missing = rule.parts, rule.missing
        holds = False if not all(parts) else (None if missing else True)
        if missing:
            numbers += "; " + "; ".join(f"{NOT_MEASURED}: {m}" for m in missing)
        self.out.append(Finding(id=i, claim=claim, numbers=numbers, holds=holds, missing=missing))


def check_findings(rows: dict[str, Row | None], window: int, factor: int, k_top: int | None) -> list[Finding]:
    """rows: by key (base, pi2, pi_ft, direct_ft, direct_long); window L; factor s; k_top the longest
    distance the passkey test tried at s*L. One entry per finding, in order; a rule whose model or length
    is missing says so (`missing`) instead of judging on something else."""
    L, S = window, window * factor
    base, pi2, pi, direct, long = (rows.get(k) for k in ("base", "pi2", "pi_ft", "direct_ft", "direct_long"))
    b, p = (r.ppl if r else {} for r in (base, pi))
    tune = f"(`ropescale demo --model tiny` fine-tunes PI at {S})"
    out = _Findings()
    r = _Rule()
    r.need((b.get(L), b.get(S)), lambda: b[S] > 2 * b[L], f"the base model's ppl at {L} and {S}")
    r.need((b.get(S), p.get(S)), lambda: b[S] > 2 * p[S], f"the PI fine-tuned model's ppl({S}) {tune}")
    ratio = _f(b[S] / b[L]) if b.get(L) and b.get(S) else "n/a"
    out.judge(1, "extrapolating beyond L without fine-tuning explodes perplexity",
              f"base ppl {_f(b.get(L))} at L={L} -> {_f(b.get(S))} at {S} (x{ratio}); PI fine-tuned "
              f"{_f(p.get(S))} at {S}", r)  # fmt: skip
    r = _Rule()
    r.need((p.get(L), p.get(S)), lambda: p[S] < p[L], f"the PI fine-tuned model's ppl at {L} and {S} {tune}")
    steps = pi.ft_steps if pi else "n"
    ladder = " -> ".join(f"{_f(p[n])}@{n}" for n in sorted(p)) or "n/a"
    out.judge(2, f"PI + {steps} fine-tuning steps: lower perplexity at 8L than at L", ladder, r)
    out.judge(*_tiny_direct(pi, direct, long, S))
    out.judge(*_tiny_passkey(base, pi, direct, L, S, k_top))
    out.judge(*_inside(b.get(L), p.get(L), L, tune))
    q, e = (pi2.ppl.get(2 * L) if pi2 else None), b.get(2 * L)
    r = _Rule()
    r.need(
        (q, e, b.get(L)), lambda: q < e and q < 2 * b[L], f"PI x2 untuned and the base at {2 * L} (s >= 4)"
    )
    out.judge(6, "PI without fine-tuning already works at small factors",
              f"x2 at {2 * L}: PI {_f(q)} vs extrapolation {_f(e)}; base at L {_f(b.get(L))}", r)  # fmt: skip
    return out.out


def _tiny_direct(pi: Row | None, direct: Row | None, long: Row | None, length: int) -> tuple:
    """Finding 3's arguments (tiny): direct worse than PI at the same steps in ppl(sL) and k_max(sL), and
    in ppl(sL) after several times more steps (when that run exists)."""
    S = length
    p_S, d_S = (pi.ppl.get(S) if pi else None), (direct.ppl.get(S) if direct else None)
    pk, dk = (pi.k_max.get(S) if pi else None), (direct.k_max.get(S) if direct else None)
    r = _Rule()
    r.need((p_S, d_S), lambda: d_S > p_S, f"ppl({S}) of PI and direct fine-tuning at the same steps")
    r.need((pk, dk), lambda: dk < pk, f"k_max({S}) of PI and direct fine-tuning (passkey at {S})")
    steps = pi.ft_steps if pi else "n"
    text = f"at {steps} steps ppl({S}) PI {_f(p_S)} vs direct {_f(d_S)}, k_max PI {pk} vs direct {dk}"
    if long:  # the rule's "after several times more steps" exists only when that run does
        l_S = long.ppl.get(S)
        text += f"; direct after {long.ft_steps} steps: ppl {_f(l_S)}, k_max {long.k_max.get(S)}"
        r.need((l_S, p_S), lambda: l_S > p_S, f"direct's ppl({S}) after the long run")
    return 3, "direct fine-tuning adapts slowly and stays worse than PI", text, r


def _tiny_passkey(base: Row | None, pi: Row | None, direct: Row | None, window: int, length: int,
                  k_top: int | None) -> tuple:  # fmt: skip
    """Finding 4's arguments (tiny): PI k_max(sL) >= 90% of the longest distance tested, direct's <= 2L,
    and the base retrieves within L."""
    L, S = window, length
    bk = base.k_max.get(L) if base else None
    pk, dk = (pi.k_max.get(S) if pi else None), (direct.k_max.get(S) if direct else None)
    r = _Rule()
    r.need((bk,), lambda: bool(bk), f"the base model's k_max({L}) (passkey at {L})")
    r.need((pk, k_top), lambda: pk >= 0.9 * k_top, f"PI fine-tuned k_max({S}) (passkey at {S})")
    r.need((dk,), lambda: dk <= 2 * L, f"direct fine-tuned k_max({S}) (passkey at {S})")
    text = f"k_max at {S}: PI {pk} (of {k_top} tested), direct {dk} (L={L}); base within L: {bk}"
    if pi and direct and S in pi.passkey_found and S in direct.passkey_found:
        text += (
            f"; key's digits in any order at {S} (diagnostic): PI {pi.passkey_found[S]:.0%}, "
            f"direct {direct.passkey_found[S]:.0%}"
        )
    return (
        4,
        "PI retrieves the passkey over the whole extended window, direct fine-tuning barely past L",
        text,
        r,
    )


class _Rule:
    """A rule's conditions: those whose measurements exist (judged), and those that are missing."""

    def __init__(self, *measured: bool) -> None:
        self.parts: list[bool] = [bool(m) for m in measured]  # conditions on measurements that exist
        self.missing: list[str] = []

    def need(self, values: tuple, test: Callable[[], bool], what: str) -> None:
        """Judge `test()` when every value it reads was measured; else record `what` (and what would
        measure it) as missing."""
        if any(v is None for v in values):
            self.missing.append(what)
        else:
            self.parts.append(bool(test()))


def _inside(b_L: float | None, p_L: float | None, window: int, how: str) -> tuple:
    """Finding 5's arguments: PI fine-tuned ppl(L) within 10% of the base model's."""
    r = _Rule()
    change = None if b_L is None or p_L is None else p_L / b_L - 1
    r.need((change,), lambda: abs(change) <= 0.10, f"ppl({window}) of the base and of PI fine-tuned {how}")
    shift = "n/a" if change is None else f"{change:+.1%}"
    numbers = f"ppl({window}) base {_f(b_L)} vs PI fine-tuned {_f(p_L)} ({shift})"
    return 5, "quality inside the original window is nearly unchanged", numbers, r


def check_real_findings(rows: dict[str, Row], window: int, factor: int) -> list[Finding]:
    """rows: by key (base, pi2 = PI x s without fine-tuning, pi_ft, direct_ft); window L; factor s. The
    rules of the module docstring's second list. Passkey numbers are the rows' depth_accuracy (exact match
    at the key depth, by prompt length): (3) reads it at sL only, (4) inside and beyond L."""
    L, S = window, window * factor
    base, pi0, pi, direct = (rows[k] for k in ("base", "pi2", "pi_ft", "direct_ft"))
    out = _Findings()
    full = "(`ropescale demo --full` tests prompts beyond L)"
    b_L, b_beyond = first_part_ppl(base.by_position[S], L), beyond_ppl(base.by_position[S], L)
    p_L, p_S, p_beyond = pi.ppl[L], pi.ppl[S], beyond_ppl(pi.by_position[S], L)
    out.judge(
        1,
        "extrapolating beyond L without fine-tuning explodes perplexity",
        f"base ppl {_f(b_L)} on positions < {L} -> {_f(b_beyond)} on [{L}, {S}); PI fine-tuned "
        f"{_f(p_beyond)} on [{L}, {S})",
        _Rule(b_beyond > 2 * b_L, b_beyond > 2 * p_beyond),
    )
    out.judge(2, f"PI + {pi.ft_steps} fine-tuning steps: lower perplexity at {S} than at {L}",
              f"PI fine-tuned ppl {_f(p_L)} at {L} -> {_f(p_S)} at {S}", _Rule(p_S < p_L))  # fmt: skip
    d_S, pa, da = direct.ppl[S], pi.depth_accuracy.get(S), direct.depth_accuracy.get(S)
    r = _Rule(d_S > p_S)
    r.need((pa, da), lambda: da <= pa, f"the passkey at {S} {full}")
    out.judge(
        3,
        "direct fine-tuning adapts slowly and stays worse than PI",
        f"at {pi.ft_steps} steps ppl({S}) PI {_f(p_S)} vs direct {_f(d_S)}; passkey at {S} PI {_pct(pa)} "
        f"vs direct {_pct(da)}",
        r,
    )
    out.judge(*_real_passkey(base, pi, direct, L, S, full))
    out.judge(*_inside(b_L, p_L, L, ""))
    q, e = pi0.ppl[S], base.ppl[S]
    out.judge(6, "PI without fine-tuning already works at small factors",
              f"x{factor} at {S}: PI {_f(q)} vs extrapolation {_f(e)}; base at L {_f(b_L)}",
              _Rule(q < e, q < 2 * b_L))  # fmt: skip
    return out.out


def _real_passkey(base: Row, pi: Row, direct: Row, window: int, length: int, full: str) -> tuple:
    """Finding 4's arguments: inside L PI keeps the base's retrieval (and retrieves >= 50% at one length);
    beyond L it retrieves >= 50%, more often than the base and at least as often as direct fine-tuning.
    Each half is judged on its own lengths; a half with no tested length is not measured."""
    L = window
    acc = {n: [r.depth_accuracy.get(n) for r in (pi, base, direct)] for n in sorted(pi.depth_accuracy)}
    inside = [a for n, a in acc.items() if n <= L]
    beyond = [a for n, a in acc.items() if n > L]
    r = _Rule()
    r.need((inside or None,), lambda: _keeps(inside), f"the passkey inside L (a prompt of <= {L} tokens)")
    r.need(
        (beyond or None,), lambda: _extends(beyond), f"the passkey beyond L ({L} < length <= {length}) {full}"
    )
    numbers = "; ".join(
        f"at {n}: PI fine-tuned {_pct(p)}, base {_pct(b)}, direct {_pct(d)}" for n, (p, b, d) in acc.items()
    )
    claim = "PI fine-tuned keeps the base's passkey retrieval inside L and extends it beyond L"
    return 4, claim, numbers or "no passkey test", r


def _keeps(inside: list[list[float | None]]) -> bool:
    """Inside L: PI (first) at least as often as the base (second) at every length, >= 50% at one."""
    return all(p >= (b or 0) for p, b, _ in inside) and max(p for p, *_ in inside) >= 0.5


def _extends(beyond: list[list[float | None]]) -> bool:
    """Beyond L: PI >= 50%, more often than the base and at least as often as direct at every length."""
    return all(p >= 0.5 and p > (b or 0) and p >= (d or 0) for p, b, d in beyond)


def tally(findings: list[Finding]) -> str:
    """The summary head's count: how many hold, and how many a run could not judge."""
    held = sum(f["holds"] is True for f in findings)
    unjudged = sum(f["holds"] is None for f in findings)
    return f"{held} of {len(findings)} findings hold" + (f", {unjudged} not measured" if unjudged else "")


def format_findings(findings: list[Finding]) -> list[str]:
    mark = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT MEASURED"}
    return [f"({f['id']}) {mark[f['holds']]:<13} {f['claim']}\n      {f['numbers']}" for f in findings]
