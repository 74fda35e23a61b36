"""What every evaluation command shares: loading the (scaled) model, describing it, writing the result."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from .. import outputs
from ..config import LoadOptions, RopeScaling
from ..models.prepare import prepare_model
from ..models.scale import layer_ropes


class ModelInfo(TypedDict, total=False):
    """The row label of a result (`describe`), plus the seconds its load took."""

    name: str
    method: str
    factor: float
    original_window: int  # L
    window: int  # L' = s * L
    scaling: dict[str, Any]  # RopeScaling.to_dict()
    layers: list[dict[str, Any]]  # models.scale.layer_ropes: the rope per layer type ([]: one rope dict)
    load_s: float


class EvalResult(TypedDict, total=False):
    """What every evaluation command returns and writes to --out (JSON); each adds its own fields."""

    kind: str  # "ppl", "passkey", "summarize", "harness", "ruler": what `ropescale report` reads it as
    config: dict[str, Any]  # the resolved config (outputs.jsonable)
    model: ModelInfo
    timings: dict[str, Any]  # load_s, total_s, ... (seconds)
    environment: dict[str, str]  # package versions and device (outputs.environment)
    out: str  # the result file, when --out was given


def load_for_eval(name: str, load: LoadOptions, rope: RopeScaling | None) -> tuple[Any, Any, ModelInfo]:
    """(model, tokenizer, model description) with `rope` applied (None keeps the model's own scaling)."""
    start = time.perf_counter()
    model, tokenizer, spec = prepare_model(name, load, rope)
    info = describe(name, spec, model)
    info["load_s"] = round(time.perf_counter() - start, 3)
    return model, tokenizer, info


def load_checked(cfg) -> tuple[Any, Any, dict[str, Any], list[int]]:
    """What `eval ppl` and `eval passkey` start with: --out checked, the (scaled) model loaded, and
    --lengths (default: the model's window) checked against its window."""
    if cfg.out is not None:
        outputs.check_out_file(cfg.out, overwrite=cfg.overwrite)
    model, tokenizer, info = load_for_eval(cfg.model, cfg.load, cfg.rope)
    lengths = list(cfg.lengths or [info["window"]])
    check_lengths(lengths, info, cfg.allow_extrapolation)
    return model, tokenizer, info, lengths


def describe(name: str, spec: RopeScaling, model: Any) -> ModelInfo:
    """The row label of a result: model, method, factor, original window L and extended window L'."""
    original = spec.original_max_position_embeddings or model.config.max_position_embeddings
    window = spec.new_window or original
    return {
        "name": str(name),
        "method": spec.rope_type,
        "factor": float(spec.factor),
        "original_window": int(original),
        "window": int(window),
        "scaling": spec.to_dict(),
        "layers": layer_ropes(model.config),
    }


def check_lengths(
    lengths: list[int], info: dict[str, Any], allow_extrapolation: bool, what: str = "--lengths"
) -> None:
    """Evaluation lengths must lie within the model's window unless extrapolation was asked for."""
    too_long = [n for n in lengths if n > info["window"]]
    if too_long and not allow_extrapolation:
        raise ValueError(
            f"{what} {','.join(map(str, too_long))} exceed the model's window {info['window']} "
            f"(method {info['method']}, factor {info['factor']:g}); pass --allow-extrapolation to evaluate anyway"
        )


def bootstrap_ci(
    numerators: np.ndarray,
    denominators: np.ndarray,
    transform=lambda x: x,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap over items of transform(sum(num) / sum(den)), resampling items with
    replacement (a ratio of sums, so a token-weighted mean NLL stays token-weighted in every resample)."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.size == 0:
        return (float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, num.size, size=(samples, num.size))
    stats = transform(num[idx].sum(axis=1) / den[idx].sum(axis=1))
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def finish(
    result: dict[str, Any], out: Path | None, versions: dict[str, str] | None = None
) -> dict[str, Any]:
    """Add package versions (and `versions` of the packages this eval uses besides), then write the result
    JSON atomically when --out was given."""
    result["environment"] = {**outputs.environment(), **(versions or {})}
    if out is not None:
        outputs.write_json(out, result)
        result["out"] = str(out)
    return result


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned text table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(h) for h in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])
