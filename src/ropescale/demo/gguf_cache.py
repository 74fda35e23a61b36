"""A GGUF checkpoint converted once to a plain transformers checkpoint and reused.

Loading a GGUF dequantises every tensor (~27 s for SmolLM2-135M on a CPU); a command that loads the same
model several times pays it each time. `converted` writes the dequantised model (float32, unscaled, the
GGUF's own rope settings) as a normal safetensors checkpoint under a cache directory, keyed by a hash of
the file's bytes, so a changed file gets a new entry and stock transformers loads the cached copy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..commands.extend import run_extend
from ..config import ExtendConfig, RopeScaling
from ..models.load import resolve


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes (hex, first 16 characters)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def resolve_gguf(name: str) -> Path:
    """The .gguf file behind MODEL `name` (a path or a built-in name such as smollm2-135m)."""
    source = resolve(name)
    if source.kind != "gguf":
        raise ValueError(f"MODEL {name}: not a GGUF checkpoint, nothing to convert")
    return Path(source.path)


def converted(name: str, root: Path) -> Path:
    """The cached transformers checkpoint of MODEL `name` (a .gguf path or a built-in GGUF name such as
    smollm2-135m), converted now if it is not cached yet. The conversion goes through `ropescale extend`
    with no scaling (atomic directory, verified by reloading it with stock transformers)."""
    gguf = resolve_gguf(name)
    target = Path(root) / f"{gguf.stem}-{file_digest(gguf)}"
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        run_extend(ExtendConfig(model=str(gguf), out=target, rope=RopeScaling(), overwrite=True))
    return target
