"""Resumable checkpoints: DIR/checkpoints/step-NNNNNNN/ with model weights (safetensors), optimizer state
(torch.save; read back with weights_only=True), trainer state (JSON: step, scheduler, data position,
fingerprint) and each rank's RNG states. Each is written to a temporary directory and renamed into place,
so a crash, even SIGKILL, leaves either the previous checkpoint or the new one, never half of one; only
the last `keep` are kept.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .. import io

PREFIX = "step-"


def checkpoint_dir(out: Path, step: int) -> Path:
    return Path(out) / "checkpoints" / f"{PREFIX}{step:07d}"


def list_checkpoints(out: Path) -> list[Path]:
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX) :]))


def latest(out: Path) -> Path | None:
    found = list_checkpoints(out)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy = {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": pos,
        "gauss": (has_gauss, gauss),
    }
    state = {"torch": torch.get_rng_state(), "numpy": numpy, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], *n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
    with io.atomic_dir(target, overwrite=True) as tmp:
        save_file(_unshared(model), str(tmp / "model.safetensors"))
        torch.save(optimizer, tmp / "optimizer.pt")
        torch.save(rngs, tmp / "rng.pt")
        io.write_json(tmp / "state.json", trainer)  # last: its presence marks a complete checkpoint
    for old in list_checkpoints(out)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(model state, optimizer state, trainer state, per-rank RNG states) of one checkpoint."""
    path = Path(path)
    model = load_file(str(path / "model.safetensors"))
    optimizer = torch.load(path / "optimizer.pt", weights_only=True)
    rngs = torch.load(path / "rng.pt", weights_only=True)
    trainer = json.loads((path / "state.json").read_text())
    return model, optimizer, trainer, rngs


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse to resume when the rope spec, data or batch layout differ from the checkpoint's."""
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diff:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in diff)
        raise ValueError(
            f"--resume: {path} was made with a different setup ({details}); refusing to resume. "
            "Use the original settings, or a new --out"
        )
