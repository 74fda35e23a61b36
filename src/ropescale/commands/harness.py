"""`ropescale eval harness`: short-context checks (perplexity in the original window, lm-evaluation-harness
tasks) before and after the scaling (eval/harness.py)."""

from __future__ import annotations

import time
from typing import Any

from .. import outputs
from ..config import HarnessConfig
from ..eval.common import EvalResult, describe, finish, load_for_eval, table
from ..eval.harness import check_tasks, lm_eval_tasks, short_ppl
from ..models import scale_model


class HarnessResult(EvalResult, total=False):
    """What `eval harness` returns and writes to --out (JSON): short-context checks before and after the scaling."""

    before: dict[str, Any]  # model, ppl, tasks: the model as given
    after: dict[str, Any]  # the same with the scaling applied (only with scaling flags)
    change: dict[str, Any]  # ppl_relative, tasks (after - before)


def _evaluate(model: Any, tokenizer: Any, cfg, original: int) -> dict[str, Any]:
    length = cfg.ppl_length or original
    out: dict[str, Any] = {}
    if cfg.ppl:
        out["ppl"] = short_ppl(model, tokenizer, cfg, length)
    if cfg.tasks:
        out["tasks"] = lm_eval_tasks(model, tokenizer, cfg, original)
    return out


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """ppl: relative change after/before - 1; task metrics: after - before (absolute)."""
    out: dict[str, Any] = {}
    if "ppl" in before:
        out["ppl_relative"] = after["ppl"]["ppl"] / before["ppl"]["ppl"] - 1.0
    for task, metrics in before.get("tasks", {}).items():
        out.setdefault("tasks", {})[task] = {
            k: after["tasks"][task][k] - v
            for k, v in metrics.items()
            if k in after["tasks"].get(task, {}) and "_stderr" not in k
        }
    return out


def run_harness(cfg: HarnessConfig) -> HarnessResult:
    """`ropescale eval harness`: the short-context checks before and after the scaling."""
    if cfg.out is not None:
        outputs.check_out_file(cfg.out, overwrite=cfg.overwrite)
    if cfg.tasks:
        check_tasks(cfg)  # before the model loads
    start = time.perf_counter()
    model, tokenizer, info = load_for_eval(cfg.model, cfg.load, None)
    original = info["original_window"]
    if cfg.ppl_length and cfg.ppl_length > original:
        raise ValueError(f"--ppl-length {cfg.ppl_length} exceeds the original window {original}")
    result: dict[str, Any] = {"kind": "harness", "config": outputs.jsonable(cfg), "before": {"model": info}}
    result["before"].update(_evaluate(model, tokenizer, cfg, original))
    if cfg.rope is not None:
        spec = scale_model(model, cfg.rope, cfg.load.allow_smaller_window)
        result["after"] = {"model": describe(cfg.model, spec, model)}
        result["after"].update(_evaluate(model, tokenizer, cfg, original))
        result["change"] = _changes(result["before"], result["after"])
    result["model"] = result.get("after", result["before"])["model"]
    result["timings"] = {"load_s": info["load_s"], "total_s": round(time.perf_counter() - start, 3)}
    return finish(result, cfg.out)


def format_harness(result: HarnessResult) -> str:
    runs = [("before", result["before"])] + ([("after", result["after"])] if "after" in result else [])
    rows = []
    for label, r in runs:
        m = r["model"]
        name = f"{label}: {m['method']} x{m['factor']:g} (window {m['window']})"
        if "ppl" in r:
            p = r["ppl"]
            rows.append([name, f"ppl @ {p['length']} ({p['documents']} docs)", f"{p['ppl']:.4f}"])
        for task, metrics in r.get("tasks", {}).items():
            for k, v in sorted(metrics.items()):
                if "_stderr" not in k:
                    err = metrics.get(k.replace(",", "_stderr,", 1) if "," in k else f"{k}_stderr")
                    rows.append(
                        [name, f"{task} {k}", f"{v:.4f}" + (f" ± {err:.4f}" if err is not None else "")]
                    )
    change = result.get("change", {})
    if "ppl_relative" in change:
        rows.append(["change", "ppl (after / before - 1)", f"{change['ppl_relative']:+.2%}"])
    for task, metrics in change.get("tasks", {}).items():
        rows += [["change", f"{task} {k} (after - before)", f"{v:+.4f}"] for k, v in sorted(metrics.items())]
    tail = f"\nwrote {result['out']}" if result.get("out") else ""
    return f"{result['before']['model']['name']}\n{table(['model', 'check', 'value'], rows)}{tail}"
