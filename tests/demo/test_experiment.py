"""The experiment runner (demo/experiment.py): cells in order, fine-tuning only where a cell has steps, and
the ABF cell's base chosen by the bound for its new window."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ropescale.demo.evals import Row
from ropescale.demo.experiment import Cell, Shape, run_cells, scaling
from ropescale.demo.tiny import QUICK, ablation_keys, tiny_cells


def _margin(rotary_dim: int, base: float, window: int) -> float:
    """min over m < window of B_m = sum_i cos(m base^(-2i/d)), straight from the definition."""
    theta = base ** (-np.arange(rotary_dim // 2) * 2.0 / rotary_dim)
    return float(np.cos(np.outer(np.arange(window), theta)).sum(axis=1).min())


def test_abf_base_is_the_smallest_that_passes_at_the_new_window():
    shape = Shape(window=256, head_dim=32, theta=10000.0)
    rope = scaling(Cell("abf_x2", "ABF x2", "abf", 2, steps=4), shape)
    assert rope.rope_type == "abf" and rope.factor == 2.0 and rope.original_max_position_embeddings == 256
    assert rope.rope_theta > shape.theta  # 10000 does not pass at 512
    assert _margin(32, rope.rope_theta, 512) >= -1e-9
    assert _margin(32, rope.rope_theta * (1 - 1e-4), 512) < 0  # just below: some distance < 512 fails
    assert _margin(32, shape.theta, 512) < 0


def test_abf_never_lowers_a_base_that_passes():
    shape = Shape(window=256, head_dim=32, theta=1e6)
    assert scaling(Cell("abf_x2", "ABF x2", "abf", 2, steps=4), shape).rope_theta == 1e6
    assert scaling(Cell("pi", "PI", "linear", 2), shape).rope_theta is None


class FakeLab:
    base = Path("base")

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def rope(self, cell: Cell):
        return f"rope:{cell.method}x{cell.factor}"

    def train(self, cell: Cell) -> Path:
        self.calls.append(("train", cell.key, cell.folder, cell.steps))
        return Path(cell.folder)

    def evaluate(self, cell: Cell, row: Row, model: Path, rope) -> Row:
        self.calls.append(("evaluate", row.key, str(model), rope))
        return row


def test_runner_trains_only_cells_with_steps_and_keeps_the_order():
    cells = [
        Cell("base", "base", "none", 1.0, stage="a"),
        Cell("pi_noft", "PI", "linear", 8, stage="b"),
        Cell("pi_ft4", "PI 4", "linear", 8, 4, folder="ft/pi", stage="c", then="c2"),
    ]
    lab, stages = FakeLab(), []
    rows = run_cells(cells, lab, stages.append)
    assert [r.key for r in rows] == ["base", "pi_noft", "pi_ft4"]
    assert (rows[2].method, rows[2].factor, rows[2].ft_steps) == ("linear", 8, 4)
    assert stages == ["a", "b", "c", "c2"]
    assert lab.calls == [
        ("evaluate", "base", "base", None),  # plain RoPE: no scaling
        ("evaluate", "pi_noft", "base", "rope:linearx8"),
        ("train", "pi_ft4", "ft/pi", 4),
        ("evaluate", "pi_ft4", "ft/pi", None),  # the fine-tuned checkpoint carries its own rope
    ]


def test_tiny_ablation_has_an_abf_cell_at_every_factor():
    keys = ablation_keys(QUICK)
    assert [k for name, _, k in keys if name == "abf"] == ["abf_x2_ft4", "abf_x4_ft4", "abf_x8_ft4"]
    assert ("pi", 8, "pi_ft4") in keys  # PI and direct reuse the main run at s = factor
    cells = {c.key: c for c in tiny_cells(QUICK, 256)}
    assert {k for _, _, k in keys} <= set(cells)
    abf = cells["abf_x8_ft4"]
    assert (abf.method, abf.factor, abf.steps, abf.folder) == ("abf", 8, 4, "ablation/abf_x8")
    assert abf.ppl == (256, 2048) and abf.passkey == (2048,)
