"""The s-ablation's table and account from hand-made rows (the numbers are the rows', nothing else)."""

from __future__ import annotations

from ropescale.demo.ablation import Point, ablation_lines, ablation_table
from ropescale.demo.evals import Row


def cell(method: str, s: int, ppl: float, k: int) -> Point:
    S = 256 * s
    row = Row(f"{method}_x{s}", f"{method} x{s}", method, s, 100, ppl={256: 9.0, S: ppl}, k_max={S: k},
              passkey_accuracy={S: 0.5})  # fmt: skip
    sr = {"local_kept": 2, "num_local": 3, "mean_similarity_local": 0.75}
    return Point(method, s, row, sr)


def test_table_and_lines_carry_the_cells_numbers():
    cells = [cell("pi", 2, 10.0, 512), cell("direct", 2, 11.0, 256), cell("pi", 8, 12.0, 0),
             cell("direct", 8, 9.5, 0)]  # fmt: skip
    table = ablation_table(cells, 256).splitlines()
    assert table[2] == "| 2 | 512 | PI | 100 | 9.00 | 10.00 | 512 (50%) | 2/3 | 0.750 |"
    assert len(table) == 2 + len(cells)
    lines = ablation_lines(cells, 256)
    assert "100 fine-tuning steps per cell" in lines[0]
    assert lines[1].startswith(
        "  s=2 (sL=512): PI ppl 10.00, k_max 512, local heads kept 2/3; direct ppl 11.00"
    )
    # PI is lower than direct at s = 2 (10 < 11), higher at s = 8 (12 > 9.5)
    assert lines[-1] == "  PI beats direct fine-tuning in ppl(sL) at s = 2 of 2, 8"
