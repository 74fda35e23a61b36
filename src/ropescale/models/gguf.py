"""The RoPE settings a GGUF file carries, read with the `gguf` package's reader (no weights are loaded).

llama.cpp keeps them as ``{arch}.rope.*`` metadata (freq_base, scaling.type/factor/original_context_length,
the yarn_* fields) and, for llama3-style scaling, as a ``rope_freqs`` tensor of per-frequency divisors
(Phi-3 LongRoPE: ``rope_factors_long`` / ``rope_factors_short``). transformers' GGUF loader maps only
freq_base and context_length; `compat.gguf_rope_parameters` turns the rest into rope_parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

FACTOR_TENSORS = ("rope_freqs", "rope_factors_long", "rope_factors_short")


@dataclass(frozen=True)
class GgufRope:
    """fields: the file's ``{arch}.rope.*`` and ``{arch}.context_length`` values keyed without the
    ``{arch}.`` prefix (e.g. ``"rope.scaling.type": "yarn"``); tensors: the factor tensors it has
    (``rope_freqs`` etc., float values, (d/2,) each)."""

    path: str
    arch: str
    fields: dict[str, Any]
    tensors: dict[str, tuple[float, ...]]


def read_gguf_rope(path: str | Path) -> GgufRope:
    """Read the RoPE metadata and factor tensors of a GGUF file. Raises ValueError naming the file when
    the `gguf` package is missing or the file cannot be parsed."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ValueError(
            f"MODEL {path}: reading GGUF needs the gguf package: pip install 'ropescale[gguf]'"
        ) from None
    try:
        reader = GGUFReader(str(path))
        arch = str(reader.fields["general.architecture"].contents())
    except Exception as err:  # the user's file, reported in one line
        raise ValueError(
            f"MODEL {path}: not a readable GGUF checkpoint ({type(err).__name__}: {err})"
        ) from err
    prefix = f"{arch}."
    fields = {
        name[len(prefix) :]: field.contents()
        for name, field in reader.fields.items()
        if name.startswith((f"{prefix}rope.", f"{prefix}context_length"))
    }
    tensors = {
        t.name.removesuffix(".weight"): tuple(float(v) for v in t.data.reshape(-1).tolist())
        for t in reader.tensors
        if t.name.removesuffix(".weight") in FACTOR_TENSORS
    }
    return GgufRope(str(path), arch, fields, tensors)
