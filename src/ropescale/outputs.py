"""Writing outputs safely: atomic files and directories, result JSON with the environment recorded.

A failed run must never leave a half-written result or replace a good one, so everything is written to a
temporary sibling first and moved into place with an atomic rename.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any


def check_location(out: Path, flag: str = "--out") -> None:
    """The one check of an output location, before any work: `out` names a new entry (not empty, `.`,
    `..` or `/`), is not a dangling or looping symbolic link, and no ancestor of it is a file, a dangling
    link or a link loop. Missing parent directories are allowed: they are created when the output is
    (`mkdir -p`), and removed again if the command fails (see `claim`)."""
    raw = str(out)
    out = Path(out)
    if not raw.strip() or out.name in ("", ".", ".."):
        raise ValueError(f"{flag} {raw!r}: not a name for a new file or directory (e.g. runs/result)")
    here = Path.cwd().resolve()
    with contextlib.suppress(OSError):
        if out.is_dir() and (here == out.resolve() or out.resolve() in here.parents):
            raise ValueError(f"{flag} {out}: the current directory is inside it")
    for p in [out, *out.parents]:
        if not os.path.lexists(p):
            continue
        try:
            p.stat()
        except OSError as err:  # ELOOP, or ENOENT through a dangling link
            what = "a symbolic link loop" if err.errno == errno.ELOOP else "a symbolic link to nothing"
            raise ValueError(f"{flag} {out}: {p} is {what}") from None
        if p != out and not p.is_dir():
            raise ValueError(f"{flag} {out}: {p} is a file, not a directory")


def check_writable(out: Path, flag: str = "--out") -> None:
    """`out` can be created: its nearest existing ancestor is a directory this process may write in."""
    check_location(out, flag)
    _check_parent_writable(Path(out), flag)


def _check_parent_writable(out: Path, flag: str) -> None:
    """`check_writable` after `check_location` (which every check of an output runs first)."""
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {out}: {parent} is a file, not a directory")
    # a file is replaced by a rename inside its directory, so the directory is what must be writable
    target = out if out.is_dir() else parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {out}: {target} is not writable")


def check_out_dir(out: Path, overwrite: bool, flag: str = "--out") -> None:
    """Refuse an existing non-empty output directory unless overwriting was asked for, and one that
    cannot be written."""
    out = Path(out)
    check_location(out, flag)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{flag} {out} exists and is not empty; pass --overwrite to replace it")
    _check_parent_writable(out, flag)


def check_out_file(out: Path, flag: str = "--out", overwrite: bool = True) -> None:
    """A result file path: not a directory, under a directory that exists or can be created, and (unless
    `overwrite`) not already there."""
    out = Path(out)
    check_location(out, flag)
    if out.exists() and out.is_dir():
        raise ValueError(f"{flag} {out} is a directory; expected a file path")
    if out.exists() and not overwrite:
        raise ValueError(f"{flag} {out} exists; pass --overwrite to replace it")
    _check_parent_writable(out, flag)


def missing_parents(out: Path) -> list[Path]:
    """The ancestors of `out` that do not exist yet, outermost first."""
    return [p for p in reversed(Path(out).parents) if not os.path.lexists(p)]


@contextlib.contextmanager
def claim(out: Path) -> Iterator[None]:
    """The one cleanup path for an output's parents: they are created on entry (`mkdir -p`), and those this
    created are removed again (when still empty) if the body fails."""
    made = missing_parents(out)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


@contextlib.contextmanager
def atomic_dir(out: Path, overwrite: bool = False, flag: str = "--out") -> Iterator[Path]:
    """Yield a temporary directory next to `out`; on success it replaces `out`, on error it is removed
    (with the parents this created)."""
    out = Path(out)
    check_out_dir(out, overwrite, flag)
    with claim(out):
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        # mkdtemp makes it private; the result should look like any other directory
        tmp.chmod(0o777 & ~_umask())
        try:
            yield tmp
            follow_umask(tmp)
            replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def follow_umask(root: Path, recursive: bool = True) -> None:
    """Give the files and directories under `root` the modes the umask gives new ones: libraries write some
    files private (safetensors' 0600 weights), so another user of a shared checkpoint directory could read
    every file but the weights."""
    mask = _umask()
    for path in [Path(root), *(Path(root).rglob("*") if recursive else Path(root).iterdir())]:
        if path.is_symlink():
            continue
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_dir(src: Path, dst: Path) -> None:
    """Move directory src to dst, replacing dst; the old dst is removed only after the swap."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None:  # the previous result goes back in place
            os.replace(old, dst)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    with claim(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private; results are ordinary files
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def jsonable(obj: Any) -> Any:
    """Dataclasses, paths, tuples, tensors and non-finite floats made JSON-safe (inf -> "inf")."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return jsonable(obj.tolist())
    return obj


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(jsonable(obj), indent=2) + "\n")


def environment(device: Any = None) -> dict[str, str]:
    """Versions that a result depends on, recorded in every result file. `device`: the one the work ran
    on (a CPU run on a GPU machine records cpu); None: the first GPU if there is one."""
    import torch
    import transformers

    return {
        "ropescale": version("ropescale"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": _device_name(device),
        "torch_threads": str(torch.get_num_threads()),
    }


def _device_name(device: Any) -> str:
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    return f"cuda:{torch.cuda.get_device_name(device)}"
