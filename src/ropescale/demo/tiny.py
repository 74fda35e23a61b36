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
from .findings import check_findings, format_findings

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
FULL = Budget(8, (50, 100, 200), 400, 4, 1e-3, 10, 8, 4096, 8, 5, True, rehearse=0.5, ablation=(2, 4, 8),
              ablation_steps=100)  # fmt: skip
QUICK = Budget(
    8, (4,), 0, 2, 1e-3, 2, 1, 2048, 3, 2, False, rehearse=0.5, ablation=(2, 4, 8), ablation_steps=4
)


def base_info(base: Path) -> dict[str, Any]:
    """Window, corpus and the commands that made a checkpoint. `recipe.json` (shipped with our base model)
    lists the commands in order; otherwise the one command recorded in its ropescale.json is used."""
    config = json.loads((base / "config.json").read_text())
    info: dict[str, Any] = {"path": str(base), "window": int(config["max_position_embeddings"])}
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


def run_tiny(base: Path, work: Path, quick: bool, seed: int, stage) -> dict[str, Any]:
    """Run the experiment in `work`; `stage(text)` reports progress. Returns rows and settings."""
    from transformers import AutoTokenizer

    b = QUICK if quick else FULL
    info = base_info(base)
    L = info["window"]
    lengths = [L * 2**i for i in range(int(math.log2(b.factor)) + 1)]
    S = lengths[-1]
    tokenizer = AutoTokenizer.from_pretrained(base)
    stage("held-out documents")
    work.mkdir(parents=True, exist_ok=True)
    pieces = write_heldout(info, tokenizer, work / "heldout.jsonl", b.eval_pieces, b.piece_tokens)
    ev = Evaluator(work / "results", str(work / "heldout.jsonl"), 256, b.passkey_k, b.passkey_trials, seed,
                   data_label="held-out pieces (work/heldout.jsonl)")  # fmt: skip
    near = ShortRange(ablation.sample_ids(work / "heldout.jsonl", tokenizer, L))

    def spec(method: str, s: int = b.factor) -> RopeScaling:
        return RopeScaling(rope_type=method, factor=float(s), original_max_position_embeddings=L)

    def evaluate(row: Row, model: Path, rope: RopeScaling | None, ppl_at: list[int], pk_at=None) -> Row:
        ev.evaluate(row, model, rope, ppl_at, pk_at)
        near.measure(row.key, row.label, model, rope)  # the first one, the base model, is the reference
        return row

    stage("base model, plain RoPE (extrapolation beyond L)")
    evaluate(Row("base", "base (no fine-tuning)", "none", 1.0, 0), base, None, lengths, lengths)
    for s in (2, 4):
        if s < b.factor:
            stage(f"PI x{s} without fine-tuning")
            keep = lengths[: int(math.log2(s)) + 1]
            evaluate(Row(f"pi{s}", f"PI x{s}, no fine-tuning", "linear", s, 0), base, spec("linear", s), keep)
    stage(f"PI x{b.factor} without fine-tuning")
    evaluate(Row("pi_noft", "PI, no fine-tuning", "linear", b.factor, 0), base, spec("linear"), lengths,
                lengths)  # fmt: skip
    if b.others:
        for method in ("ntk", "yarn"):
            stage(f"{method} x{b.factor} without fine-tuning")
            evaluate(Row(f"{method}_noft", f"{method}, no fine-tuning", method, b.factor, 0), base,
                        spec(method), lengths, lengths)  # fmt: skip

    runs = {"pi": ("linear", "PI"), "direct": ("none", "direct")} | (
        {"yarn": ("yarn", "YaRN")} if b.others else {}
    )
    for name, (method, title) in runs.items():
        for steps in b.checkpoints:
            stage(f"{title} fine-tuning to {steps} steps at {S}")
            finetune(base, spec(method), work / "ft" / name, steps, b, info, seed)
            label = f"{title} fine-tuned {steps} steps"
            evaluate(Row(f"{name}_ft{steps}", label, method, b.factor, steps), work / "ft" / name, None,
                        lengths, lengths)  # fmt: skip
    if b.long_steps:
        stage(f"direct fine-tuning continued to {b.long_steps} steps")
        finetune(base, spec("none"), work / "ft" / "direct", b.long_steps, b, info, seed)
        evaluate(Row("direct_long", f"direct fine-tuned {b.long_steps} steps", "none", b.factor, b.long_steps),
                    work / "ft" / "direct", None, lengths, lengths)  # fmt: skip
    cells = []
    for s in b.ablation:
        for name, (method, title) in runs.items():
            key = f"{name}_ft{b.ablation_steps}" if s == b.factor else f"{name}_x{s}_ft{b.ablation_steps}"
            if s != b.factor:
                stage(f"s-ablation: {title} x{s} fine-tuning {b.ablation_steps} steps at {L * s}")
                folder = work / "ablation" / f"{name}_x{s}"
                finetune(base, spec(method, s), folder, b.ablation_steps, b, info, seed)
                label = f"{title} x{s} fine-tuned {b.ablation_steps} steps"
                evaluate(Row(key, label, method, s, b.ablation_steps), folder, None, [L, L * s], [L * s])
            cells.append(ablation.Cell(name, s, ev.row(key)))
    return {"base": info, "budget": b, "lengths": lengths, "pieces": pieces, "evaluator": ev,
            "short_range": near, "ablation": cells}  # fmt: skip


def write_tiny(base: Path, out: Path, cfg: Any, stage) -> dict[str, Any]:
    """Run the experiment into `out`, then its findings, tables, plots, theory figures and summary."""
    run = run_tiny(base, out / "work", cfg.quick, cfg.seed, stage)
    ev, b, lengths, info = run["evaluator"], run["budget"], run["lengths"], run["base"]
    L, S, last = lengths[0], lengths[-1], b.checkpoints[-1]
    rows = {r.key: r for r in ev.rows}
    named = {"base": rows["base"], "pi2": rows.get("pi2"), "pi_ft": rows[f"pi_ft{last}"],
             "direct_ft": rows[f"direct_ft{last}"], "direct_long": rows.get("direct_long")}  # fmt: skip
    findings = check_findings(named, L, b.factor, rows[f"pi_ft{last}"].k_tested.get(S))
    curves = {
        f"PI x{b.factor}": [rows["pi_noft"], *(rows[f"pi_ft{s}"] for s in b.checkpoints)],
        "FT (direct)": [rows["base"], *(rows[f"direct_ft{s}"] for s in b.checkpoints)]
        + ([rows["direct_long"]] if "direct_long" in rows else []),
    }
    if "yarn_noft" in rows and f"yarn_ft{last}" in rows:  # the successor that leaves fast dimensions alone
        curves[f"YaRN x{b.factor}"] = [rows["yarn_noft"], *(rows[f"yarn_ft{s}"] for s in b.checkpoints)]
    stage("report, plots and theory figures")
    t3, t4 = markdown.steps_tables(curves, S)
    shown = {r.label for r in ev.rows if r.key in ("base", "pi_noft", "ntk_noft", "yarn_noft", "direct_long")}
    shown |= {rows[k].label for k in (f"pi_ft{last}", f"direct_ft{last}", f"yarn_ft{last}") if k in rows}
    pngs = markdown.eval_plots(ev.files, shown, S, out)
    pngs.append(markdown.steps_plot(curves, S, out / "steps.png").name)
    config = json.loads((base / "config.json").read_text())
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    theta = (config.get("rope_parameters") or {}).get("rope_theta") or config.get("rope_theta", 10000.0)
    theory = write_figures(out / "theory", head_dim=head_dim, base=theta, window=L)
    near, cells = run["short_range"], run["ablation"]
    near_rows = near.rows()
    for c in cells:
        c.short_range = next(r for r in near_rows if r["key"] == c.row.key)
    heat = ("base", "pi_noft", f"pi_ft{last}", f"direct_ft{last}", f"yarn_ft{last}")
    heat = {near.labels[k]: near.profiles[k] for k in heat if k in near.profiles}
    pngs.append(profiles_plot(heat, out / "short_range.png").name)
    if cells:
        pngs.append(ablation.ablation_plot(cells, L, out / "ablation.png").name)
    scale = ablation.scale_lines(near_rows, cells, head_dim, theta, L, last)
    lines = format_findings(findings) + _yarn_line(rows, b.checkpoints, S) + scale
    held = sum(f["holds"] is True for f in findings)
    head = (
        f"ropescale demo{' --quick' if cfg.quick else ''}: tiny LLaMA ({info.get('parameters')} parameters) "
        f"trained at L={L}, extended x{b.factor} to {S}; fine-tuning {last} steps of {b.batch_size} x {S} "
        f"tokens (direct also {b.long_steps}); {held} of {len(findings)} findings hold"
    )
    summary = "\n".join([head, *lines])
    sections = [
        "## Short-range attention before and after fine-tuning\n\n"
        + ablation.short_range_note(near.labels["base"], int(near.input_ids.shape[1]))
        + "\n\n"
        + ablation.short_range_table(near_rows)
        + "\n\n![short-range attention](short_range.png)",
    ]
    if cells:
        sections.append(
            f"## Ablation over s at a fixed budget\n\nEach cell: {b.ablation_steps} fine-tuning steps of "
            f"{b.batch_size * S} tokens ({b.batch_size * b.factor // min(b.ablation)} x {L * min(b.ablation)} at "
            f"s = {min(b.ablation)} ... {b.batch_size} x {S} at s = {b.factor}), the same data, learning rate and "
            f"rehearsal; ppl on the held-out pieces, k_max(sL) with the mean exact-match accuracy over the tested "
            "distances in brackets.\n\n"
            + ablation.ablation_table(cells, L)
            + "\n\n![ablation over s](ablation.png)"
        )
    sections.append("## What the miniature shows\n\n```\n" + "\n".join(scale) + "\n```")
    text = _markdown(info, b, lengths, ev, run["pieces"], t3, t4, pngs, lines, cfg.quick, sections)
    outputs.write_text(out / "report.md", text)
    return {
        "kind": "demo",
        "model": "tiny",
        "quick": cfg.quick,
        "base": info,
        "budget": b,
        "lengths": lengths,
        "rows": [row_dict(r) for r in ev.rows],
        "findings": findings,
        "short_range": [{**r, "profiles": near.profiles[r["key"]].tolist()} for r in near_rows],
        "ablation": [{"method": c.method, "factor": c.factor, "key": c.row.key} for c in cells],
        "theory": theory,
        "plots": pngs,
        "summary": summary,
    }


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


def _markdown(info, b, lengths, ev, pieces, t3, t4, pngs, lines, quick, sections) -> str:
    L, S = lengths[0], lengths[-1]
    pk = info.get("passkey_fraction") or 0
    mixture = info.get("recipe") or (
        f"{pk:.0%} of its pre-training batches were passkey-format documents within L (loss on "
        f"{'the answer only' if info.get('passkey_loss') == 'answer' else 'every token'}), so the base "
        "model can retrieve within its window before any extension"
        if pk
        else "no passkey documents in pre-training"
    )
    return "\n\n".join([
        f"# ropescale demo{' (quick)' if quick else ''}: Position Interpolation in miniature",
        f"Base model: `{info['path']}`, {info.get('parameters')} parameters, window L = {L}, corpus "
        f"`{info['data']}`; {mixture}. Made by:\n\n"
        + "\n".join(f"    {c}" for c in info["commands"] or ["(no record)"]),
        f"Fine-tuning (PI = `--method linear --factor {b.factor}`, direct = `--method none --factor {b.factor}`): "
        f"next-token loss on {S}-token sequences of the same corpus, AdamW (0.9, 0.95), lr {b.lr:g} constant "
        f"after {b.warmup_steps} warm-up steps, batch {b.batch_size}; {_rehearsal(b, L)}. Evaluation: "
        f"sliding-window perplexity (stride 256) on {pieces} held-out pieces of "
        f"{b.piece_tokens} tokens (documents the base model never trained on); passkey with the paper's prompt, "
        f"{b.passkey_k} distances x {b.passkey_trials} keys per length, k_max = longest distance with >= 20% "
        "success at it and every shorter one.",
        "## Findings\n\n```\n" + "\n".join(lines) + "\n```",
        f"## Table 1: perplexity by evaluation length\n\n{markdown.table1(ev.rows, lengths, L, 'tiny')}",
        f"## Table 3: perplexity at {S} vs fine-tuning steps (0 = no fine-tuning)\n\n{t3}",
        f"## Table 4: effective window k_max at {S} vs fine-tuning steps\n\n{_PASSKEY_CELL}\n\n{t4}",
        f"## Passkey k_max by prompt length\n\n{_PASSKEY_CELL}\n\n{markdown.passkey_table(ev.rows, lengths)}",
        *sections,
        "## Plots\n\n" + "\n".join(f"![{p}]({p})" for p in pngs),
        "## Theory (the paper's Figures 2 and 5 for this model's head size and window)\n\n"
        "![figure 2](theory/figure2.png)\n![figure 5](theory/figure5.png)",
        "Every evaluation's JSON is in `work/results/`; all numbers above are in `results.json`.",
    ]) + "\n"  # fmt: skip


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
