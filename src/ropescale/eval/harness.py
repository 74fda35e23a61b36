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

from typing import Any

import numpy as np

from .common import bootstrap_ci
from .perplexity import perplexity_at, tokenize_documents


def short_ppl(model: Any, tokenizer: Any, cfg, length: int) -> dict[str, Any]:
    """Perplexity of documents of >= `length` tokens cut to `length`, one window each."""
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


def check_tasks(cfg) -> Any:
    """The TaskManager of --include-path, once every --tasks name is known to it (checked before the model
    loads: lm-eval's warnings about the model would come first otherwise)."""
    manager = task_manager(str(cfg.include_path) if cfg.include_path else None)
    unknown = [t for t in cfg.tasks if t not in manager.all_tasks]
    if unknown:
        raise ValueError(
            f"--tasks {','.join(unknown)}: unknown to lm-evaluation-harness (see --include-path)"
        )
    return manager


def lm_eval_tasks(model: Any, tokenizer: Any, cfg, max_length: int) -> dict[str, dict[str, float]]:
    """Run lm-evaluation-harness tasks on a live model; {task: {metric: value}}."""
    manager = check_tasks(cfg)
    lm = harness_lm(model, tokenizer, cfg.batch_size, max_length)
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
