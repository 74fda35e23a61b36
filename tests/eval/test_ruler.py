"""`ropescale eval ruler`: lm-eval's RULER tasks offline, on the demo's tiny trained model at short lengths.

The scores must be lm-eval's own: the same task, lengths, samples and seed through lm_eval.simple_evaluate
(lm-eval loading the model and the tokenizer itself) give the same answers and scores.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json

import pytest

from ropescale.cli import main
from ropescale.commands.ruler import format_ruler, run_ruler
from ropescale.config import RulerConfig
from ropescale.eval.ruler import (
    LOCAL,
    NEEDS_NETWORK,
    TASKS_DIR,
    effective_length,
    punkt_model,
    resolve_tasks,
    summarize,
)
from ropescale.models.load import BUILTIN_DIRS

DEMO = BUILTIN_DIRS["tiny"]  # the shipped base model, wherever the package is: window 256, BPE tokenizer
needs_ruler = pytest.mark.skipif(
    importlib.util.find_spec("lm_eval") is None or importlib.util.find_spec("wonderwords") is None,
    reason="needs lm-eval and wonderwords (pip install 'ropescale[ruler]')",
)


@pytest.mark.parametrize(
    ("averages", "threshold", "expected"),
    [
        ({4096: 95.0, 8192: 88.0, 16384: 70.0}, 85.6, 8192),
        ({4096: 85.6, 8192: 40.0}, 85.6, None),  # equal does not beat the threshold
        ({4096: 80.0, 8192: 90.0, 16384: 10.0}, 85.6, 8192),  # the longest passing length, not a prefix
        ({4096: 100.0}, 99.9, 4096),
        ({}, 85.6, None),
    ],
)
def test_effective_length_rule(averages, threshold, expected):
    assert effective_length(averages, threshold) == expected


def test_summary_of_a_hand_made_table():
    scores = {"a": {4096: 100.0, 8192: 80.0}, "b": {4096: 80.0, 8192: 60.0}, "c": {4096: 90.0, 8192: 100.0}}
    samples = [{"task": t, "length": n} for t in scores for n in (4096, 8192) for _ in range(2)]
    out = summarize(scores, samples, [4096, 8192], 85.6)
    assert [r["average"] for r in out["lengths"]] == pytest.approx(
        [90.0, 80.0]
    )  # (100+80+90)/3, (80+60+100)/3
    assert out["effective_length"] == 4096
    assert out["lengths"][1]["samples"] == {"a": 2, "b": 2, "c": 2}
    assert summarize(scores, samples, [4096, 8192], 90.0)["effective_length"] is None


def test_task_sets():
    offline = resolve_tasks(None, online=False)
    assert not set(offline) & set(NEEDS_NETWORK) and set(LOCAL) <= set(offline)
    assert {
        "niah_single_1",
        "niah_multikey_2",
        "niah_multikey_3",
        "ruler_vt",
        "ruler_cwe",
        "ruler_fwe",
    } <= set(offline)
    assert len(resolve_tasks(["ruler"], online=True)) == 13
    with pytest.raises(ValueError, match="niah_single_2, niah_single_3, .*ruler_qa_hotpot.*offline"):
        resolve_tasks(["ruler"], online=False)
    with pytest.raises(ValueError, match="not a RULER task; valid: ruler, niah_single_1"):
        resolve_tasks(["niah_single_9"], online=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "ruler"], "download their data"),
        (["--tasks", "ruler_qa_squad"], "SQuAD v2) and this run is offline; pass --online"),
        (["--tasks", "niah_single_1,nope"], "--tasks nope: not a RULER task; valid: ruler, niah_single_1"),
        (["--samples", "0"], "--samples must be an integer >= 1, got 0"),
        (["--lengths", "1024", "--tasks", "niah_single_1", "--no-allow-extrapolation"], "exceed the model's window 256"),
        pytest.param(["--lengths", "200", "--tasks", "niah_single_1,ruler_vt"], "too short for every task with this tokenizer: niah_single_1 (needs",
                     marks=needs_ruler),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_nothing_written(args, message, tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = [
        "eval",
        "ruler",
        str(DEMO),
        "--lengths",
        "1024",
        "--allow-extrapolation",
        *args,
        "--out",
        str(out),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [
        line for line in err.splitlines() if line.startswith("ropescale: error:")
    ]  # after load progress
    assert len(errors) == 1 and message in errors[0] and err.strip().endswith(errors[0])
    assert "Traceback" not in err
    assert not out.exists()


@needs_ruler
def test_tasks_that_fit_run_and_the_others_are_reported_skipped(tmp_path, capsys):
    """`--lengths 200` fits ruler_fwe's prompt but not niah_single_1's: ruler_fwe is scored, niah_single_1 is
    reported as skipped with the length its prompt needs (the whole run was refused before)."""
    out = tmp_path / "r.json"
    argv = [
        "eval",
        "ruler",
        str(DEMO),
        "--lengths",
        "200",
        "--tasks",
        "niah_single_1,ruler_fwe",
        "--samples",
        "1",
    ]
    assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    need = result["skipped"][0]["needs"]  # the prompt's length varies with the random needles drawn
    assert need > 200 and result["skipped"] == [{"task": "niah_single_1", "length": 200, "needs": need}]
    assert list(result["lengths"][0]["scores"]) == ["ruler_fwe"] and result["lengths"][0]["samples"] == {
        "ruler_fwe": 1
    }
    assert result["lengths"][0]["average"] == result["lengths"][0]["scores"]["ruler_fwe"]
    shown = capsys.readouterr().out
    assert f"niah_single_1 (needs {need} tokens) at 200" in shown


def _string_match_all(prediction: str, targets: list[str]) -> float:
    """RULER's metric, written out: the share of the targets found (case-insensitive) in the stripped answer."""
    answer = prediction.strip().lower()
    return 100.0 * sum(t.lower() in answer for t in targets) / len(targets)


def _simple_evaluate(lm_eval, manager, tasks, length, n):
    return lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(DEMO), "max_length": length, "dtype": "float32", "device": "cpu"},
        tasks=tasks,
        task_manager=manager,
        limit=n,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        bootstrap_iters=0,
    )


@needs_ruler
def test_scores_equal_lm_eval_simple_evaluate(tmp_path, monkeypatch):
    import lm_eval
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    tasks, length, n = ["niah_single_1", "niah_multikey_2", "niah_single_2_local"], 1024, 2
    cfg = RulerConfig(
        model=str(DEMO),
        lengths=[length],
        tasks=tasks,
        samples=n,
        allow_extrapolation=True,
        out=tmp_path / "r.json",
    )
    ours = run_ruler(cfg)
    assert json.loads((tmp_path / "r.json").read_text())["lengths"] == ours["lengths"]

    # independent: lm-eval loads the model and tokenizer from the directory and picks the first n samples;
    # the sentence splitter is found as `eval ruler` finds it (an installed punkt_tab, else the package's
    # own, wherever the package is installed), extending nltk's own search list in place
    manager = TaskManager(
        include_path=str(TASKS_DIR), metadata={"max_seq_lengths": [length], "tokenizer": str(DEMO)}
    )
    with punkt_model():
        theirs = _simple_evaluate(lm_eval, manager, tasks, length, n)
    row = ours["lengths"][0]
    for task in tasks:
        assert row["samples"][task] == n
        assert row["scores"][task] == pytest.approx(100 * theirs["results"][task][f"{length},none"])
        mine = [s for s in ours["samples"] if s["task"] == task]
        logged = theirs["samples"][task]
        assert [s["prediction"] for s in mine] == [s["filtered_resps"][0] for s in logged]
        assert [s["target"] for s in mine] == [s["doc"]["outputs"] for s in logged]
        assert [s["score"] for s in mine] == [_string_match_all(s["prediction"], s["target"]) for s in mine]
        assert row["scores"][task] == pytest.approx(sum(s["score"] for s in mine) / n)
        assert all(s["tokens"] <= length and s["length"] == length for s in mine)
    assert row["average"] == pytest.approx(sum(row["scores"].values()) / len(tasks))
    assert ours["local_haystack"]["tasks"] == ["niah_single_2_local"]
    assert ours["environment"]["lm_eval"] == importlib.metadata.version("lm_eval")


def test_report_renders_ruler_results(tmp_path):
    result = {
        "kind": "ruler",
        "model": {"name": "m", "method": "linear", "factor": 2.0, "window": 8192},
        "tasks": ["niah_single_1", "niah_single_2_local"],
        "lengths": [
            {"length": 4096, "scores": {"niah_single_1": 100.0, "niah_single_2_local": 80.0},
             "samples": {"niah_single_1": 3, "niah_single_2_local": 3}, "average": 90.0},
            {"length": 8192, "scores": {"niah_single_1": 50.0, "niah_single_2_local": 0.0},
             "samples": {"niah_single_1": 3, "niah_single_2_local": 3}, "average": 25.0},
        ],
        "threshold": 85.6,
        "effective_length": 4096,
        "local_haystack": {"tasks": ["niah_single_2_local"], "corpus": "shakespeare", "sentence_splitter": "x"},
        "timings": {"total_s": 12.0},
    }  # fmt: skip
    text = " ".join(format_ruler(result).split())  # the table's alignment aside
    assert "niah_single_1 100.0 50.0 niah_single_2_local * 80.0 0.0 average 90.0 25.0" in text
    assert "effective length (average > 85.6): 4096" in text and "* local haystack (shakespeare" in text
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    assert main(["report", str(path), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| m | linear x2 | 8192 | 90.0 | 25.0 | 4096 | 85.6 |" in md
    assert "| niah_single_2_local (local haystack) | 80.0 | 0.0 |" in md
    assert "| average | 90.0 | 25.0 |" in md
    assert (tmp_path / "rep" / "ruler_vs_length.png").stat().st_size > 0
