"""The CPU dry run of bench/gpu_check.py, so the prepared GPU check cannot rot: the fast checks in the default
suite, every CPU-capable check in the slow one, and the time budget that skips what is left."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
FAST = "versions,sdpa_flash,chunked_loss,train_gpu_vs_cpu,smollm2_pi_step"
ALL = (*FAST.split(","), "resume", "fsdp2_world1", "eval_gpu_vs_cpu")


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


def _dry_run(gpu_check, tmp_path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "check.json"
    rc = gpu_check.main(
        ["--device", "cpu", "--small", "--out", str(out), "--work", str(tmp_path / "w"), *extra]
    )
    return rc, json.loads(out.read_text())


def test_the_fast_checks_run_on_the_cpu(gpu_check, tmp_path):
    rc, result = _dry_run(gpu_check, tmp_path, "--budget", "1e9", "--only", FAST)
    checks = result["checks"]
    assert result["done"] and set(checks) == set(FAST.split(","))
    assert rc == 0, {k: v.get("error", v["status"]) for k, v in checks.items()}
    assert checks["chunked_loss"]["float32"]["loss_rel"] < 1e-5
    assert checks["train_gpu_vs_cpu"]["fp32_max_rel"] == 0.0  # the CPU against itself
    step = checks["smollm2_pi_step"]["lengths"]
    assert [r["length"] for r in step] == [128, 256] and all(r["mfu_vs_measured_matmul"] > 0 for r in step)


@pytest.mark.slow
def test_every_cpu_capable_check_runs_on_the_cpu(gpu_check, tmp_path):
    rc, result = _dry_run(gpu_check, tmp_path, "--budget", "1e9")
    checks = result["checks"]
    assert set(checks) == set(ALL)
    assert rc == 0, {k: v.get("error", v["status"]) for k, v in checks.items()}
    for tag in ("deterministic", "default"):  # the CPU resumes bit for bit either way
        assert checks["resume"][tag]["bit_identical_losses"] and checks["resume"][tag]["max_weight_diff"] == 0
    fsdp = checks["fsdp2_world1"]
    assert fsdp["backend"] == "gloo" and fsdp["parameters_after_shard"][0]["type"] == "DTensor"
    assert fsdp["max_loss_rel"] <= 1e-4 and fsdp["resumed_from"]
    assert checks["eval_gpu_vs_cpu"]["ppl_max_rel"] == 0.0


def test_checks_past_the_budget_are_skipped_and_recorded(gpu_check, tmp_path):
    rc, result = _dry_run(gpu_check, tmp_path, "--budget", "0", "--only", "versions,chunked_loss")
    assert rc == 0 and result["done"]
    assert {k: v["status"] for k, v in result["checks"].items()} == {
        "versions": "skipped",
        "chunked_loss": "skipped",
    }


def test_no_gpu_is_one_clear_line(gpu_check, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--device", "cuda", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("--device cuda:") and not (tmp_path / "x.json").exists()
