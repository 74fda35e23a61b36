"""Atomic outputs."""

from __future__ import annotations


def test_atomic_outputs_have_ordinary_permissions(tmp_path):
    import os
    import stat

    from ropescale import io

    io.write_json(tmp_path / "r.json", {"a": 1})
    with io.atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~mask
