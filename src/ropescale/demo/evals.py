"""One evaluation step of a demo: perplexity and passkey for a model under a scaling, kept as result files.

Each call runs the same code as `ropescale eval ppl` / `ropescale eval passkey` (in process), writes the
result JSON next to the others, and keeps a compact row (perplexity and k_max by length) for the demo's
tables and findings.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import outputs
from ..commands.passkey import run_passkey
from ..commands.ppl import run_ppl
from ..config import LoadOptions, PasskeyConfig, PplConfig, RopeScaling


@dataclass
class Row:
    """One model in the demo's tables: what it is, and its numbers by evaluation length."""

    key: str
    label: str
    method: str
    factor: float
    ft_steps: int
    ppl: dict[int, float] = field(default_factory=dict)
    ppl_ci: dict[int, list[float]] = field(default_factory=dict)
    k_max: dict[int, int] = field(default_factory=dict)
    passkey_accuracy: dict[int, float] = field(default_factory=dict)
    passkey_found: dict[int, float] = field(default_factory=dict)  # key's digits in any order (diagnostic)
    k_tested: dict[int, int] = field(default_factory=dict)  # the longest distance tried, by length
    depth_accuracy: dict[int, float] = field(default_factory=dict)  # exact match at the key depth, by length
    by_position: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # ppl by window position


@dataclass
class Evaluator:
    """Evaluates models on one set of held-out documents and passkey lengths; results go to `folder`."""

    folder: Path
    data: str
    stride: int
    passkey_k: int
    passkey_trials: int
    seed: int = 0
    truncate_to: int | None = None
    max_docs: int | None = None
    data_label: str | None = None  # how results name the data (default: `data`)
    passkey_depths: tuple[float, ...] | None = None  # also (or, with passkey_k = 0, only) keys at a depth
    load: LoadOptions = field(default_factory=LoadOptions)
    rows: list[Row] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def evaluate(
        self,
        row: Row,
        model: str | Path,
        rope: RopeScaling | None,
        ppl_lengths: list[int],
        passkey_lengths: list[int] | None = None,
    ) -> Row:

        self.folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", row.key)
        out = self.folder / f"{slug}.ppl.json"
        ppl = run_ppl(
            PplConfig(
                model=str(model), data=self.data, lengths=ppl_lengths, stride=min(self.stride, *ppl_lengths),
                max_docs=self.max_docs, truncate_to=self.truncate_to, allow_extrapolation=True,
                bootstrap=200, seed=self.seed, rope=rope, load=self.load, out=out,
            )
        )  # fmt: skip
        ppl["data"]["spec"] = self.data_label or self.data
        _relabel(ppl, row, out)
        self.files.append(out)
        for cell in ppl["lengths"]:
            row.ppl[cell["length"]] = cell["ppl"]
            row.ppl_ci[cell["length"]] = cell["ci95"]
            row.by_position[cell["length"]] = cell["by_position"]
        if passkey_lengths:
            out = self.folder / f"{slug}.passkey.json"
            pk = run_passkey(
                PasskeyConfig(
                    model=str(model), lengths=passkey_lengths, num_k=self.passkey_k,
                    trials=self.passkey_trials, max_new_tokens=8, seed=self.seed, allow_extrapolation=True,
                    depths=list(self.passkey_depths) if self.passkey_depths else None, rope=rope,
                    load=self.load, out=out,
                )
            )  # fmt: skip
            _relabel(pk, row, out)
            self.files.append(out)
            for cell in pk["lengths"]:
                if not cell["ks"]:  # depths only
                    continue
                row.k_max[cell["length"]] = cell["k_max"]
                row.passkey_accuracy[cell["length"]] = cell["accuracy"]
                row.passkey_found[cell["length"]] = cell["digits_found"]
                row.k_tested[cell["length"]] = max(c["k"] for c in cell["ks"])
            first_depth = self.passkey_depths[0] if self.passkey_depths else None
            for cell in pk["depths"]:
                if cell["depth"] == first_depth:
                    row.depth_accuracy[cell["length"]] = cell["accuracy"]
        self.rows.append(row)
        return row

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)


def _relabel(result: dict[str, Any], row: Row, out: Path) -> None:
    """Name the result after the row (fine-tuning checkpoints share a directory), so `ropescale report`
    and its plots tell them apart; the path stays in the result's config."""
    result["model"]["name"] = row.label
    outputs.write_json(out, result)


def row_dict(row: Row) -> dict[str, Any]:
    return dataclasses.asdict(row)


def first_part_ppl(buckets: list[dict[str, Any]], tokens: int) -> float:
    """Perplexity of the scored tokens at window positions < `tokens`, from the per-eighth buckets."""
    return _bucket_ppl([b for b in buckets if b["to"] <= tokens])


def beyond_ppl(buckets: list[dict[str, Any]], tokens: int) -> float:
    """Perplexity of the scored tokens at window positions >= `tokens`."""
    return _bucket_ppl([b for b in buckets if b["from"] >= tokens])


def _bucket_ppl(buckets: list[dict[str, Any]]) -> float:
    nll = sum(b["tokens"] * math.log(b["ppl"]) for b in buckets if b["tokens"])
    n = sum(b["tokens"] for b in buckets)
    return math.exp(nll / n) if n else math.nan
