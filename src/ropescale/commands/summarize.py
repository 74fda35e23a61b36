"""`ropescale eval summarize`: a sampled summary per document, ROUGE against the references (eval/summarize.py)."""

from __future__ import annotations

import time
from typing import Any, TypedDict

from .. import outputs
from ..config import SummarizeConfig
from ..data.corpora import load_records
from ..eval.common import ModelInfo, check_lengths, finish, load_for_eval, table
from ..eval.summarize import aggregate, prompt_ids, rouge_scores, summarize_one


class SummarizeResult(TypedDict, total=False):
    """What `eval summarize` returns and writes to --out (JSON): ROUGE of sampled summaries."""

    kind: str  # "summarize"
    config: dict[str, Any]  # the resolved config (outputs.jsonable)
    model: ModelInfo
    data: dict[str, Any]  # spec, documents
    rouge: dict[str, dict[str, Any]]  # per ROUGE type: f, p, r, ci95
    per_document: list[dict[str, Any]]
    timings: dict[str, Any]  # load_s, total_s (seconds)
    environment: dict[str, str]  # package versions and device (outputs.environment)
    out: str  # the result file, when --out was given


def run_summarize(cfg: SummarizeConfig) -> SummarizeResult:
    """`ropescale eval summarize`: sample a summary per document, ROUGE against the references."""
    from itertools import islice

    from tqdm.auto import tqdm

    if cfg.out is not None:
        outputs.check_out_file(cfg.out, overwrite=cfg.overwrite)
    rouge_scores("a", "a")  # fail on a missing rouge-score before the slow part
    start = time.perf_counter()
    records = load_records(cfg.data, (cfg.report_field, cfg.summary_field), cfg.split)
    records = list(islice(records, cfg.max_docs))
    if not records:
        raise ValueError(f"--data {cfg.data}: no records")
    model, tokenizer, info = load_for_eval(cfg.model, cfg.load, cfg.rope)
    overhead = len(prompt_ids(tokenizer, "", 0)[0])
    what = f"prompt + summary tokens (--max-input-tokens + {overhead} + --max-new-tokens)"
    check_lengths([cfg.max_input_tokens + overhead + cfg.max_new_tokens], info, cfg.allow_extrapolation, what)
    items = [
        summarize_one(model, tokenizer, i, r, cfg)
        for i, r in enumerate(tqdm(records, unit="doc", desc="eval summarize", disable=None))
    ]
    result = {
        "kind": "summarize",
        "config": outputs.jsonable(cfg),
        "model": info,
        "data": {"spec": cfg.data, "documents": len(items)},
        "rouge": aggregate([it["rouge"] for it in items], cfg.bootstrap, cfg.seed),
        "per_document": items,
        "timings": {"load_s": info["load_s"], "total_s": round(time.perf_counter() - start, 3)},
    }
    return finish(result, cfg.out)


def format_summarize(result: SummarizeResult) -> str:
    m, d = result["model"], result["data"]
    rows = [
        [
            k.upper().replace("ROUGEL", "ROUGE-L").replace("ROUGE1", "ROUGE-1").replace("ROUGE2", "ROUGE-2"),
            f"{v['f']:.2f}",
            f"[{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]",
            f"{v['p']:.2f}",
            f"{v['r']:.2f}",
        ]
        for k, v in result["rouge"].items()
    ]
    head = f"{m['name']}  method {m['method']} x{m['factor']:g}  window {m['window']}  |  {d['documents']} documents from {d['spec']}"
    tail = f"\nwrote {result['out']}" if result.get("out") else ""
    return f"{head}\n{table(['metric', 'F', '95% CI', 'P', 'R'], rows)}{tail}"
