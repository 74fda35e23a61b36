"""The tiny-model demo: the paper's experiment in miniature (arXiv 2306.15595, section 3).

A small LLaMA trained at window L (shipped with ropescale, made by `ropescale pretrain`; its command is in
its ropescale.json) is extended to 8L four ways, with the same data and the same steps:
  base       unchanged, evaluated at L..8L (extrapolation);
  PI         linear x2/x4/x8 without fine-tuning, and NTK/YaRN x8 without fine-tuning;
  PI FT      linear x8, fine-tuned at 8L (the paper's recipe with a tiny model's learning rate);
  direct FT  plain positions (--method none) fine-tuned at 8L with the same steps, then several times more.
Every model gets sliding-window perplexity at L, 2L, 4L, 8L on held-out documents of the base model's own
corpus (the documents its pre-training held out) and passkey retrieval (k_max) at the same lengths, and its
short-range attention profile is compared with the base model's. Then the s-ablation (demo/ablation.py):
PI, direct and YaRN fine-tuned at s = 2, 4, 8 with the same steps and tokens per step.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
    PasskeyMix,
    PretrainConfig,
    RopeScaling,
    TrainConfig,
)
from ..config.flat import by_flag
from ..data.corpora import load_documents
from ..data.packing import is_validation
from ..models.load import BUILTIN_DIRS
from ..theory.figures import write_figures
from ..theory.short_range import profiles_plot
from . import ablation, markdown
from .ablation import ShortRange
from .evals import Evaluator, Row, row_dict
from .experiment import Cell, Shape, Stage, model_shape, run_cells, scaling
from .findings import check_findings, format_findings, tally

BASE_DIR = BUILTIN_DIRS["tiny"]  # MODEL `tiny` in every command


@dataclass(frozen=True)
class Budget:
    """How much of the experiment to run."""

    factor: int  # the extension s: L -> s L
    checkpoints: tuple[int, ...]  # fine-tuning steps at which PI and direct models are evaluated
    long_steps: int  # direct fine-tuning with several times the steps (0 = skip)
    batch_size: int  # sequences of s L tokens per step
    lr: float
    warmup_steps: int
    eval_pieces: int  # held-out pieces for perplexity
    piece_tokens: int  # tokens per piece (>= s L, so the longest window is filled)
    passkey_k: int  # distances per passkey length
    passkey_trials: int
    others: bool  # NTK and YaRN without fine-tuning, and YaRN fine-tuned like PI
    rehearse: float = 0.0  # fraction of fine-tuning batches that are passkey documents within L
    ablation: tuple[int, ...] = ()  # the s-ablation's factors (each divides `factor`)
    ablation_steps: int = 0  # fine-tuning steps per ablation cell (one of `checkpoints`: reused at `factor`)


# The ablation's cells get 100 steps (the main run's middle checkpoint), not 200: six more runs of 200
# steps would take `make demo-tiny` past 25 minutes on 2 cores.
FULL = Budget(
    factor=8,
    checkpoints=(50, 100, 200),
    long_steps=400,
    batch_size=4,
    lr=1e-3,
    warmup_steps=10,
    eval_pieces=8,
    piece_tokens=4096,
    passkey_k=8,
    passkey_trials=5,
    others=True,
    rehearse=0.5,
    ablation=(2, 4, 8),
    ablation_steps=100,
)
QUICK = dataclasses.replace(
    FULL,
    checkpoints=(4,),
    long_steps=0,
    batch_size=2,
    warmup_steps=2,
    eval_pieces=1,
    piece_tokens=2048,
    passkey_k=3,
    passkey_trials=2,
    others=False,
    ablation_steps=4,
)


def base_info(base: Path) -> dict[str, Any]:
    """Window, corpus and the commands that made a checkpoint. `recipe.json` (shipped with our base model)
    lists the commands in order; otherwise the one command recorded in its ropescale.json is used."""
    info: dict[str, Any] = {"path": str(base), "window": model_shape(base).window}
    record = base / "ropescale.json"
    if record.is_file():
        r = json.loads(record.read_text())
        command = r.get("command", "pretrain")
        cfg = by_flag(TrainConfig if command == "train" else PretrainConfig, r.get("config", {}))
        info.update(
            data=cfg.get("data", "shakespeare"),
            val_fraction=cfg.get("val_fraction", 0.02),
            max_tokens=cfg.get("max_tokens"),
            parameters=r.get("parameters"),
            passkey_fraction=cfg.get("passkey_fraction", 0.0),
            passkey_loss=cfg.get("passkey_loss", "document"),
            commands=[command_line(command, cfg)],
        )
    recipe = base / "recipe.json"
    if recipe.is_file():
        made = json.loads(recipe.read_text())
        info.update(commands=made["commands"], recipe=made.get("summary"))
    info.setdefault("data", "shakespeare")
    info.setdefault("val_fraction", 0.02)
    info.setdefault("commands", [])
    return info


def command_line(command: str, cfg: dict[str, Any]) -> str:
    """The `ropescale pretrain|train` command line that reproduces a configuration ({flag name: value},
    `by_flag` of its record)."""
    skip = {"out", "cache_dir", "overwrite", "resume", "model", "device", "dtype", "trust_remote_code"}
    parts = [f"ropescale {command}"] + ([str(cfg["model"])] if cfg.get("model") else []) + ["--out DIR"]
    for key, value in cfg.items():
        if key in skip or value is None or isinstance(value, dict):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, list):
            parts.append(f"{flag} {','.join(map(str, value))}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def write_heldout(info: dict[str, Any], tokenizer: Any, out: Path, pieces: int, tokens: int) -> int:
    """The base model's held-out documents (same hash split as its pre-training), cut into `pieces`
    pieces of `tokens` tokens taken round-robin across documents, as JSON lines. Returns the count."""

    docs = [t for t in load_documents(info["data"]) if is_validation(t, info["val_fraction"])]
    cuts = []
    for text in docs:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        cuts.append([ids[i : i + tokens] for i in range(0, len(ids) - tokens + 1, tokens)])
    chosen = [c[i] for i in range(max(map(len, cuts), default=0)) for c in cuts if i < len(c)][:pieces]
    if not chosen:
        raise ValueError(f"--base: its corpus {info['data']} has no held-out document of {tokens} tokens")
    out.write_text("".join(json.dumps({"text": tokenizer.decode(p)}) + "\n" for p in chosen))
    return len(chosen)


def finetune(base: Path, rope: RopeScaling, out: Path, steps: int, b: Budget, info: dict, seed: int) -> None:
    """Fine-tune to `steps` total at s L, s = rope.factor (resuming `out` when it already holds an earlier
    checkpoint). Every factor gets the same tokens per step: batch_size x factor / s sequences of s L."""

    s = round(rope.factor)
    assert b.factor % s == 0, (b.factor, s)
    window, batch = info["window"] * s, b.batch_size * b.factor // s
    # the base model's own corpus (its --max-tokens reads a prefix of it: the same prefix here)
    tokens = info.get("max_tokens")
    resume = (out / "checkpoints").is_dir()
    run_train(
        TrainConfig(
            model=str(base), rope=rope, out=out, seq_len=window, steps=steps, batch_size=batch,
            micro_batch_size=batch, resume=resume, seed=seed,
            data=DataOptions(source=info["data"], val_fraction=info["val_fraction"], max_tokens=tokens,
                             cache_dir=out.parent / ".cache"),
            passkey=PasskeyMix(fraction=b.rehearse, loss="answer", min_fill=0.0, span=info["window"]),
            optim=OptimOptions(lr=b.lr, warmup_steps=b.warmup_steps),
            memory=MemoryOptions(activation_checkpointing=False),
            checkpoints=CheckpointOptions(save_every=10**9, keep_checkpoints=1, eval_sequences=2),
            load=LoadOptions(dtype="float32"),
        )
    )  # fmt: skip


RUNS = {"pi": ("linear", "PI"), "direct": ("none", "direct"), "yarn": ("yarn", "YaRN"), "abf": ("abf", "ABF")}


def tiny_cells(b: Budget, window: int) -> list[Cell]:
    """The experiment in order: the untuned models, the fine-tuning runs at their checkpoints, the
    s-ablation's extra cells (its cells at s = factor are the main run's)."""
    lengths = tuple(window * 2**i for i in range(int(math.log2(b.factor)) + 1))
    every = {"ppl": lengths, "passkey": lengths}
    cells = [
        Cell(
            "base",
            "base (no fine-tuning)",
            "none",
            1.0,
            stage="base model, plain RoPE (extrapolation beyond L)",
            **every,
        )
    ]
    cells += [
        Cell(
            f"pi{s}",
            f"PI x{s}, no fine-tuning",
            "linear",
            s,
            ppl=lengths[: int(math.log2(s)) + 1],
            stage=f"PI x{s} without fine-tuning",
        )
        for s in (2, 4)
        if s < b.factor
    ]
    untuned = {"pi": ("linear", "PI")} | (
        {"ntk": ("ntk", "ntk"), "yarn": ("yarn", "yarn")} if b.others else {}
    )
    cells += [
        Cell(
            f"{name}_noft",
            f"{title}, no fine-tuning",
            method,
            b.factor,
            stage=f"{title} x{b.factor} without fine-tuning",
            **every,
        )
        for name, (method, title) in untuned.items()
    ]
    return cells + tuned_cells(b, lengths) + ablation_cells(b, window)


def tuned_cells(b: Budget, lengths: tuple[int, ...]) -> list[Cell]:
    """The fine-tuning runs at sL: each method's checkpoints, then direct fine-tuning's long run."""
    S, every = lengths[-1], {"ppl": lengths, "passkey": lengths}
    cells = [
        Cell(
            f"{name}_ft{steps}",
            f"{title} fine-tuned {steps} steps",
            method,
            b.factor,
            steps,
            folder=f"ft/{name}",
            stage=f"{title} fine-tuning to {steps} steps at {S}",
            **every,
        )
        for name, (method, title) in tiny_runs(b).items()
        for steps in b.checkpoints
    ]
    if b.long_steps:
        text = f"direct fine-tuning continued to {b.long_steps} steps"
        cells.append(
            Cell(
                "direct_long",
                f"direct fine-tuned {b.long_steps} steps",
                "none",
                b.factor,
                b.long_steps,
                folder="ft/direct",
                stage=text,
                **every,
            )
        )
    return cells


def tiny_runs(b: Budget) -> dict[str, tuple[str, str]]:
    """The main run's fine-tuned methods: {name: (method, title)}; YaRN only with the controls (ABF is in
    the s-ablation only)."""
    return {k: v for k, v in RUNS.items() if k in ("pi", "direct") or (k == "yarn" and b.others)}


def ablation_keys(b: Budget) -> list[tuple[str, int, str]]:
    """The s-ablation's cells in order: (name, s, row key); at s = factor the main run's row, except for
    ABF (its base chosen by the bound for s L), which has no main run and gets a cell at every s."""
    steps, main = b.ablation_steps, tiny_runs(b)
    return [
        (name, s, f"{name}_ft{steps}" if s == b.factor and name in main else f"{name}_x{s}_ft{steps}")
        for s in b.ablation
        for name in [*main, "abf"]
    ]


def ablation_cells(b: Budget, window: int) -> list[Cell]:
    """The s-ablation's cells other than the main run's: fine-tuned at s L, ppl at L and s L, passkey at s L."""
    cells = []
    for name, s, key in ablation_keys(b):
        if key.startswith(f"{name}_x"):  # not a main-run row
            (method, title), steps, S = RUNS[name], b.ablation_steps, window * s
            text = f"s-ablation: {title} x{s} fine-tuning {steps} steps at {S}"
            cells.append(
                Cell(
                    key,
                    f"{title} x{s} fine-tuned {steps} steps",
                    method,
                    s,
                    steps,
                    folder=f"ablation/{name}_x{s}",
                    ppl=(window, S),
                    passkey=(S,),
                    stage=text,
                )
            )
    return cells


@dataclass
class TinyLab:
    """How the tiny demo fine-tunes (`finetune`) and evaluates (perplexity, passkey, short range)."""

    base: Path
    work: Path
    budget: Budget
    info: dict[str, Any]
    seed: int
    evaluator: Evaluator
    near: ShortRange
    shape: Shape  # window, rotary dim and base (abf's base comes from them)

    def rope(self, cell: Cell) -> RopeScaling:  # none x s: plain RoPE over the s L window (direct FT)
        return scaling(cell, self.shape)

    def train(self, cell: Cell) -> Path:
        folder = self.work / cell.folder
        finetune(self.base, self.rope(cell), folder, cell.steps, self.budget, self.info, self.seed)
        return folder

    def evaluate(self, cell: Cell, row: Row, model: Path, rope: RopeScaling | None) -> Row:
        self.evaluator.evaluate(row, model, rope, list(cell.ppl), list(cell.passkey) or None)
        self.near.measure(row.key, row.label, model, rope)  # the first one, the base model, is the reference
        return row


@dataclass
class TinyRun:
    """What `run_tiny` measured: the rows (in the evaluator), the short-range profiles, the ablation."""

    base: dict[str, Any]  # base_info
    budget: Budget
    lengths: list[int]
    pieces: int
    evaluator: Evaluator
    short_range: ShortRange
    ablation: list[ablation.Point]

    @property
    def rows(self) -> dict[str, Row]:
        return {r.key: r for r in self.evaluator.rows}


def run_tiny(base: Path, work: Path, quick: bool, seed: int, stage: Stage) -> TinyRun:
    """Run the experiment in `work`; `stage(text)` reports progress."""
    from transformers import AutoTokenizer  # deferred: transformers is slow to import

    b = QUICK if quick else FULL
    info = base_info(base)
    L = info["window"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    stage("held-out documents")
    work.mkdir(parents=True, exist_ok=True)
    pieces = write_heldout(info, tokenizer, work / "heldout.jsonl", b.eval_pieces, b.piece_tokens)
    ev = Evaluator(work / "results", str(work / "heldout.jsonl"), 256, b.passkey_k, b.passkey_trials, seed,
                   data_label="held-out pieces (work/heldout.jsonl)")  # fmt: skip
    near = ShortRange(ablation.sample_ids(work / "heldout.jsonl", tokenizer, L))
    cells = tiny_cells(b, L)
    run_cells(cells, TinyLab(base, work, b, info, seed, ev, near, model_shape(base)), stage)
    points = [ablation.Point(name, s, ev.row(key)) for name, s, key in ablation_keys(b)]
    return TinyRun(info, b, list(cells[0].ppl), pieces, ev, near, points)


def write_tiny(base: Path, out: Path, cfg: Any, stage: Stage) -> dict[str, Any]:
    """Run the experiment into `out`, then its findings, tables, plots, theory figures and summary."""

    run = run_tiny(base, out / "work", cfg.quick, cfg.seed, stage)
    b, rows, lengths = run.budget, run.rows, run.lengths
    L, S, last = lengths[0], lengths[-1], b.checkpoints[-1]
    named = {"base": rows["base"], "pi2": rows.get("pi2"), "pi_ft": rows[f"pi_ft{last}"],
             "direct_ft": rows[f"direct_ft{last}"], "direct_long": rows.get("direct_long")}  # fmt: skip
    findings = check_findings(named, L, b.factor, rows[f"pi_ft{last}"].k_tested.get(S))
    curves = _curves(rows, b, S)
    stage("report, plots and theory figures")
    shape = model_shape(base)
    theory = write_figures(out / "theory", head_dim=shape.head_dim, base=shape.theta, window=L)
    near_rows = run.short_range.rows()
    for c in run.ablation:
        c.short_range = next(r for r in near_rows if r["key"] == c.row.key)
    pngs = _plots(run, curves, out)
    scale = ablation.scale_lines(near_rows, run.ablation, shape.head_dim, shape.theta, L, last)
    lines = format_findings(findings) + _yarn_line(rows, b.checkpoints, S) + scale
    head = (
        f"ropescale demo{' --quick' if cfg.quick else ''}: tiny LLaMA ({run.base.get('parameters')} parameters) "
        f"trained at L={L}, extended x{b.factor} to {S}; fine-tuning {last} steps of {b.batch_size} x {S} "
        f"tokens (direct also {b.long_steps}); {tally(findings)}"
    )
    summary = "\n".join([head, *lines, *_model_lines(run)])
    outputs.write_text(
        out / "report.md", _markdown(run, curves, pngs, lines, cfg.quick, _sections(run, near_rows, scale))
    )
    return {
        "kind": "demo",
        "model": "tiny",
        "quick": cfg.quick,
        "base": run.base,
        "budget": b,
        "lengths": lengths,
        "rows": [row_dict(r) for r in run.evaluator.rows],
        "findings": findings,
        "short_range": [{**r, "profiles": run.short_range.profiles[r["key"]].tolist()} for r in near_rows],
        "ablation": [{"method": c.method, "factor": c.factor, "key": c.row.key} for c in run.ablation],
        "theory": theory,
        "plots": pngs,
        "summary": summary,
    }


def _model_lines(run: TinyRun) -> list[str]:
    """Per model evaluated at sL: ppl(sL), ppl on positions [L, sL), ppl(L) and its in-window retention."""
    L, S, rows = run.lengths[0], run.lengths[-1], run.evaluator.rows
    head = (
        f"models (ppl on the held-out pieces: at {S}, on positions [{L}, {S}) of the {S}-token windows, at {L} "
        f"and its in-window retention as % of the base's ppl({L})):"
    )
    base = run.rows["base"]
    return [head] + [f"  {r.label:<32} {markdown.extension_line(r, base, L, S)}" for r in rows if S in r.ppl]


def _curves(rows: dict[str, Row], b: Budget, length: int) -> dict[str, list[Row]]:
    """Perplexity and passkey at sL against fine-tuning steps, one curve per fine-tuned method."""
    curves = {
        f"PI x{b.factor}": [rows["pi_noft"], *(rows[f"pi_ft{s}"] for s in b.checkpoints)],
        "FT (direct)": [rows["base"], *(rows[f"direct_ft{s}"] for s in b.checkpoints)]
        + ([rows["direct_long"]] if "direct_long" in rows else []),
    }
    if (
        "yarn_noft" in rows and f"yarn_ft{b.checkpoints[-1]}" in rows
    ):  # the successor that leaves fast dimensions alone
        curves[f"YaRN x{b.factor}"] = [rows["yarn_noft"], *(rows[f"yarn_ft{s}"] for s in b.checkpoints)]
    return curves


def _plots(run: TinyRun, curves: dict[str, list[Row]], out: Path) -> list[str]:
    """The report's plots: `ropescale report`'s for the main models, steps, short range, ablation."""
    rows, last, S = run.rows, run.budget.checkpoints[-1], run.lengths[-1]
    ev, near = run.evaluator, run.short_range
    shown = {r.label for r in ev.rows if r.key in ("base", "pi_noft", "ntk_noft", "yarn_noft", "direct_long")}
    shown |= {rows[k].label for k in (f"pi_ft{last}", f"direct_ft{last}", f"yarn_ft{last}") if k in rows}
    pngs = markdown.eval_plots(ev.files, shown, S, out)
    pngs.append(markdown.steps_plot(curves, S, out / "steps.png").name)
    heat = ("base", "pi_noft", f"pi_ft{last}", f"direct_ft{last}", f"yarn_ft{last}")
    heat = {near.labels[k]: near.profiles[k] for k in heat if k in near.profiles}
    pngs.append(profiles_plot(heat, out / "short_range.png").name)
    if run.ablation:
        pngs.append(ablation.ablation_plot(run.ablation, run.lengths[0], out / "ablation.png").name)
    return pngs


def _sections(run: TinyRun, near_rows: list[dict[str, Any]], scale: list[str]) -> list[str]:
    """The report's sections after the paper's tables: short range, the s-ablation, what it shows."""
    b, near, L, S = run.budget, run.short_range, run.lengths[0], run.lengths[-1]
    sections = [
        "## Short-range attention before and after fine-tuning\n\n"
        + ablation.short_range_note(near.labels["base"], int(near.input_ids.shape[1]))
        + "\n\n"
        + ablation.short_range_table(near_rows)
        + "\n\n![short-range attention](short_range.png)",
    ]
    if run.ablation:
        sections.append(
            f"## Ablation over s at a fixed budget\n\nEach cell: {b.ablation_steps} fine-tuning steps of "
            f"{b.batch_size * S} tokens ({b.batch_size * b.factor // min(b.ablation)} x {L * min(b.ablation)} at "
            f"s = {min(b.ablation)} ... {b.batch_size} x {S} at s = {b.factor}), the same data, learning rate and "
            f"rehearsal; ppl on the held-out pieces, k_max(sL) with the mean exact-match accuracy over the tested "
            "distances in brackets.\n\n"
            + ablation.ablation_table(run.ablation, L)
            + "\n\n![ablation over s](ablation.png)"
        )
    sections.append("## What the miniature shows\n\n```\n" + "\n".join(scale) + "\n```")
    return sections


def _yarn_line(rows: dict[str, Row], checkpoints: tuple[int, ...], length: int) -> list[str]:
    """The same fine-tuning with YaRN in PI's place (not one of the paper's findings: a control that
    interpolates only the slow dimensions and leaves the fast ones, which resolve single tokens, alone)."""
    tuned = [rows[f"yarn_ft{s}"] for s in checkpoints if f"yarn_ft{s}" in rows]
    if not tuned:
        return []
    at = ", ".join(
        f"{r.ft_steps} steps ppl {r.ppl[length]:.4g}, k_max {r.k_max[length]} ({r.passkey_accuracy[length]:.0%})"
        for r in tuned
    )
    return [f"control: YaRN x{tuned[0].factor:g} fine-tuned the same way, at {length}: {at}"]


def _markdown(
    run: TinyRun,
    curves: dict[str, list[Row]],
    pngs: list[str],
    lines: list[str],
    quick: bool,
    sections: list[str],
) -> str:
    b, info, ev, lengths = run.budget, run.base, run.evaluator, run.lengths
    L, S = lengths[0], lengths[-1]
    t3, t4 = markdown.steps_tables(curves, S)
    tables = [
        ("Table 1: perplexity by evaluation length", markdown.table1(ev.rows, lengths, L, "tiny")),
        (f"Table 3: perplexity at {S} vs fine-tuning steps (0 = no fine-tuning)", t3),
        (f"Table 4: effective window k_max at {S} vs fine-tuning steps", f"{_PASSKEY_CELL}\n\n{t4}"),
        ("Passkey k_max by prompt length", f"{_PASSKEY_CELL}\n\n{markdown.passkey_table(ev.rows, lengths)}"),
    ]
    title = f"ropescale demo{' (quick)' if quick else ''}: Position Interpolation in miniature"
    theory = (
        "## Theory (the paper's Figures 2 and 5 for this model's head size and window)\n\n"
        "![figure 2](theory/figure2.png)\n![figure 5](theory/figure5.png)"
    )
    intro = [_base_paragraph(info, L), _method_paragraph(b, run.pieces, L, S)]
    return markdown.page(title, intro, lines, tables, sections, pngs, after=[theory])


def _base_paragraph(info: dict[str, Any], window: int) -> str:
    pk = info.get("passkey_fraction") or 0
    mixture = info.get("recipe") or (
        f"{pk:.0%} of its pre-training batches were passkey-format documents within L (loss on "
        f"{'the answer only' if info.get('passkey_loss') == 'answer' else 'every token'}), so the base "
        "model can retrieve within its window before any extension"
        if pk
        else "no passkey documents in pre-training"
    )
    return (
        f"Base model: `{info['path']}`, {info.get('parameters')} parameters, window L = {window}, corpus "
        f"`{info['data']}`; {mixture}. Made by:\n\n"
        + "\n".join(f"    {c}" for c in info["commands"] or ["(no record)"])
    )


def _method_paragraph(b: Budget, pieces: int, window: int, length: int) -> str:
    return (
        f"Fine-tuning (PI = `--method linear --factor {b.factor}`, direct = `--method none --factor {b.factor}`): "
        f"next-token loss on {length}-token sequences of the same corpus, AdamW (0.9, 0.95), lr {b.lr:g} constant "
        f"after {b.warmup_steps} warm-up steps, batch {b.batch_size}; {_rehearsal(b, window)}. Evaluation: "
        f"sliding-window perplexity (stride 256) on {pieces} held-out pieces of "
        f"{b.piece_tokens} tokens (documents the base model never trained on); passkey with the paper's prompt, "
        f"{b.passkey_k} distances x {b.passkey_trials} keys per length, k_max = longest distance with >= 20% "
        "success at it and every shorter one."
    )


_PASSKEY_CELL = (
    "Each cell: k_max (mean exact-match accuracy over the tested distances; how often the answer held the "
    "key's digits in any order). The second figure is a diagnostic, not the paper's: it tells a key found "
    "but garbled from a key never found."
)


def _rehearsal(b: Budget, window: int) -> str:
    if not b.rehearse:
        return "no passkey documents"
    return (
        f"{b.rehearse:.0%} of the batches are passkey documents no longer than L = {window} (loss on the answer), "
        "so fine-tuning keeps the base model's retrieval skill without ever showing a key farther than L"
    )
