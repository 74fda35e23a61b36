"""Resumable checkpoints: DIR/checkpoints/step-NNNNNNN/ with model weights (safetensors), optimizer state
(torch.save; read back with weights_only=True), trainer state (JSON: step, scheduler, data position,
fingerprint), each rank's RNG states and, written last, manifest.json: every file's size and SHA-256. A
checkpoint is written to a temporary directory and renamed into place, so a crash, even SIGKILL, leaves
either the previous checkpoint or the new one, never half of one; `newest_intact` verifies the manifest, so
a checkpoint damaged afterwards (a truncated file) is skipped for the one before it. Only the last `keep`
are kept; a pruned one is renamed away before it is deleted, so a kill mid-prune leaves only debris that
`clean_debris` removes on the next run.

A run trains in `partial_dir(out)` (`.OUT.partial`, next to --out) and becomes --out with one rename when it
has finished, so --out only ever holds a complete run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .. import outputs
from . import dist

PREFIX = "step-"
MANIFEST = "manifest.json"
FILES = ("model.safetensors", "optimizer.pt", "rng.pt", "state.json")
DEBRIS = (".tmp-", ".old-", ".pruned-")  # what interrupted writes, swaps and prunes leave behind


def checkpoint_dir(out: Path, step: int) -> Path:
    return Path(out) / "checkpoints" / f"{PREFIX}{step:07d}"


def partial_dir(out: Path) -> Path:
    """Where a run trains until it has finished (then it is renamed to `out`)."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def list_checkpoints(out: Path) -> list[Path]:
    """Completed checkpoints (those with a manifest), oldest first; not verified (see `newest_intact`)."""
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / MANIFEST).is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX) :]))


def latest(out: Path) -> Path | None:
    found = list_checkpoints(out)
    return found[-1] if found else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def damage(path: Path) -> str | None:
    """Why checkpoint `path` is not intact (a missing, resized or altered file), or None if it is."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        return f"{MANIFEST} unreadable ({type(err).__name__})"
    for name, want in sorted(manifest.get("files", {}).items()):
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != want["size"]:
            return f"{name} has {file.stat().st_size} bytes, the manifest says {want['size']}"
        if _sha256(file) != want["sha256"]:
            return f"{name} does not match its SHA-256 in the manifest"
    return None


def newest_intact(out: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint whose files match its manifest, and a note for each newer one skipped."""
    skipped = []
    for path in reversed(list_checkpoints(out)):
        why = damage(path)
        if why is None:
            return path, skipped
        skipped.append(f"{path} ({why})")
    return None, skipped


def clean_debris(out: Path) -> list[Path]:
    """Remove what interrupted writes left for this --out: temporary and half-swapped siblings
    (.OUT.tmp-*, .OUT.old-*), temporary files in the run directory, and in its checkpoints/ the temporary,
    half-pruned and (in the unfinished run only) manifest-less step directories. Returns what was removed."""
    out = Path(out)
    work = partial_dir(out)
    found = [p for p in out.parent.glob(f".{out.name}.*") if any(d in p.name for d in DEBRIS)]
    for run in (out, work):
        found += [p for p in run.glob(".*") if any(d in p.name for d in DEBRIS)] if run.is_dir() else []
        root = run / "checkpoints"
        if root.is_dir():
            unfinished = run == work  # a finished --out may hold checkpoints from before manifests
            found += [
                p
                for p in root.iterdir()
                if p.name.startswith(".") or (unfinished and not (p / MANIFEST).is_file())
            ]
    for path in found:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return sorted(found)


def rng_state(device: torch.device | str = "cpu") -> dict[str, Any]:
    """The CPU, numpy and Python RNG states, and on a GPU the CUDA RNG state of that one device (a CPU
    run never touches CUDA, and a resume with fewer visible GPUs has each rank's own state to restore)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy = {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": pos,
        "gauss": (has_gauss, gauss),
    }
    state = {"torch": torch.get_rng_state(), "numpy": numpy, "python": random.getstate()}
    device = torch.device(device)
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | str = "cpu") -> None:
    """Restore `rng_state`'s record; its CUDA state (if any) goes to `device` when that is a GPU and is
    ignored on the CPU (where nothing draws from it)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], *n["gauss"]))
    random.setstate(state["python"])
    device = torch.device(device)
    cuda = state.get("cuda")
    if device.type == "cuda" and isinstance(cuda, torch.Tensor):  # older checkpoints: a list of all GPUs'
        torch.cuda.set_rng_state(cuda, device)


def _unshared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied embeddings): give repeats their own copy."""
    seen: set[int] = set()
    out = {}
    for key, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr()
        out[key] = tensor.clone() if ptr in seen else tensor.contiguous()
        seen.add(ptr)
    return out


def save(
    out: Path,
    step: int,
    model: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    trainer: dict[str, Any],
    rngs: list[dict[str, Any]],
    keep: int,
) -> Path:
    """Write one checkpoint atomically and drop all but the newest `keep`. Called on rank 0 only."""
    target = checkpoint_dir(out, step)
    with outputs.atomic_dir(target, overwrite=True) as tmp:
        save_file(_unshared(model), str(tmp / "model.safetensors"))
        dist.test_kill_point("checkpoint-write", step)
        torch.save(optimizer, tmp / "optimizer.pt")
        torch.save(rngs, tmp / "rng.pt")
        outputs.write_json(tmp / "state.json", trainer)
        files = {n: {"size": (tmp / n).stat().st_size, "sha256": _sha256(tmp / n)} for n in FILES}
        outputs.write_json(
            tmp / MANIFEST, {"step": step, "files": files}
        )  # last: marks a complete checkpoint
    for old in list_checkpoints(out)[:-keep] if keep > 0 else []:
        gone = old.with_name(f".{old.name}.pruned-{os.getpid()}")
        os.replace(old, gone)  # one rename: never a half-deleted step-N
        (gone / "optimizer.pt").unlink(missing_ok=True)
        dist.test_kill_point("checkpoint-prune", step)
        shutil.rmtree(gone, ignore_errors=True)
    return target


def trainer_state(path: Path) -> dict[str, Any]:
    return _read(path / "state.json", lambda f: json.loads(f.read_text()))


def _read(file: Path, reader: Any) -> Any:
    try:
        return reader(file)
    except Exception as err:  # a damaged file is named, not a traceback
        raise ValueError(
            f"--resume: {file} is damaged ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(model state, optimizer state, trainer state, per-rank RNG states) of one checkpoint."""
    path = Path(path)
    model = _read(path / "model.safetensors", lambda f: load_file(str(f)))
    # on the CPU whatever device wrote them (a GPU run resumes on a machine without one, and no rank of a
    # torchrun resume puts the whole state on cuda:0); the loaders move each piece to its device
    optimizer = _read(path / "optimizer.pt", lambda f: torch.load(f, weights_only=True, map_location="cpu"))
    rngs = _read(path / "rng.pt", lambda f: torch.load(f, weights_only=True, map_location="cpu"))
    return model, optimizer, trainer_state(path), rngs


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse to resume when the rope spec, data or batch layout differ from the checkpoint's."""
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diff:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in diff)
        raise ValueError(
            f"--resume: {path} was made with a different setup ({details}); refusing to resume. "
            "Use the original settings, or a new --out"
        )
