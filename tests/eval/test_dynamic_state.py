"""Dynamic NTK keeps state: transformers grows the rotary base for the longest sequence seen and keeps it
until a sequence shorter than the ORIGINAL window arrives. So evaluating length A and then a length B with
L < B < A would score B at A's scaling unless the scorer and the generator reset the rotary state. Here:
length A then B equals B alone on a fresh copy of the model (window 64 -> 256, A = 200, B = 100)."""

from __future__ import annotations

import copy

import pytest
import torch

from ropescale.config import RopeScaling
from ropescale.eval.generate import generate
from ropescale.eval.perplexity import perplexity_at, score_batch
from ropescale.models import scale_model

A, B = 200, 100


@pytest.fixture
def dynamic_pair(tiny_llama):
    """(model, an untouched copy): the tiny LLaMA (window 64) with dynamic NTK x4."""
    scale_model(tiny_llama, RopeScaling("dynamic", 4.0))
    return tiny_llama, copy.deepcopy(tiny_llama)


def _ids(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 96, (n,), generator=torch.Generator().manual_seed(seed))


def test_the_premise_state_leaks_without_a_reset(dynamic_pair):
    """Without the reset, transformers' own forward scores B differently after A (so the tests below can
    fail)."""
    used, fresh = dynamic_pair
    with torch.no_grad():
        used(input_ids=_ids(A, 1)[None])
        after = used(input_ids=_ids(B, 2)[None]).logits
        alone = fresh(input_ids=_ids(B, 2)[None]).logits
    assert (after - alone).abs().max() > 1e-3


def test_scoring_a_then_b_equals_b_alone(dynamic_pair):
    used, fresh = dynamic_pair
    score_batch(used, _ids(A, 1)[None], A - 1)
    got = score_batch(used, _ids(B, 2)[None], 50)
    want = score_batch(fresh, _ids(B, 2)[None], 50)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_perplexity_at_a_then_b_equals_b_alone(dynamic_pair):
    used, fresh = dynamic_pair
    docs = [_ids(260, 3), _ids(150, 4)]
    perplexity_at(used, docs, A, 64, 4096)
    got = perplexity_at(used, docs, B, 64, 4096)
    want = perplexity_at(fresh, docs, B, 64, 4096)
    assert got["nll"] == want["nll"] and got["per_document"] == want["per_document"]


def test_generation_a_then_b_equals_b_alone(dynamic_pair):
    """The prompt's logits (recorded by a forward hook on the first call) and the greedy tokens."""
    used, fresh = dynamic_pair
    seen: list[torch.Tensor] = []

    def record(_module, _args, output):
        seen.append(output.logits[0, -1].detach().clone())

    generate(used, _ids(A, 1), 4, set())
    hooks = [m.register_forward_hook(record) for m in (used, fresh)]
    got = generate(used, _ids(B, 2), 6, set())
    first_used = seen[0]
    seen.clear()
    want = generate(fresh, _ids(B, 2), 6, set())
    for h in hooks:
        h.remove()
    torch.testing.assert_close(first_used, seen[0], rtol=0, atol=0)
    assert got == want
