"""tools/compare_runs.py: two runs that differ only in timings and their own paths compare equal; a changed
number, a missing file and a flat-vs-grouped training record are told apart correctly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ropescale import outputs
from ropescale.config import TrainConfig, build
from ropescale.config.flat import by_flag

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "tools" / "compare_runs.py")
compare_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_runs)


def _run(root: Path, ppl: float, wall: float) -> Path:
    (root / "work").mkdir(parents=True)
    tmp = root.parent / f".{root.name}.tmp-abc123"
    outputs.write_json(root / "results.json", {"ppl": ppl, "wall_s": wall, "out": str(root),
                                               "theory": str(tmp / "theory"), "timings": {"load_s": wall}})  # fmt: skip
    (root / "work" / "metrics.jsonl").write_text(json.dumps({"loss": 1.5, "tokens_per_s": wall}) + "\n")
    return root


def test_timings_and_paths_are_not_differences(tmp_path):
    a, b = _run(tmp_path / "a", 10.0, 1.0), _run(tmp_path / "b", 10.0, 2.0)
    assert compare_runs.compare(a, b) == []
    assert compare_runs.main([str(a), str(b)]) == 0


def test_a_changed_number_and_a_missing_file_are(tmp_path):
    a, b = _run(tmp_path / "a", 10.0, 1.0), _run(tmp_path / "b", 10.5, 1.0)
    (b / "work" / "metrics.jsonl").unlink()
    diffs = compare_runs.compare(a, b)
    assert ("results.json", "/ppl", 10.0, 10.5) in diffs
    assert ("work/metrics.jsonl", "", "present", "<missing>") in diffs and len(diffs) == 2
    assert compare_runs.main([str(a), str(b)]) == 1


def test_a_flat_and_a_grouped_training_record_of_one_config_are_equal(tmp_path):
    """Records before the knobs were grouped hold them by flag name at the top."""
    cfg = outputs.jsonable(build(TrainConfig, model="m", out="o", lr=1e-3, passkey_fraction=0.5))
    flat = by_flag(TrainConfig, cfg)
    assert "optim" not in flat and flat["lr"] == 1e-3
    for name, config in (("a", cfg), ("b", flat), ("c", {**flat, "lr": 2e-3})):
        (tmp_path / name).mkdir()
        outputs.write_json(tmp_path / name / "train_config.json", {"config": config})
    assert compare_runs.compare(tmp_path / "a", tmp_path / "b") == []
    assert compare_runs.compare(tmp_path / "a", tmp_path / "c") == [
        ("train_config.json", "/config/lr", 1e-3, 2e-3)
    ]
