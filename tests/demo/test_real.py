"""The real-model demo reads perplexity at L from the first L positions of a 2L pass: check that equals an
L-token window on the document cut to L (causal attention), for a static scaling, on a real LLaMA."""

from __future__ import annotations

import math

import torch

from ropescale.config import RopeScaling
from ropescale.demo.real import first_part_ppl
from ropescale.eval.perplexity import perplexity_at
from ropescale.models.scale import scale_model


def test_first_half_of_a_long_window_is_the_short_window(tiny_llama):
    model = tiny_llama.eval()
    scale_model(model, RopeScaling(rope_type="linear", factor=2.0, original_max_position_embeddings=64))
    doc = torch.randint(0, 96, (128,), generator=torch.Generator().manual_seed(0))
    long = perplexity_at(model, [doc], 128, 128, 10_000)
    short = perplexity_at(model, [doc[:64]], 64, 64, 10_000)
    assert math.isclose(first_part_ppl(long["by_position"], 64), short["ppl"], rel_tol=1e-5)
    assert not math.isclose(long["ppl"], short["ppl"], rel_tol=1e-3)  # the second half does differ
