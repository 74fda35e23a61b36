"""`ropescale eval passkey`: accuracy per distance k and k_max at each length, plus a depth grid (eval/passkey.py)."""

from __future__ import annotations

import time
from typing import Any, TypedDict

from .. import outputs
from ..config import PasskeyConfig
from ..eval.common import ModelInfo, finish, load_checked, table
from ..eval.passkey import check_prompt_lengths, evaluate_passkey


class PasskeyResult(TypedDict, total=False):
    """What `eval passkey` returns and writes to --out (JSON): retrieval accuracy by distance and depth."""

    kind: str  # "passkey"
    config: dict[str, Any]  # the resolved config (outputs.jsonable)
    model: ModelInfo
    lengths: list[dict[str, Any]]  # per length: k_max, accuracy, digits_found, ks (per distance k)
    depths: list[dict[str, Any]]  # per (length, depth): accuracy, trials
    timings: dict[str, Any]  # load_s, total_s (seconds)
    environment: dict[str, str]  # package versions and device (outputs.environment)
    out: str  # the result file, when --out was given


def run_passkey(cfg: PasskeyConfig) -> PasskeyResult:
    """`ropescale eval passkey`: accuracy per distance k and k_max at each length, plus a depth grid."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    model, tokenizer, info, lengths = load_checked(cfg)
    check_prompt_lengths(tokenizer, lengths)
    total = len(lengths) * cfg.trials * (cfg.num_k + len(cfg.depths or []))
    with tqdm(total=total, unit="prompt", desc="eval passkey", disable=None) as bar:
        results, grid = evaluate_passkey(model, tokenizer, lengths, cfg, bar)
    result = {
        "kind": "passkey",
        "config": outputs.jsonable(cfg),
        "model": info,
        "lengths": results,
        "depths": grid,
        "timings": {"load_s": info["load_s"], "total_s": round(time.perf_counter() - start, 3)},
    }
    return finish(result, cfg.out)


def format_passkey(result: PasskeyResult) -> str:
    m = result["model"]
    parts = [f"{m['name']}  method {m['method']} x{m['factor']:g}  window {m['window']}"]
    for r in result["lengths"]:
        if not r["ks"]:
            continue
        trials = len(r["ks"][0]["trials"])
        rows = [[c["k"], f"{c['correct']}/{trials}", f"{c['accuracy']:.0%}", f"{c['digits_found']:.0%}"]
                for c in r["ks"]]  # fmt: skip
        parts.append(
            f"\nlength {r['length']}: k_max {r['k_max']}, mean accuracy {r['accuracy']:.0%}"
            f" (key's digits in any order: {r['digits_found']:.0%})"
        )
        parts.append(table(["k", "correct", "accuracy", "digits any order"], rows))
    if result["depths"]:
        depths = sorted({c["depth"] for c in result["depths"]})
        lengths = sorted({c["length"] for c in result["depths"]})
        acc = {(c["length"], c["depth"]): c["accuracy"] for c in result["depths"]}
        rows = [[n, *(f"{acc[(n, d)]:.0%}" for d in depths)] for n in lengths]
        parts.append("\naccuracy by length x depth (0 = start of the text, 1 = end)")
        parts.append(table(["length", *(f"{d:g}" for d in depths)], rows))
    if result.get("out"):
        parts.append(f"wrote {result['out']}")
    return "\n".join(parts)
