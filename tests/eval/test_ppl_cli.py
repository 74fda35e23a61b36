"""`ropescale eval ppl` end to end on the tiny model, and the document reader behind --data."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from ropescale.cli import main
from ropescale.data import load_documents, load_records
from ropescale.eval.perplexity import reference_nll

from .conftest import make_char_tokenizer


def test_cli_matches_reference_on_local_text(tiny_char_dir, tmp_path, capsys):
    data = tmp_path / "docs"
    data.mkdir()
    texts = ["The quick brown fox jumps over the lazy dog. " * 3, "Pack my box with five dozen jugs. " * 4]
    for i, text in enumerate(texts):
        (data / f"{i}.txt").write_text(text)
    out = tmp_path / "ppl.json"
    argv = ["eval", "ppl", "--model", tiny_char_dir, "--data", data, "--lengths", "32,64", "--stride", "12"]
    assert main([str(a) for a in [*argv, "--batch-tokens", "100", "--out", out]]) == 0
    printed = capsys.readouterr().out
    assert "95% CI" in printed and "wrote" in printed
    r = json.loads(out.read_text())
    assert r["kind"] == "ppl" and r["data"]["documents"] == 2
    model = AutoModelForCausalLM.from_pretrained(tiny_char_dir).eval()
    docs = [torch.tensor(make_char_tokenizer()(t)["input_ids"]) for t in texts]
    for entry, length in zip(r["lengths"], [32, 64], strict=True):
        sums = [reference_nll(model, d, length, 12) for d in docs]
        total, count = sum(s for s, _ in sums), sum(c for _, c in sums)
        assert entry["tokens"] == count == sum(len(d) - 1 for d in docs)
        assert entry["ppl"] == pytest.approx(math.exp(total / count), rel=1e-5)
        assert entry["ci95"][0] <= entry["ppl"] <= entry["ci95"][1]
        assert [d["scored"] for d in entry["per_document"]] == [len(d) - 1 for d in docs]


def test_default_stride_is_the_shortest_length_when_below_256(tiny_char_dir, tmp_path, capsys):
    """`--lengths 32,64` without --stride: stride 32 (the shortest length), not a refusal for 256 > 32."""
    data = tmp_path / "d.txt"
    data.write_text("The quick brown fox jumps over the lazy dog. " * 6)
    out = tmp_path / "ppl.json"
    argv = ["eval", "ppl", "--model", tiny_char_dir, "--data", data, "--lengths", "32,64", "--out", out]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert [e["stride"] for e in r["lengths"]] == [32, 32]
    model = AutoModelForCausalLM.from_pretrained(tiny_char_dir).eval()
    doc = torch.tensor(make_char_tokenizer()(data.read_text())["input_ids"])
    total, count = reference_nll(model, doc, 64, 32)
    assert r["lengths"][1]["ppl"] == pytest.approx(math.exp(total / count), rel=1e-5)


def test_cli_truncate_and_extrapolation_rules(tiny_char_dir, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    rows = [{"body": "a" * 50}, {"body": "b" * 300}, {"body": "c" * 400}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = [
        "eval",
        "ppl",
        "--model",
        str(tiny_char_dir),
        "--data",
        str(data),
        "--text-field",
        "body",
        "--stride",
        "16",
    ]
    assert main([*base, "--lengths", "128"]) == 2
    assert "--allow-extrapolation" in capsys.readouterr().err
    out = tmp_path / "r.json"
    argv = [*base, "--lengths", "64,128", "--truncate-to", "256", "--allow-extrapolation", "--out", str(out)]
    assert main(argv) == 0
    r = json.loads(out.read_text())
    assert r["data"] == {"spec": str(data), "documents": 2, "tokens": 512}  # the 50-token one is dropped
    assert [e["tokens"] for e in r["lengths"]] == [510, 510]
    assert main([*base, "--lengths", "64,128", "--stride", "65", "--allow-extrapolation"]) == 2
    assert "--stride" in capsys.readouterr().err
    assert main([*base, "--truncate-to", "1000"]) == 2
    assert "no document with at least 1000 tokens" in capsys.readouterr().err


def test_documents_sources(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.md").write_text("first")
    (tmp_path / "c.jsonl").write_text('{"text": "third"}\n\n{"text": "fourth"}\n')
    (tmp_path / "skip.bin").write_bytes(b"\x00")
    assert list(load_documents(str(tmp_path))) == ["first", "second", "third", "fourth"]
    stdlib = load_documents("pystdlib")
    assert "def " in next(stdlib) + next(stdlib)
    with pytest.raises(ValueError, match="no string field 'body'"):
        list(load_documents(str(tmp_path / "c.jsonl"), text_field="body"))
    with pytest.raises(ValueError, match="no such file"):
        list(load_documents(str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="expected a .txt"):
        list(load_documents(str(tmp_path / "skip.bin")))


def test_documents_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"report": ["r1", "r2"], "summary": ["s1", "s2"]}), path)
    assert list(load_records(str(path), ("report", "summary"))) == [
        {"report": "r1", "summary": "s1"},
        {"report": "r2", "summary": "s2"},
    ]
