"""Short-context regression (PI paper arXiv 2306.15595, section 3.4): does extending the window hurt the
model inside its ORIGINAL window?

Both checks run on the model as given (before) and again after the scaling flags are applied (after):
  - built-in: perplexity of documents cut to the original window L (each document one window, all L-1
    targets scored), and the relative change after / before - 1;
  - optional: lm-evaluation-harness tasks (`--tasks`, PyPI package `lm_eval`), with contexts limited to L;
    `--include-path` adds local task YAML files, which run offline (examples/harness has one).
Without scaling flags only the "before" numbers are produced.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def short_ppl(model: Any, tokenizer: Any, cfg, length: int) -> dict[str, Any]:
    """Perplexity of documents of >= `length` tokens cut to `length`, one window each."""
    from .common import bootstrap_ci
    from .perplexity import perplexity_at, tokenize_documents

    docs = tokenize_documents(tokenizer, cfg.data, cfg.text_field, cfg.split, cfg.max_docs, length)
    r = perplexity_at(model, docs, length, length - 1, cfg.batch_tokens)
    nll, count = r.pop("_nll"), r.pop("_count")
    r["ci95"] = list(bootstrap_ci(nll, count, np.exp, 1000, 0))
    return r


def harness_lm(
    model: Any,
    tokenizer: Any,
    batch_size: int,
    max_length: int,
    what: str = "--tasks",
    extra: str = "harness",
) -> Any:
    """lm-evaluation-harness's HFLM around a live (scaled) model; contexts are cut to `max_length`."""
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise ValueError(f"{what} needs lm-evaluation-harness: pip install 'ropescale[{extra}]'") from None
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)


def task_manager(include_path: str | None, metadata: dict[str, Any] | None = None) -> Any:
    """lm-eval's TaskManager with `include_path` (local task YAML files) and `metadata` for every task."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, metadata=metadata)


def simple_evaluate(lm: Any, tasks: list, manager: Any, seed: int, **kwargs: Any) -> dict[str, Any]:
    """lm_eval.simple_evaluate with every seed set to `seed` (python, numpy, torch, few-shot)."""
    import lm_eval

    return lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        **kwargs,
    )


def lm_eval_tasks(model: Any, tokenizer: Any, cfg, max_length: int) -> dict[str, dict[str, float]]:
    """Run lm-evaluation-harness tasks on a live model; {task: {metric: value}}."""
    lm = harness_lm(model, tokenizer, cfg.batch_size, max_length)
    manager = task_manager(str(cfg.include_path) if cfg.include_path else None)
    unknown = [t for t in cfg.tasks if t not in manager.all_tasks]
    if unknown:
        raise ValueError(
            f"--tasks {','.join(unknown)}: unknown to lm-evaluation-harness (see --include-path)"
        )
    out = simple_evaluate(
        lm,
        list(cfg.tasks),
        manager,
        cfg.seed,
        num_fewshot=cfg.num_fewshot,
        limit=cfg.limit,
        log_samples=False,
    )
    # lm_eval names metrics "acc,none" (metric, filter); keep the metric name when the filter is "none"
    return {
        task: {
            k.removesuffix(",none"): float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("alias", "sample_len")
        }
        for task, metrics in out["results"].items()
    }


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


def run_harness(cfg) -> dict[str, Any]:
    """`ropescale eval harness`: the short-context checks before and after the scaling."""
    from .. import outputs
    from ..models import scale_model
    from .common import describe, finish, load_for_eval

    if cfg.out is not None:
        outputs.check_out_file(cfg.out, overwrite=cfg.overwrite)
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


def format_harness(result: dict[str, Any]) -> str:
    from .common import table

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
