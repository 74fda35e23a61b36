"""Targeted mutation check: plant one plausible bug at a time in a copy of the package and run the tests
meant to catch it. A mutation the tests still pass on ("survived") is a hole in the suite.

    python tools/mutate.py                   # every mutation (long: training tests; `make mutate`)
    python tools/mutate.py --only val-loss-per-sequence,dynamic-reset-generate
    python tools/mutate.py --list            # --check: only verify that every mutation still applies

The repository (src/, tests/, examples/, pyproject.toml) is copied once to a temporary directory; each
mutation replaces exact source text in the copy (refused if the text is not found exactly once, so a
mutation that no longer applies is reported, never silently skipped), runs its tests there with
PYTHONPATH pointing at the copy, and restores the file. Writes runs/mutate.json (atomically) and prints a
table. Not part of CI: it takes tens of minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRAD1 = "tests/train/test_gradients.py::test_one_process_gradient_equals_full_batch_backward"
GRAD2 = "tests/train/test_gradients.py::test_two_process_fsdp_gradient_equals_full_batch_backward"
RESUME = "tests/train/test_resume_dist.py::test_resume_after_sigkill_gives_the_same_weights[contiguous]"
DYN = "tests/eval/test_dynamic_state.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # under src/ropescale/
    edits: tuple[tuple[str, str], ...]  # (exact old text, new text), each old text found exactly once
    tests: tuple[str, ...]
    issue: bool = False  # one of the bugs issue 22 planted that no test caught then


def m(name, file, edits, tests, issue=False) -> Mutation:
    return Mutation(name, file, tuple(edits), tuple(tests), issue)


MUTATIONS = [
    # --- the bugs of issue 22 ---
    m("resume-skips-rng-restore", "train/loop.py",
      [("    checkpoint.set_rng_state(rngs[job.d.rank] if len(rngs) == job.d.world else rngs[0], job.d.device)\n",
        "")],
      [RESUME], issue=True),
    m("resume-resets-token-counter", "train/loop.py",
      [('job.step, job.tokens_seen = int(trainer["step"]), int(trainer["tokens_seen"])',
        'job.step, job.tokens_seen = int(trainer["step"]), 0')], [RESUME], issue=True),
    m("val-loss-per-sequence", "train/loop.py",
      [("        count += int((labels[:, 1:] != -100).sum())\n", "        count += len(ids)\n")],
      [GRAD1], issue=True),
    m("dynamic-reset-score-batch", "eval/perplexity.py",
      [("    reset_rotary(model)\n    targets = ids[:, -scored:]", "    targets = ids[:, -scored:]")],
      [DYN], issue=True),
    m("dynamic-reset-perplexity-all", "eval/perplexity.py",
      [("from ..models.compat import reset_rotary\n", "def reset_rotary(model):  # mutated: no reset\n    pass\n")],
      [DYN], issue=True),
    m("dynamic-reset-generate", "eval/generate.py",
      [("    reset_rotary(model)  # dynamic scaling", "    pass  # dynamic scaling")], [DYN], issue=True),
    m("rouge-interval-collapsed", "eval/summarize.py",
      [('"ci95": list(bootstrap_ci(f, np.ones_like(f), samples=samples, seed=seed)),',
        '"ci95": [float(f.mean()), float(f.mean())],')],
      ["tests/eval/test_intervals.py", "tests/eval/test_summarize.py::test_rouge_hand_computed"], issue=True),
    m("val-padding-unmasked", "train/loop.py",
      [("labels = torch.cat([labels, torch.full_like(labels[:1], -100).expand(pad, -1)])",
        "labels = torch.cat([labels, labels[:1].expand(pad, -1)])")], [GRAD1], issue=True),
    m("micro-batch-own-token-count", "train/loop.py",
      [("loss_sum, _ = job.root(ids[part]", "loss_sum, own = job.root(ids[part]"),
       ("(loss_sum * (job.d.world / max(scored, 1))).backward()",
        "(loss_sum * (job.d.world / max(int(own), 1))).backward()")], [GRAD1], issue=True),
    m("fsdp-world-factor-dropped", "train/loop.py",
      [("(loss_sum * (job.d.world / max(scored, 1))).backward()", "(loss_sum / max(scored, 1)).backward()")],
      [GRAD2], issue=True),
    # --- more, one or more per core module ---
    m("rank-own-token-count", "train/loop.py",
      [("    scored = int((labels[:, 1:] != -100).sum())\n", ""),
       ("    total = torch.zeros((), device=job.d.device)\n    # rows",
        "    scored = int((labels[:, 1:] != -100).sum())\n    total = torch.zeros((), device=job.d.device)\n"
        "    # rows")], [GRAD2]),
    m("scored-counts-position-0", "train/loop.py",
      [("    scored = int((labels[:, 1:] != -100).sum())\n", "    scored = int((labels != -100).sum())\n")],
      [GRAD1]),
    m("resume-skips-scheduler", "train/loop.py",
      [('    job.scheduler.load_state_dict(trainer["scheduler"])\n', "")], [RESUME]),
    m("checkpoint-torch-rng-not-restored", "train/checkpoint.py",
      [('    torch.set_rng_state(state["torch"])\n', "")], [RESUME]),
    m("checkpoint-keeps-one-more", "train/checkpoint.py",
      [("list_checkpoints(out)[:-keep] if keep > 0", "list_checkpoints(out)[: -keep - 1] if keep > 0")],
      [RESUME]),
    m("loss-backward-ignores-grad-out", "train/loss.py",
      [("grad_h = grad_h * grad_out.to(grad_h.dtype)", "grad_h = grad_h.clone()")],
      ["tests/train/test_loss_optim.py", GRAD1]),
    m("loss-unshifted-labels", "train/loss.py",
      [("    shifted = torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), IGNORE)], dim=1)\n",
        "    shifted = labels\n")], ["tests/train/test_loss_optim.py"]),
    m("ppl-scores-whole-window", "eval/perplexity.py",
      [("windows.append(Window(begin, new_end, min(new_end - end, new_end - begin - 1)))",
        "windows.append(Window(begin, new_end, new_end - begin - 1))")], ["tests/eval/test_perplexity.py"]),
    m("ppl-mean-of-document-means", "eval/perplexity.py",
      [("    mean = float(nll.sum() / tokens) if tokens else float(\"nan\")",
        "    mean = float(np.mean(nll / np.maximum(count, 1))) if tokens else float(\"nan\")")],
      ["tests/eval/test_perplexity.py"]),
    m("ppl-no-bos", "eval/perplexity.py",
      [("ids = tokenizer(text, add_special_tokens=True)", "ids = tokenizer(text, add_special_tokens=False)")],
      ["tests/eval/test_bos.py"]),
    m("ppl-interval-collapsed", "commands/ppl.py",
      [('r["ci95"] = list(bootstrap_ci(nll, count, np.exp, cfg.bootstrap, cfg.seed))',
        'r["ci95"] = [r["ppl"], r["ppl"]]')], ["tests/eval/test_intervals.py"]),
    m("passkey-threshold-not-all-k", "eval/passkey.py",
      [("        if successes < threshold * trials - 1e-9:\n            break\n",
        "        if successes < threshold * trials - 1e-9:\n            continue\n")],
      ["tests/eval/test_passkey.py"]),
    m("passkey-no-bos", "eval/passkey.py",
      [("tokenizer(prompts.PASSKEY_TASK + \"\\n\", add_special_tokens=True)",
        "tokenizer(prompts.PASSKEY_TASK + \"\\n\", add_special_tokens=False)")], ["tests/eval/test_bos.py"]),
    m("passkey-k-off-by-key", "eval/passkey.py",
      [("    after = k - len(key) - len(pieces.question)\n    before = length - len(pieces.head) - k\n",
        "    after = k - len(pieces.question)\n    before = length - len(pieces.head) - k - len(key)\n")],
      ["tests/eval/test_passkey.py"]),
    m("summarize-keeps-document-end", "eval/summarize.py",
      [("head + doc[:max_input_tokens] + tail", "head + doc[-max_input_tokens:] + tail")],
      ["tests/eval/test_summarize.py"]),
    m("summarize-no-bos", "eval/summarize.py",
      [("tokenizer(prompts.SUMMARIZE_PREFIX, add_special_tokens=True)",
        "tokenizer(prompts.SUMMARIZE_PREFIX, add_special_tokens=False)")], ["tests/eval/test_bos.py"]),
    m("sampling-ignores-top-p", "eval/generate.py",
      [("top_p=top_p if sample else 1.0", "top_p=1.0")], ["tests/eval/test_generate.py"]),
    m("pi-multiplies", "rope/methods.py",
      [("return _out(base_inv_freq(head_dim, base) / s.factor)", "return _out(base_inv_freq(head_dim, base) * s.factor)")],
      ["tests/rope"]),
    m("yarn-ramp-reversed", "rope/methods.py",
      [("return _out(theta / s.factor * ramp + theta * (1 - ramp), attention)",
        "return _out(theta / s.factor * (1 - ramp) + theta * ramp, attention)")], ["tests/rope"]),
    m("llama3-bands-swapped", "rope/methods.py",
      [("return _out(theta / s.factor * (1 - smooth) + theta * smooth)",
        "return _out(theta / s.factor * smooth + theta * (1 - smooth))")], ["tests/rope"]),
    m("dynamic-length-not-clamped", "rope/methods.py",
      [("length = orig if seq_len is None else max(int(seq_len), orig)",
        "length = orig if seq_len is None else int(seq_len)")], ["tests/rope"]),
    # --- grouped knobs, recipes and the passkey span ratio (issue 19) ---
    m("recipe-layer-skipped", "cli.py",
      [("layers = [name for name in (cmd.recipe, config) if name]",
        "layers = [name for name in (config,) if name]")],
      ["tests/test_recipes.py::test_pretrain_starts_from_its_shipped_recipe"]),
    m("record-null-group-beats-flags", "config/flat.py",
      [("if values.get(key) is not None:  # the group's object itself", "if key in values:  # the group's object itself")],
      ["tests/test_recipes.py::test_a_recorded_config_is_a_config_file"]),
    m("span-ratio-ignored", "data/sampler.py",
      [("    return max(1, seq_len // row_len)\n", "    return 1\n")],
      ["tests/data/test_passkey_sampler.py::test_passkey_batches_of_several_spans_keep_the_tokens_per_step"]),
    # --- per-layer-type rope and serving hints (issue 27) ---
    m("proportional-table-standard-base", "models/scale.py",
      [("    b = state.base ** (d / head)\n", "    b = state.base\n")],
      ["tests/models/test_family_defects.py::test_inspect_table_of_a_proportional_rope_is_transformers_own"]),
    m("theory-qk-layout-assumed", "theory/model.py",
      [("        return x[0].transpose(0, 1) if x.shape[1] == tokens else x[0]\n",
        "        return x[0].transpose(0, 1)\n")],
      ["tests/models/test_family_defects.py::test_theory_on_per_layer_type_rope_analyses_the_scaled_layers"]),
    m("llama-cpp-rope-scale-inverted", "rope/methods.py",
      [('["--rope-scaling", "linear", "--rope-scale", flag_number(s.factor)]',
        '["--rope-scaling", "linear", "--rope-scale", flag_number(1 / s.factor)]')],
      ["tests/models/test_families.py::test_family_matrix[Llama]"]),
]  # fmt: skip


def _copy_repo(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("src", "tests", "examples"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    seconds = time.perf_counter() - start
    lines = done.stdout.splitlines()
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    failed += [ln for ln in lines if ln.startswith("E ")][:1]  # the first assertion: why it failed
    if done.returncode == 0:
        return "survived", seconds, ""
    detail = "; ".join(failed)[:500]
    if done.returncode != 1 or "TimeoutExpired" in detail:  # a test's own timeout is no verdict
        return "error", seconds, detail
    return "killed", seconds, detail


def _apply(copy: Path, mut: Mutation) -> tuple[Path, str]:
    path = copy / "src" / "ropescale" / mut.file
    original = path.read_text()
    text = original
    for old, new in mut.edits:
        if text.count(old) != 1:
            raise LookupError(f"{mut.name}: the text to mutate occurs {text.count(old)} times in {mut.file}")
        text = text.replace(old, new)
    path.write_text(text)
    return path, original


def _write(out: Path, rows: list[dict]) -> dict[str, int]:
    sys.path.insert(0, str(ROOT / "src"))
    from ropescale import outputs

    summary = {s: sum(r["status"] == s for r in rows) for s in ("killed", "survived", "error", "timeout")}
    outputs.write_json(out, {"mutations": rows, "summary": summary})
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated mutation names")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--check", action="store_true", help="only check that every mutation applies")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "mutate.json")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per mutation's test run")
    parser.add_argument("--baseline", action="store_true", help="first run every selected test unmutated")
    args = parser.parse_args(argv)
    chosen = MUTATIONS
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {x.name for x in MUTATIONS})
        if unknown:
            print(f"--only: unknown mutation(s) {', '.join(unknown)}; see --list", file=sys.stderr)
            return 2
        chosen = [x for x in MUTATIONS if x.name in names]
    if args.list:
        for x in chosen:
            print(f"{x.name:36s} {x.file:22s} {' '.join(x.tests)}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="ropescale-mutate-") as tmp:
        copy = Path(tmp)
        _copy_repo(copy)
        if args.check:
            bad = []
            for x in chosen:
                try:
                    path, original = _apply(copy, x)
                    path.write_text(original)
                except LookupError as err:
                    bad.append(str(err))
            print("\n".join(bad) or f"all {len(chosen)} mutations apply")
            return 1 if bad else 0
        if args.baseline:
            tests = tuple(dict.fromkeys(t for x in chosen for t in x.tests))
            status, seconds, detail = _run_tests(copy, tests, args.timeout * 2)
            if status != "survived":
                print(f"baseline: the unmutated tests do not pass ({status}: {detail})", file=sys.stderr)
                return 1
        for x in chosen:
            try:
                path, original = _apply(copy, x)
            except LookupError as err:
                rows.append({"name": x.name, "file": x.file, "status": "not-applied", "detail": str(err)})
                print(f"{x.name}: not applied ({err})", file=sys.stderr)
                continue
            try:
                status, seconds, detail = _run_tests(copy, x.tests, args.timeout)
            finally:
                path.write_text(original)
            rows.append({"name": x.name, "file": x.file, "issue_22": x.issue, "tests": list(x.tests),
                         "status": status, "seconds": round(seconds, 1), "detail": detail})  # fmt: skip
            print(f"{x.name}: {status} ({seconds:.0f} s) {detail}", file=sys.stderr, flush=True)
            summary = _write(args.out, rows)  # after each one: a long run shows what it has so far
    summary = _write(args.out, rows)
    width = max(len(r["name"]) for r in rows)
    print(f"{'mutation':{width}s}  {'module':22s}  status     seconds")
    for r in rows:
        print(f"{r['name']:{width}s}  {r['file']:22s}  {r['status']:9s}  {r.get('seconds', '-')}")
    print(f"{json.dumps(summary)}; wrote {args.out}")
    return 1 if summary["survived"] or summary["error"] or summary["timeout"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
