"""The paper's six findings (arXiv 2306.15595, section 3), each checked against a demo's numbers.

Every check states its rule in its text, so the summary says exactly what "holds" means here. The rules
are fixed in advance (not fitted to any run):
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
                             passkey at sL
  (4) passkey:               at every tested prompt length <= L, PI fine-tuned retrieves (key at the tested
                             depth, near the end) at least as often as the base model, and >= 50% at one of
                             them; at every tested length > L, >= 50%, more often than the base model
                             (extrapolating) and at least as often as direct fine-tuning. SmolLM2-135M
                             retrieves only in prompts of up to ~6k tokens (base: 100% at 4096 and 6144,
                             0% at 8192, key at depth 0.9), so the short lengths test whether PI keeps
                             retrieval at all and the long ones whether it extends it
  (5) inside the window:     as above
  (6) PI without tuning, xs: ppl(sL) < extrapolation's ppl(sL) and < 2 x the base model's ppl(L)
"""

from __future__ import annotations

from typing import Any

from .evals import Row, beyond_ppl, first_part_ppl


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def check_findings(rows: dict[str, Row], window: int, factor: int, k_top: int | None) -> list[dict[str, Any]]:
    """rows: by key (base, pi2, pi_ft, direct_ft, direct_long); window L; factor s; k_top the longest
    distance the passkey test tried at s*L. Returns one entry per finding: id, claim, numbers, holds."""
    L, S = window, window * factor
    base, pi2, pi, direct, long = (rows.get(k) for k in ("base", "pi2", "pi_ft", "direct_ft", "direct_long"))
    out = []

    def add(i: int, claim: str, text: str, holds: bool | None) -> None:
        out.append({"id": i, "claim": claim, "numbers": text, "holds": holds})

    b_L, b_S = base.ppl.get(L), base.ppl.get(S)
    p_L, p_S = (pi.ppl.get(L), pi.ppl.get(S)) if pi else (None, None)
    add(
        1,
        "extrapolating beyond L without fine-tuning explodes perplexity",
        f"base ppl {_f(b_L)} at L={L} -> {_f(b_S)} at {S} (x{_f(b_S / b_L)}); PI fine-tuned {_f(p_S)} at {S}",
        b_S > 2 * b_L and (p_S is None or b_S > 2 * p_S),
    )
    if pi:
        ladder = " -> ".join(f"{_f(pi.ppl[n])}@{n}" for n in sorted(pi.ppl))
        add(2, f"PI + {pi.ft_steps} fine-tuning steps: lower perplexity at 8L than at L", ladder, p_S < p_L)
    if pi and direct:
        d_S, pk, dk = direct.ppl.get(S), pi.k_max.get(S), direct.k_max.get(S)
        text = (
            f"at {pi.ft_steps} steps ppl({S}) PI {_f(p_S)} vs direct {_f(d_S)}, k_max PI {pk} vs direct {dk}"
        )
        holds = d_S > p_S and (pk is None or dk is None or dk < pk)
        if long:
            text += (
                f"; direct after {long.ft_steps} steps: ppl {_f(long.ppl.get(S))}, k_max {long.k_max.get(S)}"
            )
            holds = holds and long.ppl.get(S) > p_S
        add(3, "direct fine-tuning adapts slowly and stays worse than PI", text, holds)
    if pi and direct and pi.k_max and base.k_max:
        pk, dk, bk = pi.k_max.get(S), direct.k_max.get(S), base.k_max.get(L)
        holds = bool(bk) and k_top is not None and pk >= 0.9 * k_top and dk <= 2 * L
        text = f"k_max at {S}: PI {pk} (of {k_top} tested), direct {dk} (L={L}); base within L: {bk}"
        if S in pi.passkey_found and S in direct.passkey_found:
            text += (
                f"; key's digits in any order at {S} (diagnostic): PI {pi.passkey_found[S]:.0%}, "
                f"direct {direct.passkey_found[S]:.0%}"
            )
        add(4, "PI retrieves the passkey over the whole extended window, direct fine-tuning barely past L",
            text, holds)  # fmt: skip
    if pi:
        change = p_L / b_L - 1
        add(5, "quality inside the original window is nearly unchanged",
            f"ppl({L}) base {_f(b_L)} vs PI fine-tuned {_f(p_L)} ({change:+.1%})", abs(change) <= 0.10)  # fmt: skip
    if pi2:
        q, e = pi2.ppl.get(2 * L), base.ppl.get(2 * L)
        add(6, "PI without fine-tuning already works at small factors",
            f"x2 at {2 * L}: PI {_f(q)} vs extrapolation {_f(e)}; base at L {_f(b_L)}",
            q < e and q < 2 * b_L)  # fmt: skip
    return out


def check_real_findings(rows: dict[str, Row], window: int, factor: int) -> list[dict[str, Any]]:
    """rows: by key (base, pi2 = PI x s without fine-tuning, pi_ft, direct_ft); window L; factor s. The
    rules of the module docstring's second list. Passkey numbers are the rows' depth_accuracy (exact match
    at the key depth, by prompt length); (3) compares the longest length tested."""
    L, S = window, window * factor
    base, pi0, pi, direct = (rows[k] for k in ("base", "pi2", "pi_ft", "direct_ft"))
    out = []

    def add(i: int, claim: str, text: str, holds: bool) -> None:
        out.append({"id": i, "claim": claim, "numbers": text, "holds": bool(holds)})

    b_L, b_beyond = first_part_ppl(base.by_position[S], L), beyond_ppl(base.by_position[S], L)
    p_L, p_S, p_beyond = pi.ppl[L], pi.ppl[S], beyond_ppl(pi.by_position[S], L)
    add(1, "extrapolating beyond L without fine-tuning explodes perplexity",
        f"base ppl {_f(b_L)} on positions < {L} -> {_f(b_beyond)} on [{L}, {S}); PI fine-tuned {_f(p_beyond)} "
        f"on [{L}, {S})", b_beyond > 2 * b_L and b_beyond > 2 * p_beyond)  # fmt: skip
    add(2, f"PI + {pi.ft_steps} fine-tuning steps: lower perplexity at {S} than at {L}",
        f"PI fine-tuned ppl {_f(p_L)} at {L} -> {_f(p_S)} at {S}", p_S < p_L)  # fmt: skip
    d_S = direct.ppl[S]
    lengths = sorted(pi.depth_accuracy)
    P = max(lengths) if lengths else None
    pa, da = (r.depth_accuracy.get(P) for r in (pi, direct))
    add(3, "direct fine-tuning adapts slowly and stays worse than PI",
        f"at {pi.ft_steps} steps ppl({S}) PI {_f(p_S)} vs direct {_f(d_S)}; passkey at {P} PI "
        f"{_pct(pa)} vs direct {_pct(da)}", d_S > p_S and (pa is None or da is None or da <= pa))  # fmt: skip
    if lengths:
        acc = {n: [r.depth_accuracy.get(n) for r in (pi, base, direct)] for n in lengths}
        inside = [a for n, a in acc.items() if n <= L]
        keeps = all(p >= (b or 0) for p, b, _ in inside) and (not inside or max(p for p, *_ in inside) >= 0.5)
        extends = all(p >= 0.5 and p > (b or 0) and p >= (d or 0) for n, (p, b, d) in acc.items() if n > L)
        parts = [w for w, has in (("as well as the base inside L", inside),
                                  ("better than the base beyond L", len(inside) < len(acc))) if has]  # fmt: skip
        add(4, f"PI fine-tuned retrieves the passkey {' and '.join(parts)}",
            "; ".join(f"at {n}: PI fine-tuned {_pct(p)}, base {_pct(b)}, direct {_pct(d)}"
                      for n, (p, b, d) in acc.items()), keeps and extends)  # fmt: skip
    change = p_L / b_L - 1
    add(5, "quality inside the original window is nearly unchanged",
        f"ppl({L}) base {_f(b_L)} vs PI fine-tuned {_f(p_L)} ({change:+.1%})", abs(change) <= 0.10)  # fmt: skip
    q, e = pi0.ppl[S], base.ppl[S]
    add(6, "PI without fine-tuning already works at small factors",
        f"x{factor} at {S}: PI {_f(q)} vs extrapolation {_f(e)}; base at L {_f(b_L)}",
        q < e and q < 2 * b_L)  # fmt: skip
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def format_findings(findings: list[dict[str, Any]]) -> list[str]:
    mark = {True: "HOLDS", False: "DOES NOT HOLD", None: "not tested"}
    return [f"({f['id']}) {mark[f['holds']]:<13} {f['claim']}\n      {f['numbers']}" for f in findings]
