"""`ropescale demo --quick` end to end on the shipped base model, and its bad-input handling."""

from __future__ import annotations

import json
import math

import pytest

from ropescale.cli import main
from ropescale.config import DemoConfig
from ropescale.demo import run_demo
from ropescale.demo.tiny import BASE_DIR, base_info
from ropescale.rope import smallest_base


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_shipped_base_records_how_it_was_made():
    info = base_info(BASE_DIR)
    assert info["window"] == 256 and info["commands"][0].startswith("ropescale pretrain")
    assert info["passkey_fraction"] > 0 and info["parameters"] > 0


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = run_demo(DemoConfig(model="tiny", quick=True, out=out))
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "results.json", "summary.txt", "steps.png", "ppl_vs_length.png"} <= names
    assert {"figure2.png", "figure5.png"} <= {p.name for p in (out / "theory").iterdir()}
    assert not list(out.rglob("checkpoints")) and not list(out.rglob(".cache"))
    assert [f["id"] for f in result["findings"]] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(f["holds"], bool) for f in result["findings"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == (out / "summary.txt").read_text().strip()
    # every row's numbers are the ones in that evaluation's own result file
    rows = {r["key"]: r for r in saved["rows"]}
    base = json.loads((out / "work" / "results" / "base.ppl.json").read_text())
    for cell in base["lengths"]:
        assert math.isclose(rows["base"]["ppl"][str(cell["length"])], cell["ppl"], rel_tol=1e-12)
    pk = json.loads((out / "work" / "results" / "pi_ft4.passkey.json").read_text())
    assert {str(c["length"]): c["k_max"] for c in pk["lengths"]} == rows["pi_ft4"]["k_max"]
    found = {str(c["length"]): c["digits_found"] for c in pk["lengths"]}
    assert found == rows["pi_ft4"]["passkey_found"]
    assert all(found[n] >= a for n, a in rows["pi_ft4"]["passkey_accuracy"].items())
    report = (out / "report.md").read_text()
    assert "Table 1" in report and "Table 3" in report and "Table 4" in report
    # the referee's checks: short-range attention against the base, and the s-ablation at a fixed budget
    assert {"short_range.png", "ablation.png"} <= names
    assert "## Short-range attention" in report and "## Ablation over s" in report
    near = {r["key"]: r for r in saved["short_range"]}
    assert set(near) == set(rows) and near["base"]["mean_similarity"] == 1.0
    assert near["base"]["local_kept"] == near["base"]["num_local"]
    cells = {(c["method"], c["factor"]): c["key"] for c in saved["ablation"]}
    assert set(cells) == {(m, s) for m in ("pi", "direct", "abf") for s in (2, 4, 8)}
    assert cells[("pi", 8)] == "pi_ft4"  # the main run's model at the same steps
    for (method, s), key in cells.items():
        assert rows[key]["ft_steps"] == 4 and str(256 * s) in rows[key]["ppl"]
        if s < 8:  # the same tokens per step at every factor
            made = json.loads(
                (out / "work" / "ablation" / f"{method}_x{s}" / "train_config.json").read_text()
            )
            assert made["config"]["batch_size"] * made["config"]["seq_len"] == 2 * 2048
            assert made["config"]["seq_len"] == 256 * s and made["config"]["steps"] == 4
            if method == "abf":  # the base Men et al.'s bound asks for at s L (the tiny base's is 10000)
                want = max(10000.0, smallest_base(32, 256 * s))
                assert made["config"]["rope"]["rope_theta"] == pytest.approx(want, rel=1e-12)
    cell = json.loads((out / "work" / "results" / "pi_x2_ft4.ppl.json").read_text())["lengths"][-1]
    assert math.isclose(rows["pi_x2_ft4"]["ppl"]["512"], cell["ppl"], rel_tol=1e-12)
    for f in result["findings"]:
        assert f"({f['id']})" in result["summary"]


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["--model", "gpt2"], "--model must be one of"),
        (
            ["--model", "tiny", "--base", "/nonexistent/base"],
            "--base /nonexistent/base: not a model directory",
        ),
        (["--model", "smollm2-135m", "--base", "."], "--base applies to --model tiny only"),
        (["--model", "tiny", "--full"], "--full applies to --model smollm2-135m only"),
        (["--full", "--quick"], "--full and --quick contradict each other"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, expect):
    code, _, err = run(["demo", *argv, "--out", tmp_path / "o"], capsys)
    assert code == 2 and expect in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_existing_report_is_kept_without_overwrite(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "report.md").write_text("a good result")
    code, _, err = run(["demo", "--quick", "--out", out], capsys)
    assert code == 2 and "--overwrite" in err
    assert (out / "report.md").read_text() == "a good result"
