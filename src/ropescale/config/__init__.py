"""Dataclasses for every knob. Each field's `help` is its one-line doc and its `--help` text.

A field's metadata also carries its flag, whether it is positional, and its constraints (knobs.py lists
them; ``check_knobs`` reads them). Cross-knob validation lives in ``__post_init__`` and raises
``ValueError`` naming the flag. Building a config is pure: checks that need a model or the disk belong
to the command.

One module per group of commands: base (LoadOptions, extend, inspect; RopeScaling is rope/spec.py's), theory, train
(pretrain, train and their groups of knobs), eval (eval ..., report), demo; flat (the flat names of nested
configs that flags, --config files and recipes use, and `build` for Python callers).
"""

from ..knobs import knob
from .base import (
    DTYPES,
    GGUF_TYPES,
    METHOD_NAMES,
    ExtendConfig,
    InspectConfig,
    LoadOptions,
    RopeScaling,
    resolve_path,
)
from .demo import DEMO_MODELS, DemoConfig
from .eval import HarnessConfig, PasskeyConfig, PplConfig, ReportConfig, RulerConfig, SummarizeConfig
from .flat import build
from .theory import THEORY_FIT_DTYPES, TheoryConfig
from .train import (
    PASSKEY_LOSSES,
    SCHEDULES,
    TASKS,
    CheckpointOptions,
    DataOptions,
    LoraOptions,
    MemoryOptions,
    ModelShape,
    Objective,
    OptimOptions,
    PasskeyMix,
    PositionOptions,
    PretrainConfig,
    TokenizerOptions,
    TrainConfig,
    TrainOptions,
)

__all__ = [
    "DEMO_MODELS",
    "DTYPES",
    "GGUF_TYPES",
    "METHOD_NAMES",
    "PASSKEY_LOSSES",
    "SCHEDULES",
    "TASKS",
    "THEORY_FIT_DTYPES",
    "CheckpointOptions",
    "DataOptions",
    "DemoConfig",
    "ExtendConfig",
    "HarnessConfig",
    "InspectConfig",
    "LoadOptions",
    "LoraOptions",
    "MemoryOptions",
    "ModelShape",
    "Objective",
    "OptimOptions",
    "PasskeyConfig",
    "PasskeyMix",
    "PositionOptions",
    "PplConfig",
    "PretrainConfig",
    "ReportConfig",
    "RopeScaling",
    "RulerConfig",
    "SummarizeConfig",
    "TheoryConfig",
    "TokenizerOptions",
    "TrainConfig",
    "TrainOptions",
    "build",
    "knob",
    "resolve_path",
]
