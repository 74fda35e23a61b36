"""`ropescale eval ppl`: load, tokenise, then the sliding-window perplexity at each length (eval/perplexity.py)."""

from __future__ import annotations

import time
from typing import Any, TypedDict

import numpy as np

from .. import outputs
from ..config import PplConfig
from ..eval.common import ModelInfo, bootstrap_ci, finish, load_checked, table
from ..eval.perplexity import perplexity_at, plan_windows, tokenize_documents


class PplResult(TypedDict, total=False):
    """What `eval ppl` returns and writes to --out (JSON): perplexity per length."""

    kind: str  # "ppl"
    config: dict[str, Any]  # the resolved config (outputs.jsonable)
    model: ModelInfo
    data: dict[str, Any]  # spec, documents, tokens
    lengths: list[
        dict[str, Any]
    ]  # per length: length, stride, ppl, ci95, tokens, short_docs, by_position, ...
    timings: dict[str, Any]  # load_s, total_s (seconds)
    environment: dict[str, str]  # package versions and device (outputs.environment)
    out: str  # the result file, when --out was given


def run_ppl(cfg: PplConfig) -> PplResult:
    """`ropescale eval ppl`: load, tokenise, then the sliding-window perplexity at each length."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    model, tokenizer, info, lengths = load_checked(cfg)
    if cfg.stride > min(lengths):
        raise ValueError(f"--stride {cfg.stride} must be <= every evaluation length ({min(lengths)})")
    docs = tokenize_documents(tokenizer, cfg.data, cfg.text_field, cfg.split, cfg.max_docs, cfg.truncate_to)
    total = sum(w.scored for n in lengths for d in docs for w in plan_windows(len(d), n, cfg.stride))
    results = []
    with tqdm(total=total, unit="tok", desc="eval ppl", disable=None, smoothing=0.1) as bar:
        for length in lengths:
            r = perplexity_at(model, docs, length, cfg.stride, cfg.batch_tokens, bar)
            nll, count = r.pop("_nll"), r.pop("_count")
            r["ci95"] = list(bootstrap_ci(nll, count, np.exp, cfg.bootstrap, cfg.seed))
            results.append(r)
    result = {
        "kind": "ppl",
        "config": outputs.jsonable(cfg),
        "model": info,
        "data": {"spec": cfg.data, "documents": len(docs), "tokens": int(sum(len(d) for d in docs))},
        "lengths": results,
        "timings": {"load_s": info["load_s"], "total_s": round(time.perf_counter() - start, 3)},
    }
    return finish(result, cfg.out)


def format_ppl(result: PplResult) -> str:
    m, d = result["model"], result["data"]
    head = (
        f"{m['name']}  method {m['method']} x{m['factor']:g}  window {m['window']}  |  data {d['spec']}: "
        f"{d['documents']} documents, {d['tokens']} tokens"
    )
    rows = [
        [
            r["length"],
            r["stride"],
            f"{r['ppl']:.4g}",
            f"[{r['ci95'][0]:.4g}, {r['ci95'][1]:.4g}]",
            r["tokens"],
            r["short_docs"],
            f"{r['tokens_per_s']:.0f}" if r["tokens_per_s"] else "-",
        ]
        for r in result["lengths"]
    ]
    body = table(["length", "stride", "ppl", "95% CI (docs)", "scored", "short docs", "tok/s"], rows)
    positions = "\n".join(
        f"  {r['length']}: "
        + "  ".join(f"{b['from']}-{b['to']} {b['ppl']:.4g}" for b in r["by_position"] if b["tokens"])
        for r in result["lengths"]
        if "by_position" in r
    )
    tail = f"\nwrote {result['out']}" if result.get("out") else ""
    return f"{head}\n{body}\nppl by position of the scored token in its window:\n{positions}{tail}"
