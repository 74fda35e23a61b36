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


def test_missing_parents_are_created_for_every_output_and_removed_on_failure(tmp_path):
    """One rule for every command: the parents of --out are created (mkdir -p) with the output, for a result
    file as for a directory, and a failure removes the ones it created (and its temporary sibling)."""
    import pytest

    from ropescale import outputs

    outputs.check_out_file(tmp_path / "a" / "b" / "r.json")  # accepted: a/ does not exist yet
    outputs.write_json(tmp_path / "a" / "b" / "r.json", {"x": 1})
    assert (tmp_path / "a" / "b" / "r.json").is_file()
    with outputs.atomic_dir(tmp_path / "c" / "d" / "out") as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "c" / "d" / "out" / "x").is_file()
    with pytest.raises(RuntimeError), outputs.atomic_dir(tmp_path / "e" / "f" / "out") as tmp:
        (tmp / "x").write_text("x")
        assert (tmp_path / "e" / "f").is_dir()
        raise RuntimeError("the command failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c"]


def test_a_failed_rename_keeps_the_previous_result_and_leaves_no_temporary(tmp_path, monkeypatch):
    import os

    import pytest

    from ropescale import outputs

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("previous")
    real = os.replace

    def failing(src, dst):
        if str(src).endswith("tmp") or ".out.tmp-" in str(src):
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError), outputs.atomic_dir(tmp_path / "out", overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "old").read_text() == "previous"


def test_weights_follow_the_umask_like_every_other_file(tmp_path):
    """safetensors writes its files 0600; an output directory's files all get the umask's mode."""
    import os
    import stat

    import torch
    from safetensors.torch import save_file

    from ropescale import outputs

    with outputs.atomic_dir(tmp_path / "ckpt") as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text("{}")
    mask = os.umask(0)
    os.umask(mask)
    for name in ("model.safetensors", "config.json"):
        assert stat.S_IMODE((tmp_path / "ckpt" / name).stat().st_mode) == 0o666 & ~mask, name
