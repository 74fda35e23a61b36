"""Markdown tables in the paper's layout: one row per model / method / window, one column per evaluation
length (arXiv 2306.15595, Tables 1-4). Cells a result does not cover are "-"."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any


def row_label(model: dict[str, Any]) -> tuple[str, str, int]:
    """(model, method, window) of a result's model description; a model with rope per layer type names the
    layer types the method applies to (the others keep their rope)."""
    method = model["method"] if model["method"] == "none" else f"{model['method']} x{model['factor']:g}"
    scaled = [x["layer_type"] for x in model.get("layers") or [] if x["scaled"]]
    if scaled and model["method"] != "none":
        method += f" on {'/'.join(scaled)}"
    return (model["name"], method, int(model["window"]))


def layer_ropes(results: list[dict[str, Any]]) -> dict[tuple[str, str, int], str]:
    """{row label: each layer type's rope} for the rows whose model has rope per layer type."""
    lines = {}
    for r in results:
        model = r.get("model")
        layers = (model.get("layers") or []) if isinstance(model, dict) else []
        if layers:
            lines[row_label(model)] = "; ".join(map(_layer_rope, layers))
    return lines


def _layer_rope(x: dict[str, Any]) -> str:
    factor = f" x{x['factor']:g}" if x.get("factor") not in (None, 1, 1.0) else ""
    return f"{x['layer_type']} {x['rope_type']}{factor} base {x['rope_theta']:g} ({'scaled' if x['scaled'] else 'kept'})"


def layer_rope_section(lines: dict[tuple[str, str, int], str]) -> list[str]:
    """The report's section on rope per layer type ([] when no row has one)."""
    body = "\n".join(f"- {' / '.join(map(str, label))}: {text}" for label, text in lines.items())
    return [f"## Rope per layer type\n\n{body}"] if lines else []


def fmt_ppl(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.2f}" if value < 1000 else f"{value:.3g}"


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def ppl_tables(results: list[dict[str, Any]]) -> list[str]:
    """One table per dataset: perplexity by row and evaluation length, then the 95% intervals."""
    by_data: dict[str, dict[tuple, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        for cell in r["lengths"]:
            by_data[r["data"]["spec"]][row_label(r["model"])][cell["length"]] = {**cell, "docs": r["data"]}
    out = []
    for spec, rows in by_data.items():
        lengths = sorted({n for cells in rows.values() for n in cells})
        header = ["Model", "Method", "Ctx window", *map(str, lengths)]
        body = [
            [*label, *(fmt_ppl(cells.get(n, {}).get("ppl")) for n in lengths)]
            for label, cells in rows.items()
        ]
        detail = [
            [*label, n, c["stride"], c["documents"], c["tokens"], fmt_ppl(c["ppl"]),
             f"[{fmt_ppl(c['ci95'][0])}, {fmt_ppl(c['ci95'][1])}]"]
            for label, cells in rows.items() for n, c in sorted(cells.items())
        ]  # fmt: skip
        out.append(f"### Perplexity on `{spec}` (sliding window, Press et al.)\n\n{markdown(header, body)}")
        head2 = [
            "Model",
            "Method",
            "Ctx window",
            "Length",
            "Stride",
            "Docs",
            "Scored tokens",
            "PPL",
            "95% CI",
        ]
        out.append(f"95% bootstrap intervals over documents:\n\n{markdown(head2, detail)}")
        lines = [
            f"- {' / '.join(map(str, label))} @ {n}: "
            + ", ".join(
                f"{b['from']}–{b['to']}: {fmt_ppl(b['ppl'])}" for b in c["by_position"] if b["tokens"]
            )
            for label, cells in rows.items()
            for n, c in sorted(cells.items())
            if c.get("by_position")
        ]
        if lines:
            out.append("Perplexity by position of the scored token in its window:\n\n" + "\n".join(lines))
    return out


def passkey_tables(results: list[dict[str, Any]]) -> list[str]:
    """k_max and mean accuracy by row and prompt length; then each depth grid."""
    rows: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in results:
        for cell in r["lengths"]:
            if cell["ks"]:
                rows[row_label(r["model"])][cell["length"]] = cell
    out = []
    if rows:
        lengths = sorted({n for cells in rows.values() for n in cells})
        body = [
            [
                *label,
                *(f"{c['k_max']} ({c['accuracy']:.0%})" if (c := cells.get(n)) else "-" for n in lengths),
            ]
            for label, cells in rows.items()
        ]
        header = ["Model", "Method", "Ctx window", *map(str, lengths)]
        out.append(f"### Passkey: effective window k_max (mean accuracy over k)\n\n{markdown(header, body)}")
    for r in results:
        if r["depths"]:
            depths = sorted({c["depth"] for c in r["depths"]})
            acc = {(c["length"], c["depth"]): c["accuracy"] for c in r["depths"]}
            lengths = sorted({c["length"] for c in r["depths"]})
            body = [[n, *(f"{acc[(n, d)]:.0%}" if (n, d) in acc else "-" for d in depths)] for n in lengths]
            name = " / ".join(map(str, row_label(r["model"])))
            title = f"### Passkey accuracy by length and depth: {name}"
            out.append(f"{title}\n\n{markdown(['Length', *(f'depth {d:g}' for d in depths)], body)}")
    return out


def summarize_tables(results: list[dict[str, Any]]) -> list[str]:
    body = [
        [*row_label(r["model"]), r["data"]["spec"], r["data"]["documents"],
         *(f"{r['rouge'][k]['f']:.1f}" for k in ("rouge1", "rouge2", "rougeL"))]
        for r in results
    ]  # fmt: skip
    header = ["Model", "Method", "Ctx window", "Data", "Docs", "ROUGE-1", "ROUGE-2", "ROUGE-L"]
    return [f"### Summarization (ROUGE F-measure x100)\n\n{markdown(header, body)}"] if body else []


def harness_tables(results: list[dict[str, Any]]) -> list[str]:
    rows, columns = [], []
    for r in results:
        for side in ("before", "after"):
            if side not in r:
                continue
            values = {}
            if "ppl" in r[side]:
                values[f"ppl @ {r[side]['ppl']['length']}"] = fmt_ppl(r[side]["ppl"]["ppl"])
            for task, metrics in r[side].get("tasks", {}).items():
                values.update({f"{task} {k}": f"{v:.3f}" for k, v in metrics.items() if "stderr" not in k})
            if side == "after" and "ppl_relative" in r.get("change", {}):
                values["ppl change"] = f"{r['change']['ppl_relative']:+.2%}"
            columns += [c for c in values if c not in columns]
            rows.append((row_label(r[side]["model"]), values))
    if not rows:
        return []
    body = [[*label, *(values.get(c, "-") for c in columns)] for label, values in rows]
    header = ["Model", "Method", "Ctx window", *columns]
    return [f"### Short-context checks (inside the original window)\n\n{markdown(header, body)}"]


def ruler_tables(results: list[dict[str, Any]]) -> list[str]:
    """RULER: the average score per length (and the effective length) by row, then each run's tasks x
    lengths. Tasks run on a local haystack instead of lm-eval's downloads are marked "(local haystack)"."""
    if not results:
        return []
    lengths = sorted({r["length"] for res in results for r in res["lengths"]})
    body = []
    for res in results:
        avg = {r["length"]: r["average"] for r in res["lengths"]}
        eff = res["effective_length"]
        body.append(
            [*row_label(res["model"]), *(f"{avg[n]:.1f}" if n in avg else "-" for n in lengths),
             eff if eff is not None else "-", f"{res['threshold']:g}"]
        )  # fmt: skip
    header = ["Model", "Method", "Ctx window", *map(str, lengths), "Effective length", "Threshold"]
    out = [f"### RULER: average score over tasks (0-100) by length\n\n{markdown(header, body)}"]
    for res in results:
        local = set((res.get("local_haystack") or {}).get("tasks", []))
        rows = [
            [
                f"{t} (local haystack)" if t in local else t,
                *(f"{r['scores'][t]:.1f}" if t in r["scores"] else "-" for r in res["lengths"]),
            ]
            for t in res["tasks"]
        ]
        rows.append(["average", *(f"{r['average']:.1f}" for r in res["lengths"])])
        samples = sorted({c for r in res["lengths"] for c in r["samples"].values()})
        name = " / ".join(map(str, row_label(res["model"])))
        note = f"{','.join(map(str, samples))} samples per task and length, {res['timings']['total_s']:.0f} s"
        if local:
            lh = res["local_haystack"]
            note += f"; local haystack: {lh['corpus']}, sentences split by {lh['sentence_splitter']}"
        head = ["Task", *(str(r["length"]) for r in res["lengths"])]
        out.append(f"### RULER by task: {name}\n\n{markdown(head, rows)}\n\n{note}")
    return out
