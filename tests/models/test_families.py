"""The family matrix: for each RoPE family the installed transformers builds (a tiny random checkpoint) and
each method, `extend` -> stock transformers reload in a fresh process -> logits equal to ropescale's live
scaling (`load_model(DIR, rope=...)`) on an input longer than the original window; the live rotary table
equal to what transformers computes from the intended rope parameters typed by hand; or a one-line
refusal. The fast subset runs by default, the rest is marked slow."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

import ropescale
from ropescale.cli import main
from ropescale.models import compat, plan_scaling
from ropescale.models.scale import rope_state

from .families import FAMILIES, METHODS, Family, render_models_doc, save_family, tiny_config

LENGTH = 250  # tokens, beyond every tiny model's original window (at most 128)
RELOAD = textwrap.dedent(
    """
    import json, sys, torch
    from transformers import AutoModelForCausalLM
    ids = torch.load(sys.argv[1])
    out = {}
    for d in json.loads(sys.argv[2]):
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        with torch.no_grad():
            out[d] = model(ids).logits
    torch.save(out, sys.argv[3])
    """
)


def _params(f: Family):
    return pytest.param(f, id=f.name, marks=() if f.fast else pytest.mark.slow)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def hand_typed(config, live_plan) -> tuple[torch.Tensor, float] | None:
    """transformers' own rotary table for the intended method, its rope parameters typed by hand into a
    plain LlamaConfig of the same rotary dim, base and window (independent of ropescale's plan)."""
    spec, base, dim = live_plan.spec, live_plan.base, live_plan.rotary_dim
    orig, factor = spec.original_max_position_embeddings, spec.factor
    typed = {
        "linear": {"rope_type": "linear", "factor": factor},
        "ntk": {"rope_type": "default", "rope_theta": base * factor ** (dim / (dim - 2))},
        "abf": {"rope_type": "default", "rope_theta": spec.rope_theta},
        "yarn": {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": orig},
        "llama3": {
            "rope_type": "llama3",
            "factor": factor,
            "original_max_position_embeddings": orig,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
        },
    }.get(spec.rope_type)
    if typed is None:
        return None
    llama = LlamaConfig(
        hidden_size=dim * 2,
        num_attention_heads=2,
        head_dim=dim,
        max_position_embeddings=round(orig * factor),
        rope_parameters={"rope_theta": base, **typed},
    )
    module = LlamaRotaryEmbedding(llama)
    return module.inv_freq.clone(), float(module.attention_scaling)


def llama_cpp_rope(
    args: list[str], base: float, n_rot: int, n_ctx_train: int
) -> tuple[torch.Tensor, float] | None:
    """The frequencies and cos/sin factor llama.cpp uses on a layer without a sliding window, given the
    printed runtime flags and the unscaled GGUF (freq_base = base, rope.dimension_count = n_rot, its
    training context n_ctx_train: YaRN's original context when --yarn-orig-ctx is not given), after
    ggml's rope: theta = freq_base^(-i0/n_rot) (i0 = 0, 2, ..), times freq_scale = 1 / --rope-scale; for
    yarn the ramp over ggml_rope_yarn_corr_dims (floor / ceil, clamped) and mscale 1 + 0.1 ln(1/freq_scale).
    None: the flags set no rope at all (llama.cpp runs the GGUF's rope)."""
    opts = dict(zip(args[::2], args[1::2], strict=True))
    if not {"--rope-scale", "--rope-freq-base", "--rope-scaling"} & set(opts):
        return None
    freq_base = float(opts.get("--rope-freq-base", base))
    freq_scale = 1.0 / float(opts.get("--rope-scale", 1.0))
    extrap = freq_base ** (-torch.arange(0, n_rot, 2, dtype=torch.float64) / n_rot)
    if opts.get("--rope-scaling", "linear") != "yarn":
        return extrap * freq_scale, 1.0
    ctx = int(opts.get("--yarn-orig-ctx", n_ctx_train))

    def corr_dim(rotations: float) -> float:
        return n_rot * math.log(ctx / (rotations * 2 * math.pi)) / (2 * math.log(freq_base))

    low = max(0, math.floor(corr_dim(float(opts.get("--yarn-beta-fast", 32.0)))))
    high = min(n_rot - 1, math.ceil(corr_dim(float(opts.get("--yarn-beta-slow", 1.0)))))
    y = (torch.arange(n_rot // 2, dtype=torch.float64) - low) / max(0.001, high - low)
    mix = 1 - y.clamp(0, 1)  # ext_factor 1 for yarn
    return extrap * freq_scale * (1 - mix) + extrap * mix, 1 + 0.1 * math.log(1 / freq_scale)


def check_llama_cpp(flags: dict, plan, live: tuple[torch.Tensor, float], compare: bool) -> None:
    """The printed llama.cpp flags, run on the unscaled GGUF, give the live model's frequencies and factor
    (`compare`: False for a rope llama_cpp_rope does not model, Gemma 4's proportional one); flags that
    cannot say the method say so in a note; rope keys only the GGUF carries are named in a note."""
    ctx = plan.spec.original_max_position_embeddings
    cpp = llama_cpp_rope(flags["args"], plan.base, plan.rotary_dim, ctx)
    if cpp is None and plan.spec.rope_type != "none":
        assert flags["notes"], flags  # llama3, dynamic, longrope: the runtime has no flag, a note says so
    elif compare:
        cpp = cpp or llama_cpp_rope(["--rope-scale", "1"], plan.base, plan.rotary_dim, ctx)
        torch.testing.assert_close(live[0].double(), cpp[0], rtol=1e-5, atol=0)
        assert live[1] == pytest.approx(cpp[1], rel=1e-6)
    params = [plan.rope_parameters[lt] for lt in plan.layer_types] or [plan.rope_parameters]
    for key in ("mscale_all_dim", "llama_4_scaling_beta"):
        if any(p.get(key) for p in params):
            assert any(key in n and "from the GGUF" in n for n in flags["notes"]), (key, flags["notes"])


def one_line(err: Exception) -> str:
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


@pytest.mark.parametrize("family", [_params(f) for f in FAMILIES])
def test_family_matrix(family, tmp_path):
    torch.manual_seed(0)
    config = tiny_config(family)
    original = tmp_path / "original"
    save_family(AutoModelForCausalLM.from_config(config).eval(), original)
    ids = torch.randint(3, config.vocab_size, (1, LENGTH))
    rows, live_logits = {}, {}
    for name, spec in METHODS.items():
        try:
            plan = plan_scaling(config, spec)
        except ValueError as err:  # NotRopeModelError included: refused from the config, before any weights
            rows[name] = one_line(err)
            continue
        out = tmp_path / name
        result = ropescale.extend(str(original), out, spec)
        # the printed vLLM override, applied to the original config, gives the saved rope settings
        args = result["serving"]["vllm"]["args"]
        override = json.loads(args[args.index("--hf-overrides") + 1])
        served = AutoConfig.from_pretrained(original)
        served.update(override)
        assert served.rope_parameters == AutoConfig.from_pretrained(out).rope_parameters, (family.name, name)
        live, _ = ropescale.load_model(str(original), rope=spec)
        with torch.no_grad():
            live_logits[str(out)] = live(ids).logits
        (_, module), *_ = compat.rotary_modules(live)
        layer = plan.layer_types[0] if plan.layer_types else None
        got = compat.live_rotary(module, plan.spec.new_window, layer)
        check_llama_cpp(result["serving"]["llama_cpp"], plan, got, family.name != "Gemma 4")
        want = hand_typed(config, plan)
        # inv_freq / attention factor equal to transformers' own on typed parameters (Gemma 4's full layers
        # are proportional: compared in test_family_defects)
        if want is not None and family.name != "Gemma 4":
            torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=0)
            assert got[1] == pytest.approx(want[1], rel=1e-6)
        rows[name] = plan
    if live_logits:
        torch.save(ids, tmp_path / "ids.pt")
        subprocess.run(
            [
                sys.executable,
                "-c",
                RELOAD,
                str(tmp_path / "ids.pt"),
                json.dumps(list(live_logits)),
                str(tmp_path / "r.pt"),
            ],
            check=True,
            capture_output=True,
        )
        reloaded = torch.load(tmp_path / "r.pt")
        for name in METHODS:
            key = str(tmp_path / name)
            if key in live_logits:
                rows[name] = _rel(live_logits[key], reloaded[key])
                assert rows[name] < 1e-5, (family.name, name, rows[name])
    print(
        f"MATRIX {family.name}: "
        + json.dumps({k: v if isinstance(v, (str, float)) else "?" for k, v in rows.items()})
    )
    assert rows


def test_unscaled_families_change_under_scaling(tmp_path):
    """A scaling that is applied really changes the model beyond the window (so equality above is not
    equality of two unscaled models); DeepSeek's MLA softmax scale follows yarn's mscale_all_dim."""
    torch.manual_seed(0)
    config = tiny_config(next(f for f in FAMILIES if f.name == "DeepSeek-V3"))
    model = AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(3, config.vocab_size, (1, LENGTH))
    with torch.no_grad():
        before = model(ids).logits
    spec = ropescale.RopeScaling("yarn", 4.0, mscale=1.0, mscale_all_dim=1.0)
    ropescale.scale_model(model, spec)
    scale = model.model.layers[0].self_attn.scaling
    mscale = 0.1 * torch.log(torch.tensor(4.0)).item() + 1
    assert scale == pytest.approx(config.qk_head_dim**-0.5 * mscale**2, rel=1e-6)
    with torch.no_grad():
        assert _rel(model(ids).logits, before) > 1e-3
    assert rope_state(model.config).spec.factor == 4.0


def test_models_page_is_in_sync_with_the_matrix():
    """docs/models.md is generated from the matrix (python tools/gen_models_doc.py)."""
    page = Path(__file__).resolve().parents[2] / "docs" / "models.md"
    assert page.read_text() == render_models_doc(), (
        "docs/models.md is stale: run python tools/gen_models_doc.py"
    )


def _cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _first_method(config) -> str | None:
    """The first method of the matrix that the family takes (None: every one is refused)."""
    for name, spec in METHODS.items():
        try:
            plan_scaling(config, spec)
        except ValueError:
            continue
        return name
    return None


COMMANDS_FAST = ("Llama", "GPT-NeoX", "DeepSeek-V3", "Gemma 3")  # plain, fused qkv, MLA, rope per layer type


@pytest.mark.parametrize(
    "family",
    [pytest.param(f, id=f.name, marks=() if f.name in COMMANDS_FAST else pytest.mark.slow) for f in FAMILIES],
)
def test_family_commands(family, tmp_path, capsys):
    """inspect, theory --short-range, eval ppl, 2 training steps and a resume, on a family's tiny checkpoint
    with the first method it takes: each runs, or refuses in one line (exit 2)."""
    torch.manual_seed(0)
    config = tiny_config(family)
    model = save_family(AutoModelForCausalLM.from_config(config).eval(), tmp_path / "m")
    method = _first_method(config)
    if method is None:
        code, _, err = _cli(["inspect", model, "--method", "linear", "--factor", "2"], capsys)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        return
    data = tmp_path / "data"
    data.mkdir()
    words = torch.randint(3, config.vocab_size, (12, 300)).tolist()
    for i, doc in enumerate(words):
        (data / f"{i}.txt").write_text(" ".join(f"w{w}" for w in doc))
    scaling = ["--method", method, "--factor", "2"]
    code, out, err = _cli(["inspect", model, *scaling], capsys)
    assert code == 0 and "live rotary module matches the config: yes" in out, err
    text = data / "0.txt"
    code, out, err = _cli(["theory", model, "--short-range", *scaling, "--text", text, "--tokens", 40,
                           "--offsets", 8, "--json"], capsys)  # fmt: skip
    assert code == 0 or _one_line_refusal(code, err), err
    outcome = {"inspect": "ok", "theory --short-range": "ok" if code == 0 else err.strip()}
    code, out, err = _cli(["theory", model, *scaling, "--text", text, "--tokens", 40, "--pairs", 200,
                           "--out", tmp_path / "theory.json"], capsys)  # fmt: skip
    assert code == 0 or _one_line_refusal(code, err), err
    outcome["theory"] = "ok" if code == 0 else err.strip()
    window = plan_scaling(config, METHODS[method]).spec.new_window
    code, out, err = _cli(["eval", "ppl", "--model", model, "--data", data, "--lengths", f"64,{window}",
                           "--max-docs", 2, *scaling, "--out", tmp_path / "ppl.json"], capsys)  # fmt: skip
    assert code == 0 or _one_line_refusal(code, err), err
    if code == 0:
        ppl = json.loads((tmp_path / "ppl.json").read_text())["lengths"]
        assert all(math.isfinite(r["ppl"]) and r["ppl"] > 1 for r in ppl)
    outcome["eval ppl"] = "ok" if code == 0 else err.strip()
    train = ["train", model, "--data", data, *scaling, "--batch-size", 2, "--save-every", 1, "--warmup-steps", 1,
             "--eval-sequences", 2, "--out", tmp_path / "ft"]  # fmt: skip
    code, out, err = _cli([*train, "--steps", 2], capsys)
    assert code == 0 or _one_line_refusal(code, err), err
    if code == 0:
        code, out, err = _cli([*train, "--steps", 3, "--resume"], capsys)
        assert code == 0, err
        saved = AutoConfig.from_pretrained(tmp_path / "ft")
        assert rope_state(saved).spec.rope_type == method
    outcome["train + resume"] = "ok" if code == 0 else err.strip()
    print(f"COMMANDS {family.name} ({method}): " + json.dumps(outcome))


def _one_line_refusal(code: int, err: str) -> bool:
    return code == 2 and err.count("\n") == 1 and "Traceback" not in err
