"""scale_model on live models: same logits as building the scaled model with transformers directly."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, MistralConfig, Qwen2Config

from ropescale import RopeScaling
from ropescale.models import NotRopeModelError, check_rotary, rope_state, scale_model
from ropescale.models.scale import transformers_rope

from ..conftest import tiny_llama_config

METHODS = {
    "none": RopeScaling("none", 1.0),
    "linear": RopeScaling("linear", 4.0),
    "ntk": RopeScaling("ntk", 4.0),
    "abf": RopeScaling("abf", 4.0, rope_theta=5e5),
    "dynamic": RopeScaling("dynamic", 4.0),
    "yarn": RopeScaling("yarn", 4.0, beta_fast=8.0),
    "llama3": RopeScaling("llama3", 4.0),
    "longrope": RopeScaling(
        "longrope", 4.0, short_factor=(1.0,) * 8, long_factor=tuple(1 + 3 * i / 7 for i in range(8))
    ),
}


def reference_model(config, spec: RopeScaling, state_dict):
    """The scaled model built the plain transformers way: scaled config first, then the weights."""
    config = copy.deepcopy(config)
    spec = spec.with_original(config.max_position_embeddings)
    base = config.rope_parameters["rope_theta"]
    params, max_pos = transformers_rope(spec, base, config.head_dim)
    config.rope_parameters, config.max_position_embeddings = params, max_pos
    model = AutoModelForCausalLM.from_config(config).eval()
    model.load_state_dict(state_dict)
    return model


@pytest.mark.parametrize("method", list(METHODS))
def test_logits_equal_transformers_path(tiny_llama, method):
    spec = METHODS[method]
    reference = reference_model(tiny_llama.config, spec, tiny_llama.state_dict())
    ours = copy.deepcopy(tiny_llama)
    resolved = scale_model(ours, spec)
    assert resolved.original_max_position_embeddings == 64
    ids = torch.randint(0, 96, (2, 200))  # beyond the original window of 64
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, reference(ids).logits, rtol=0, atol=0)
    if method != "none":  # scaling really changed the model
        with torch.no_grad():
            assert not torch.allclose(ours(ids).logits, tiny_llama(ids).logits)


def test_rescaling_replaces_rather_than_stacks(tiny_llama):
    twice = copy.deepcopy(tiny_llama)
    scale_model(twice, RopeScaling("linear", 2.0))
    scale_model(twice, RopeScaling("yarn", 8.0))
    once = copy.deepcopy(tiny_llama)
    scale_model(once, RopeScaling("yarn", 8.0))
    assert twice.config.rope_parameters == once.config.rope_parameters
    assert torch.equal(twice.model.rotary_emb.inv_freq, once.model.rotary_emb.inv_freq)
    assert rope_state(twice.config).spec.original_max_position_embeddings == 64


def test_max_position_embeddings_as_transformers_reads_it(tiny_llama):
    m = copy.deepcopy(tiny_llama)
    scale_model(m, RopeScaling("linear", 8.0))
    assert m.config.max_position_embeddings == 512
    scale_model(m, RopeScaling("dynamic", 8.0))
    assert m.config.max_position_embeddings == 64  # dynamic reads it as the original window


def test_check_rotary_catches_a_silently_unapplied_scaling(tiny_llama):
    m = copy.deepcopy(tiny_llama)
    m.config.rope_parameters = {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}  # config only
    problems = check_rotary(m)
    assert problems and "inv_freq" in problems[0]
    scale_model(m, RopeScaling("linear", 4.0))
    assert check_rotary(m) == []


@pytest.mark.parametrize("config_cls", [MistralConfig, Qwen2Config])
def test_other_rope_architectures(config_cls):
    config = config_cls(
        **{k: v for k, v in tiny_llama_config().to_dict().items() if k in config_cls().to_dict()}
    )
    model = AutoModelForCausalLM.from_config(config).eval()
    scale_model(model, RopeScaling("yarn", 4.0))
    assert check_rotary(model) == []
    assert model.config.rope_parameters["rope_type"] == "yarn"


def test_refuses_models_without_rope():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(NotRopeModelError, match="'gpt2' has no rotary position embedding"):
        scale_model(model, RopeScaling("linear", 2.0))


def test_longrope_factor_count_checked_against_the_model(tiny_llama):
    with pytest.raises(ValueError, match="head_dim/2 = 8 values for this model, got 3"):
        scale_model(tiny_llama, RopeScaling("longrope", 2.0, short_factor=(1.0,) * 3, long_factor=(2.0,) * 3))


def test_plan_reads_only_the_config_and_is_applied_once(tiny_llama):
    from ropescale.models import plan_scaling

    before = tiny_llama.config.to_dict()
    plan = plan_scaling(tiny_llama.config, RopeScaling("yarn", 4.0))
    assert tiny_llama.config.to_dict() == before  # planning changes nothing
    assert plan.spec.original_max_position_embeddings == 64 and plan.max_position_embeddings == 256
    assert (plan.base, plan.rotary_dim) == (10000.0, 16)
    assert plan.rope_parameters == transformers_rope(plan.spec, 10000.0, 16)[0]
    assert scale_model(tiny_llama, plan) == plan.spec and check_rotary(tiny_llama, plan) == []
    # the check compares the live modules with the plan it is given, not with what the config says
    other = plan_scaling(tiny_llama.config, RopeScaling("linear", 2.0))
    assert check_rotary(tiny_llama, other)
    with pytest.raises(ValueError, match="head_dim/2 = 8 values for this model"):
        plan_scaling(tiny_llama.config, RopeScaling("longrope", 2.0, short_factor=(1.0,), long_factor=(2.0,)))
