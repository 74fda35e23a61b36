"""The Python API: a few thin functions over the commands' ``run_*``, returning the dicts the CLI writes.

Each function imports its command when called (a deferred import: `import ropescale` stays free of
transformers, about a second).

Each takes MODEL as the CLI does (a local checkpoint directory, a ``.gguf`` file, a hub id, or
``smollm2-135m``) and the command's flags as keyword arguments (``lengths=[2048, 4096]`` is
``--lengths 2048,4096``); the same validation applies, so a bad value raises ``ValueError`` naming the flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import (
    ExtendConfig,
    InspectConfig,
    LoadOptions,
    PasskeyConfig,
    PplConfig,
    RopeScaling,
)

# The tiny LLaMA trained at a 256-token window that ships with ropescale (what `ropescale demo --model
# tiny` extends): a real transformers checkpoint directory, small enough to try everything in seconds.
TINY_MODEL = str(Path(__file__).parent / "demo" / "base")


def _load(load: LoadOptions | dict[str, Any] | None) -> LoadOptions:
    return load if isinstance(load, LoadOptions) else LoadOptions(**(load or {}))


def load_model(
    model: str, rope: RopeScaling | None = None, load: LoadOptions | dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """(transformers model in eval mode, tokenizer), with `rope` applied (None keeps the model's own).
    `load` takes LoadOptions' fields: ``{"device": "cuda", "dtype": "bfloat16"}``."""
    from .models.prepare import prepare_model  # deferred: see the module docstring

    m, tokenizer, _ = prepare_model(model, _load(load), rope)
    return m, tokenizer


def scale_model(model: Any, rope: RopeScaling) -> RopeScaling:
    """Apply `rope` to a loaded transformers model in place (config and rotary buffers, checked against
    ropescale's own frequencies); always relative to the unscaled model. Returns the scaling with the
    original window L filled in."""
    from .models.scale import scale_model as scale  # deferred: see the module docstring

    return scale(model, rope)


def extend(model: str, out: str | Path, rope: RopeScaling, **options: Any) -> dict[str, Any]:
    """`ropescale extend`: write a checkpoint to `out` whose config carries `rope` (stock transformers then
    loads it scaled). Options: overwrite, gguf, gguf_type, load."""
    from .commands.extend import run_extend  # deferred: see the module docstring

    load = _load(options.pop("load", None))
    return run_extend(ExtendConfig(model=model, out=Path(out), rope=rope, load=load, **options))


def inspect(model: str, rope: RopeScaling | None = None, **options: Any) -> dict[str, Any]:
    """`ropescale inspect`: the model's RoPE scaling per dimension and whether its rotary module matches."""
    from .commands.inspect import run_inspect  # deferred: see the module docstring

    load = _load(options.pop("load", None))
    return run_inspect(InspectConfig(model=model, rope=rope, load=load, **options))


def perplexity(model: str, rope: RopeScaling | None = None, **options: Any) -> dict[str, Any]:
    """`ropescale eval ppl`: sliding-window perplexity per length (``result["lengths"][i]["ppl"]``, with a
    bootstrap ``ci95``). Options: the command's flags (data, lengths, stride, max_docs, out, ...)."""
    from .commands.ppl import run_ppl  # deferred: see the module docstring

    load = _load(options.pop("load", None))
    return run_ppl(PplConfig(model=model, rope=rope, load=load, **options))


def passkey(model: str, rope: RopeScaling | None = None, **options: Any) -> dict[str, Any]:
    """`ropescale eval passkey`: retrieval accuracy by distance k and the effective window k_max per length
    (``result["lengths"][i]["k_max"]``). Options: the command's flags (lengths, num_k, trials, depths, ...)."""
    from .commands.passkey import run_passkey  # deferred: see the module docstring

    load = _load(options.pop("load", None))
    return run_passkey(PasskeyConfig(model=model, rope=rope, load=load, **options))
