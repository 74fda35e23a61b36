"""`ropescale eval ruler`: RULER's tasks at each length through lm-evaluation-harness, the average per length,
the effective length (eval/ruler.py)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from typing import Any

from .. import outputs
from ..config import RulerConfig
from ..eval.common import EvalResult, check_lengths, finish, load_for_eval, table
from ..eval.harness import harness_lm
from ..eval.ruler import (
    LOCAL,
    build_tasks,
    describe_need,
    evaluate_tasks,
    plan_lengths,
    punkt_model,
    resolve_tasks,
    summarize,
)


class RulerResult(EvalResult, total=False):
    """What `eval ruler` returns and writes to --out (JSON): RULER scores per task and length."""

    tasks: list[str]
    lengths: list[dict[str, Any]]  # per length: scores (by task), samples, average
    threshold: float
    effective_length: int | None  # the longest length whose average exceeds the threshold
    local_haystack: dict[str, Any] | None
    samples: list[dict[str, Any]]


def run_ruler(cfg: RulerConfig) -> RulerResult:
    """`ropescale eval ruler`: RULER's tasks at each length, the average per length, the effective length."""
    if cfg.out is not None:
        outputs.check_out_file(cfg.out)
    tasks = resolve_tasks(cfg.tasks, cfg.online)
    start = time.perf_counter()
    model, tokenizer, info = load_for_eval(cfg.model, cfg.load, cfg.rope)
    lengths = sorted(cfg.lengths or [info["window"]])
    check_lengths(lengths, info, cfg.allow_extrapolation)
    if cfg.chat_template and not getattr(tokenizer, "chat_template", None):
        raise ValueError("--chat-template: the tokenizer has no chat template (a base model)")
    lm = harness_lm(model, tokenizer, cfg.batch_size, max(lengths), "eval ruler", "ruler")
    local = [t for t in tasks if t in LOCAL]
    with punkt_model() as punkt, tempfile.TemporaryDirectory(prefix="ropescale-ruler-tok-") as tok_dir:
        from ..eval.ruler_tasks.ruler_local import haystack_words  # imports lm-eval (an optional extra)

        fits, skipped = plan_lengths(tasks, lengths, tokenizer, haystack_words(cfg.haystack) if local else [])
        tokenizer.save_pretrained(tok_dir)  # lm-eval's generators load the tokenizer by name
        groups: dict[tuple[int, ...], list[str]] = {}  # the tasks that fit the same lengths, built together
        for task, fit in fits.items():
            groups.setdefault(tuple(fit), []).append(task)
        build_s, evaluated = 0.0, {"scores": {}, "samples": [], "eval_s": {}}
        for fit, names in groups.items():
            built_at = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # lm-eval's generators print their search steps
                manager, built = build_tasks(names, list(fit), tok_dir, cfg)
            build_s += round(time.perf_counter() - built_at, 3)
            part = evaluate_tasks(lm, manager, built, list(fit), cfg)
            evaluated["scores"].update(part["scores"])
            evaluated["samples"] += part["samples"]
            evaluated["eval_s"].update(part["eval_s"])
    result = {"kind": "ruler", "config": outputs.jsonable(cfg), "model": info, "tasks": tasks}
    measured = [n for n in lengths if any(n in fit for fit in fits.values())]
    result.update(summarize(evaluated["scores"], evaluated["samples"], measured, cfg.threshold))
    result["skipped"] = (
        skipped  # (task, length) pairs too short for the task's prompt, with the length it needs
    )
    result["local_haystack"] = (
        {"tasks": local, "corpus": cfg.haystack, "sentence_splitter": punkt} if local else None
    )
    result["samples"] = evaluated["samples"]
    result["timings"] = {
        "load_s": info["load_s"],
        "build_s": build_s,
        "eval_s": evaluated["eval_s"],
        "total_s": round(time.perf_counter() - start, 3),
    }
    return finish(result, cfg.out, _versions())


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("lm_eval", "nltk", "wonderwords", "datasets"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


def format_ruler(result: RulerResult) -> str:
    m, rows = result["model"], result["lengths"]
    local = set((result.get("local_haystack") or {}).get("tasks", []))
    body = [
        [f"{t} *" if t in local else t, *(_cell(r["scores"].get(t)) for r in rows)] for t in result["tasks"]
    ]
    body.append(["average", *(f"{r['average']:.1f}" for r in rows)])
    per = sorted({c for r in rows for c in r["samples"].values()})
    eff = result["effective_length"]
    parts = [
        f"{m['name']}  method {m['method']} x{m['factor']:g}  window {m['window']}",
        table(["task", *(str(r["length"]) for r in rows)], body),
        f"effective length (average > {result['threshold']:g}): "
        + (str(eff) if eff is not None else f"none (below {rows[0]['length']})"),
        f"samples per task and length: {','.join(map(str, per))}; wall time {result['timings']['total_s']:.0f} s",
    ]
    skipped = result.get("skipped") or []
    if skipped:
        parts.append(
            "skipped (the length is too short for the task's prompt): "
            + "; ".join(f"{describe_need(r['task'], r['needs'])} at {r['length']}" for r in skipped)
        )
    if local:
        lh = result["local_haystack"]
        parts.append(f"* local haystack ({lh['corpus']}; {lh['sentence_splitter']}), not the essays")
    if result.get("out"):
        parts.append(f"wrote {result['out']}")
    return "\n".join(parts)


def _cell(score: float | None) -> str:
    return "-" if score is None else f"{score:.1f}"
