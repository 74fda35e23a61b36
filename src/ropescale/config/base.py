"""The knobs everything shares: LoadOptions, and the extend/inspect commands. RopeScaling lives beside the
rope math (rope/spec.py; re-exported by config), knob() and its checks on the ground floor (knobs.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..knobs import check_knobs, knob
from ..rope.methods import METHODS
from ..rope.spec import METHOD_NAMES as METHOD_NAMES  # re-exported: config's face
from ..rope.spec import RopeScaling


def resolve_path(value: str | Path) -> Path:
    return Path(value).expanduser()


DTYPES = ("auto", "float32", "bfloat16", "float16")
GGUF_TYPES = ("f16", "q8_0", "f32")  # llama.cpp converter --outtype values ropescale offers


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model (shared by every command that loads one)."""

    device: str = knob("cpu", "torch device to run on (cpu, cuda, cuda:1, ...)")
    dtype: str = knob("auto", "weights dtype (auto = float32 on CPU, bfloat16 on GPU)", choices=DTYPES)
    trust_remote_code: bool = knob(
        False, "allow the checkpoint's own Python code to run (off unless you ask)"
    )
    allow_smaller_window: bool = knob(
        False,
        "let a scaling give a model that already carries one a window smaller than the one it has "
        "(--factor is relative to the unscaled window)",
    )

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if self.device != "cpu":
            check_device(self.device)


def check_device(device: str) -> None:
    """--device names a torch device type this torch was built with and a device that is present."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    backend = getattr(torch.backends, dev.type, None) if dev.type == "mps" else getattr(torch, dev.type, None)
    available = getattr(backend, "is_available", None)
    if dev.type != "cpu" and not (callable(available) and available()):
        raise ValueError(
            f"--device {device}: this torch ({torch.__version__}) has no usable {dev.type} device"
        )
    count = getattr(backend, "device_count", lambda: 1)()
    if dev.index is not None and dev.index >= count:
        raise ValueError(f"--device {device}: only {count} {dev.type} device(s) are visible")


@dataclass(frozen=True)
class ExtendConfig:
    """ropescale extend: write a checkpoint whose config carries the scaling."""

    model: str = knob(
        help="model: local directory, .gguf file, hub id, or a built-in: tiny, smollm2-135m", positional=True
    )
    out: Path = knob(help="output directory for the scaled checkpoint (safetensors + tokenizer)")
    rope: RopeScaling = knob(RopeScaling(), "scaling")
    load: LoadOptions = knob(LoadOptions(), "loading")
    overwrite: bool = knob(False, "replace --out if it exists and is not empty")
    gguf: bool = knob(
        False,
        "also write a GGUF (llama.cpp) into --out with llama.cpp's converter, checked against the scaling "
        "(pip install 'ropescale[gguf-export]')",
    )
    gguf_type: str = knob("f16", "weights type of the --gguf file", choices=GGUF_TYPES)

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if self.gguf:
            reason = gguf_unsupported(self.rope)
            if reason:
                raise ValueError(f"--gguf with --method {self.rope.rope_type}: {reason}")


def gguf_unsupported(s: RopeScaling) -> str | None:
    """Why llama.cpp cannot run a scaling as transformers does (None when it can). LongRoPE also needs a
    Phi-3 model, checked once the model's config is known (models/gguf.py)."""
    return METHODS[s.rope_type].gguf_refusal(s)


@dataclass(frozen=True)
class InspectConfig:
    """ropescale inspect: what RoPE scaling a model carries, per dimension, and whether it is live."""

    model: str = knob(
        help="model: local directory, .gguf file, hub id, or a built-in: tiny, smollm2-135m", positional=True
    )
    rope: RopeScaling | None = knob(
        None, "preview a scaling instead of the model's own (same flags as extend)"
    )
    load: LoadOptions = knob(LoadOptions(), "loading")
    json: bool = knob(False, "print machine-readable JSON instead of tables")
