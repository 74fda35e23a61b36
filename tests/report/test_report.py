"""`ropescale report`: paper-layout markdown tables and legible PNG plots from result files."""

from __future__ import annotations

import json

import pytest

from ropescale.cli import main
from ropescale.report.plots import use_log_scale


def _model(method, factor, window, name="m"):
    return {"name": name, "method": method, "factor": factor, "window": window, "original_window": 8192}


def _ppl(method, factor, window, values):
    cells = [
        {"length": n, "stride": 256, "ppl": v, "ci95": [v * 0.9, v * 1.1], "documents": 2, "tokens": 100}
        for n, v in values.items()
    ]
    cells[-1]["by_position"] = [
        {"from": 0, "to": 8192, "tokens": 10, "ppl": 7.0},
        {"from": 8192, "to": 16384, "tokens": 10, "ppl": 900.0},
    ]
    return {"kind": "ppl", "model": _model(method, factor, window), "data": {"spec": "books", "documents": 2},
            "lengths": cells}  # fmt: skip


def _passkey():
    ks = [
        {"k": k, "accuracy": a, "correct": int(a * 10), "trials": []}
        for k, a in [(100, 1.0), (200, 0.1), (300, 1.0)]
    ]
    depths = [
        {"length": n, "depth": d, "accuracy": a, "trials": []}
        for n, d, a in [(512, 0.0, 0.5), (512, 1.0, 1.0)]
    ]
    return {"kind": "passkey", "model": _model("linear", 2.0, 16384), "lengths": [
        {"length": 300, "k_max": 100, "accuracy": 0.7, "ks": ks}], "depths": depths}  # fmt: skip


def _write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


def test_report_tables_and_plots(tmp_path, capsys):
    files = [
        _write(tmp_path, "a.json", _ppl("none", 1.0, 8192, {2048: 7.2, 8192: 6.9, 16384: 2.5e4})),
        _write(tmp_path, "b.json", _ppl("linear", 2.0, 16384, {2048: 7.3, 16384: 6.8})),
        _write(tmp_path, "c.json", _passkey()),
    ]
    out = tmp_path / "report"
    assert main(["report", *map(str, files), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "| Model | Method | Ctx window | 2048 | 8192 | 16384 |" in text
    assert "| m | none | 8192 | 7.20 | 6.90 | 2.5e+04 |" in text
    assert "| m | linear x2 | 16384 | 7.30 | - | 6.80 |" in text  # a length not evaluated is "-"
    assert "| m | linear x2 | 16384 | 100 (70%) |" in text
    assert "| 512 | 50% | 100% |" in text
    assert "- m / none / 8192 @ 16384: 0–8192: 7.00, 8192–16384: 900.00" in text
    for png in ("ppl_vs_length.png", "ppl_by_position.png", "passkey_accuracy.png", "passkey_depth_0.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
    assert main(["report", str(files[0]), "--out", str(out)]) == 2  # never overwrites without asking
    assert "--overwrite" in capsys.readouterr().err


def test_report_rejects_non_results(tmp_path, capsys):
    bad = _write(tmp_path, "x.json", {"hello": 1})
    assert main(["report", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "not a ropescale eval result" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("values", "log"), [([7.2, 6.9, 7.5], False), ([7.2, 2.5e4], True), ([], False)])
def test_log_scale_when_values_explode(values, log):
    assert use_log_scale(values) is log
