"""RULER (Hsieh et al. 2024, arXiv 2404.06654) through lm-evaluation-harness's own RULER tasks, offline.

Each task is scored (0-100, lm-eval's string match) at each length with the model's tokenizer, greedy; the
average over tasks per length gives the effective length: the longest length whose average beats the
threshold (RULER's 85.6 is Llama-2-7B at 4K). lm-eval builds 500 samples per task and length; we evaluate
the first --samples of each length. Offline, the essay-haystack tasks run as their `*_local` variants
(ruler_tasks/: lm-eval's generator, a local corpus as haystack), reported as "local haystack".
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .harness import simple_evaluate, task_manager

TASKS_DIR = Path(__file__).with_name("ruler_tasks")
# lm-eval's `ruler` group, in its order; the tasks that download their data and what they download
RULER = (
    "niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
    "niah_multikey_3", "niah_multiquery", "niah_multivalue", "ruler_vt", "ruler_cwe", "ruler_fwe",
    "ruler_qa_squad", "ruler_qa_hotpot",
)  # fmt: skip
NEEDS_NETWORK = {
    "niah_single_2": "Paul Graham essays",
    "niah_single_3": "Paul Graham essays",
    "niah_multikey_1": "Paul Graham essays",
    "niah_multiquery": "Paul Graham essays",
    "niah_multivalue": "Paul Graham essays",
    "ruler_qa_squad": "SQuAD v2",
    "ruler_qa_hotpot": "HotpotQA",
}
LOCAL = {f"{t}_local": t for t in NEEDS_NETWORK if t.startswith("niah_")}
OFFLINE = tuple(t for t in RULER if t not in NEEDS_NETWORK) + tuple(LOCAL)
# lm-eval's needle arguments of the NIAH tasks (niah_utils.py); the essay ones come from ruler_local.NEEDLES
NIAH = {
    "niah_single_1": {"type_haystack": "repeat", "type_needle_k": "words", "type_needle_v": "numbers"},
    "niah_multikey_2": {"type_haystack": "needle", "type_needle_k": "words", "type_needle_v": "numbers"},
    "niah_multikey_3": {"type_haystack": "needle", "type_needle_k": "uuids", "type_needle_v": "uuids"},
}
GENERATED = {"ruler_vt": 30, "ruler_cwe": 120, "ruler_fwe": 50}  # tokens each task generates; NIAH: 128


def resolve_tasks(names: list[str] | None, online: bool) -> list[str]:
    """--tasks as a list of task names (`ruler` expands to lm-eval's group); the offline set by default."""
    if not names:
        return list(OFFLINE)
    tasks = list(dict.fromkeys(t for name in names for t in (RULER if name == "ruler" else [name])))
    unknown = [t for t in tasks if t not in RULER and t not in LOCAL]
    if unknown:
        valid = ", ".join(["ruler", *RULER, *LOCAL])
        raise ValueError(f"--tasks {','.join(unknown)}: not a RULER task; valid: {valid}")
    network = [t for t in tasks if t in NEEDS_NETWORK]
    if network and not online:
        what = ", ".join(sorted({NEEDS_NETWORK[t] for t in network}))
        local = ", ".join(f"{t}_local" for t in network if f"{t}_local" in LOCAL)
        raise ValueError(
            f"--tasks: {', '.join(network)} download their data ({what}) and this run is offline; "
            + (f"use their local-haystack variants ({local}) or " if local else "")
            + "pass --online"
        )
    return tasks


def effective_length(averages: dict[int, float], threshold: float) -> int | None:
    """RULER's effective length: the longest length whose average score (0-100) beats `threshold`
    (strictly); None when no length does."""
    passing = [n for n, score in averages.items() if score > threshold]
    return max(passing) if passing else None


@contextlib.contextmanager
def punkt_model() -> Iterator[str]:
    """Make nltk's punkt_tab sentence splitter findable (lm-eval's NIAH generator needs it and otherwise
    tries to download it): an installed one if nltk finds it, else ours (ruler_tasks/nltk_data, untrained
    Punkt), on nltk's search path only inside this block. Yields which one is used."""
    import nltk

    try:
        yield f"nltk punkt_tab ({nltk.data.find('tokenizers/punkt_tab/english/')})"
        return
    except LookupError:
        pass
    ours = str(TASKS_DIR / "nltk_data")
    nltk.data.path.append(ours)
    try:
        yield "ropescale untrained Punkt (ruler_tasks/nltk_data)"
    finally:
        nltk.data.path.remove(ours)


def prompt_floor(task: str, tokenizer: Any, length: int, haystack: list[str]) -> int | None:
    """The fewest tokens a sample of `task` takes at `length` with this tokenizer: lm-eval's generator run
    at its smallest haystack (below it, lm-eval's loops never end or it fails), plus the generated tokens.
    None for the tasks that download their data. Draws from the global random state: call before seeding."""
    from lm_eval.tasks.ruler import cwe_utils, fwe_utils, prepare_niah, vt_utils
    from lm_eval.tasks.ruler.niah_utils import TEMPLATE

    from .ruler_tasks.ruler_local import NEEDLES  # imports lm-eval (an optional extra)

    def count(text: str) -> int:
        return len(tokenizer(text).input_ids)

    if task in NIAH or task in LOCAL:
        args = NIAH.get(task) or {"type_haystack": "essay", "type_needle_k": "words", **NEEDLES[LOCAL[task]]}
        args = {"num_needle_k": 1, "num_needle_v": 1, "num_needle_q": 1, **args}
        args["num_needle_k"] = max(args["num_needle_k"], args["num_needle_q"])
        units = args["num_needle_k"] * args["num_needle_v"]
        hay = (
            haystack if args["type_haystack"] == "essay" else prepare_niah.get_haystack(args["type_haystack"])
        )
        text, _, _ = prepare_niah.generate_input_output(units, hay, template=TEMPLATE, **args)
        return count(text) + 128
    if task == "ruler_vt":  # an in-context example that fits 500 tokens, then a sample with 10 noises
        icl, icl_answer = vt_utils.generate_input_output(5, 1, 4, is_icl=True)
        if count(icl + f" {icl_answer}") + 30 > 500:
            return 10**9  # lm-eval cannot build ruler_vt's in-context example with this tokenizer
        text, answer = vt_utils.generate_input_output(10, 1, 4)
        return count(icl + " " + " ".join(icl_answer) + "\n\n") + count(text + f" {answer}") + 30
    if task == "ruler_cwe":  # 10 words, the fewest lm-eval's word count search starts from
        example, text, answer = cwe_utils.generate_input_output(10, length)
        listed = " ".join(f"{i + 1}. {w}" for i, w in enumerate(answer))
        return count(example + "\n" + text + " " + listed) + 120
    if task == "ruler_fwe":  # a vocabulary of length // 50 >= 4 coded words (3 answers after the noise word)
        return max(count(fwe_utils.TEMPLATE.format(context="", query="")) + 50, 200)
    return None


def plan_lengths(
    tasks: list[str], lengths: list[int], tokenizer: Any, haystack: list[str]
) -> tuple[dict[str, list[int]], list[dict[str, Any]]]:
    """({task: the lengths its prompt fits}, [{task, length, needs} for each pair skipped as too short]).
    Raises ValueError (naming every task) when no task fits any length."""
    fits: dict[str, list[int]] = {}
    skipped = []
    for task in tasks:
        for n in lengths:
            floor = prompt_floor(task, tokenizer, n, haystack)
            if floor is not None and n < floor:
                skipped.append({"task": task, "length": n, "needs": floor if floor < 10**9 else None})
            else:
                fits.setdefault(task, []).append(n)
    if not fits:
        need: dict[str, int | None] = {}
        for row in skipped:
            need.setdefault(row["task"], row["needs"])
        raise ValueError(
            f"--lengths {','.join(map(str, lengths))}: too short for every task with this tokenizer: "
            + ", ".join(describe_need(t, f) for t, f in need.items())
        )
    return fits, skipped


def describe_need(task: str, floor: int | None) -> str:
    return (
        f"{task} (needs {floor} tokens)"
        if floor is not None
        else f"{task} (its 500-token example does not fit)"
    )


def build_tasks(tasks: list[str], lengths: list[int], tokenizer_dir: str, cfg) -> tuple[Any, dict[str, Any]]:
    """(TaskManager, {name: lm-eval Task}) with every task's samples generated at `lengths`, after seeding
    python and numpy with cfg.seed as lm_eval.simple_evaluate does (so its samples are the same)."""
    metadata = {"max_seq_lengths": list(lengths), "tokenizer": tokenizer_dir, "haystack": cfg.haystack}
    manager = task_manager(str(TASKS_DIR), metadata)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    return manager, manager.load(list(tasks))["tasks"]


def select_samples(task: Any, lengths: list[int], per_length: int) -> list[int]:
    """Indices of the first `per_length` samples of each length in the task's generated data."""
    seen = dict.fromkeys(lengths, 0)
    picked = []
    for i, doc in enumerate(task.eval_docs):
        n = doc["max_length"]
        if n in seen and seen[n] < per_length:
            seen[n] += 1
            picked.append(i)
    return picked


def _samples(task: str, logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-sample records: the needle(s), the model's answer and lm-eval's score for it (0-100)."""
    return [
        {
            "task": task,
            "length": int(s["doc"]["max_length"]),
            "doc_id": int(s["doc_id"]),
            "tokens": int(s["doc"]["length"]),
            "target": list(s["doc"]["outputs"]),
            "prediction": s["filtered_resps"][0],
            "score": 100.0 * float(s[str(s["doc"]["max_length"])]),
        }
        for s in logged
    ]


def evaluate_tasks(lm: Any, manager: Any, built: dict[str, Any], lengths: list[int], cfg) -> dict[str, Any]:
    """lm_eval.simple_evaluate per task on the chosen samples: scores {task: {length: 0-100}}, samples."""
    scores, samples, seconds = {}, [], {}
    for name, task in built.items():
        start = time.perf_counter()
        out = simple_evaluate(
            lm,
            [task],
            manager,
            cfg.seed,
            samples={name: select_samples(task, lengths, cfg.samples)},
            log_samples=True,
            bootstrap_iters=0,
            apply_chat_template=cfg.chat_template,
        )
        seconds[name] = round(time.perf_counter() - start, 3)
        scores[name] = {n: 100.0 * float(out["results"][name][f"{n},none"]) for n in lengths}
        samples += _samples(name, out["samples"][name])
    return {"scores": scores, "samples": samples, "eval_s": seconds}


def summarize(
    scores: dict[str, dict[int, float]], samples: list, lengths: list[int], threshold: float
) -> dict:
    """Per length: each task's score, its sample count and the average over tasks; the effective length."""
    rows = []
    for n in lengths:  # the tasks skipped at a length (too short for them) are not in its row
        by_task = {t: s[n] for t, s in scores.items() if n in s}
        counts = {t: sum(1 for x in samples if x["task"] == t and x["length"] == n) for t in by_task}
        rows.append(
            {
                "length": n,
                "scores": by_task,
                "samples": counts,
                "average": float(np.mean(list(by_task.values()))),
            }
        )
    averages = {r["length"]: r["average"] for r in rows}
    return {
        "lengths": rows,
        "threshold": threshold,
        "effective_length": effective_length(averages, threshold),
    }
