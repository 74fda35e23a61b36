"""Atomic outputs."""

from __future__ import annotations


def test_atomic_outputs_have_ordinary_permissions(tmp_path):
    import os
    import stat

    from ropescale import outputs

    outputs.write_json(tmp_path / "r.json", {"a": 1})
    with outputs.atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~mask


def test_an_existing_output_file_can_be_replaced(tmp_path):
    """`--out FILE --overwrite` on a file that exists (mode 0644, no execute bit): its directory is what an
    atomic replace needs, so it is accepted; a read-only directory is refused (unless we are root)."""
    import os

    import pytest

    from ropescale import outputs

    out = tmp_path / "r.json"
    outputs.write_json(out, {"a": 1})
    os.chmod(out, 0o644)
    outputs.check_writable(out)
    outputs.write_json(out, {"a": 2})
    assert out.read_text().strip().endswith("}") and '"a": 2' in out.read_text()
    outputs.check_writable(tmp_path / "new" / "deeper.json")  # nearest existing ancestor: tmp_path
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        outputs.check_writable(tmp_path / "afile" / "r.json")
