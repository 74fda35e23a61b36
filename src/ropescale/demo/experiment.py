"""A demo's experiment as data: a list of cells, run in order by one small runner.

A cell names one model of the demo (key and label for the tables), how it is made (the scaling method and
factor; fine-tuning steps in total and, for the real model, the short-sequence positions) and what is
measured on it (perplexity lengths, passkey lengths). A cell with steps = 0 is the base model under its
scaling (plain RoPE for `none`); a cell with steps continues the fine-tuning kept in its `folder`, so two
cells of one folder are two checkpoints of one run. Each demo supplies a `Lab`: how to fine-tune and how
to evaluate; the runner owns the order and the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..models import compat
from ..models.load import load_config
from ..rope.base_lower_bound import smallest_base
from ..rope.spec import RopeScaling
from .evals import Row

Stage = Callable[[str], None]  # progress: one call per stage, with its text


@dataclass(frozen=True)
class Cell:
    """One model of the experiment and what is measured on it."""

    key: str  # the row's key (tables, findings, result file names)
    label: str  # the row's label
    method: str  # the scaling's rope type; "none": plain positions
    factor: float  # the scaling's factor (1.0 for the base model as it is)
    steps: int = 0  # fine-tuning steps in total; 0: the base model under this scaling, no fine-tuning
    folder: str = ""  # the fine-tuning run's directory under the work directory (cells with steps)
    positions: str = "contiguous"  # fine-tuning position ids (the real demo's short-sequence modes)
    ppl: tuple[int, ...] = ()  # perplexity lengths
    passkey: tuple[int, ...] = ()  # passkey prompt lengths (empty: no passkey)
    stage: str = ""  # the progress text before the cell's work
    then: str = ""  # the progress text between fine-tuning and evaluation (empty: none)
    per_length: bool = False  # frequencies follow the sequence length: one pass per length (dynamic NTK)


@dataclass(frozen=True)
class Shape:
    """The base model's shape as the demo needs it: window L, rotary dim and RoPE base (models/compat)."""

    window: int
    head_dim: int
    theta: float


def model_shape(base: Path) -> Shape:
    config = load_config(str(base))
    theta = compat.rope_parameters(config)["rope_theta"]
    return Shape(int(config.max_position_embeddings), compat.rotary_dim(config), theta)


def scaling(cell: Cell, shape: Shape) -> RopeScaling:
    """The cell's rope: its method and factor from the model's window L. `abf` gets the base that Men et
    al.'s bound asks for at the cell's new window s L (rope/base_lower_bound.smallest_base: B_m >= 0 for every
    m < s L), never below the model's own base (a base that passes already is kept)."""
    window = shape.window
    theta = None
    if cell.method == "abf":
        theta = max(shape.theta, smallest_base(shape.head_dim, round(window * cell.factor)))
    return RopeScaling(rope_type=cell.method, factor=float(cell.factor), original_max_position_embeddings=window,
                       rope_theta=theta)  # fmt: skip


class Lab(Protocol):
    """What a demo supplies to the runner."""

    base: Path  # the model the experiment starts from

    def rope(self, cell: Cell) -> RopeScaling: ...

    def train(self, cell: Cell) -> Path: ...

    def evaluate(self, cell: Cell, row: Row, model: Path, rope: RopeScaling | None) -> Row: ...


def run_cells(cells: list[Cell], lab: Lab, stage: Stage) -> list[Row]:
    """Each cell in order: fine-tune it (when it has steps) and evaluate the model; one row per cell."""
    rows = []
    for cell in cells:
        stage(cell.stage)
        if cell.steps:
            model, rope = lab.train(cell), None
            if cell.then:
                stage(cell.then)
        else:
            model, rope = lab.base, (None if cell.method == "none" else lab.rope(cell))
        row = Row(cell.key, cell.label, cell.method, cell.factor, cell.steps)
        rows.append(lab.evaluate(cell, row, model, rope))
    return rows
