"""The chunked loss equals transformers' full-logits loss, value and gradients; the schedule is the paper's."""

from __future__ import annotations

import pytest
import torch

from ropescale.train.loss import CausalLMLoss, reference_loss
from ropescale.train.optim import lr_factor


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_chunked_loss_and_gradients_equal_full_logits(tiny_llama, chunk):
    torch.manual_seed(1)
    ids = torch.randint(0, 96, (3, 29))
    labels = ids.clone()
    labels[0, :11] = -100  # a masked prompt
    labels[2, 20:] = -100  # masked padding
    wrapped = CausalLMLoss(tiny_llama, chunk=chunk)
    total, count = wrapped(ids, labels)
    (total / count).backward()
    ours = {k: p.grad.clone() for k, p in tiny_llama.named_parameters()}
    tiny_llama.zero_grad()
    ref_total, ref_count = reference_loss(tiny_llama, ids, labels)
    (ref_total / ref_count).backward()
    assert int(count) == int(ref_count) == 18 + 28 + 19  # targets are positions 1..28 of each row
    torch.testing.assert_close(total, ref_total, rtol=1e-5, atol=0)
    for name, p in tiny_llama.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_tied_output_layer_gets_both_gradients():
    from transformers import LlamaForCausalLM

    from tests.conftest import tiny_llama_config as make

    torch.manual_seed(0)
    lm = LlamaForCausalLM(make(tie_word_embeddings=True))
    ids = torch.randint(0, 96, (2, 17))
    total, _count = CausalLMLoss(lm, chunk=5)(ids, ids)
    total.backward()
    ours = lm.model.embed_tokens.weight.grad.clone()
    lm.zero_grad()
    reference_loss(lm, ids, ids)[0].backward()
    torch.testing.assert_close(ours, lm.model.embed_tokens.weight.grad, rtol=1e-4, atol=1e-6)


def test_no_gradients_are_computed_without_grad(tiny_llama):
    ids = torch.randint(0, 96, (1, 9))
    with torch.no_grad():
        total, count = CausalLMLoss(tiny_llama, chunk=4)(ids, ids)
    assert not total.requires_grad and int(count) == 8


def test_schedule_is_the_papers_warmup_then_constant():
    # 20 warmup steps from 10% of the peak rate, then constant (PAPER.md 1.4)
    f = [lr_factor(s, 20, 0.1, "constant", 1000, 0.0) for s in range(0, 1000)]
    assert f[0] == pytest.approx(0.1) and f[10] == pytest.approx(0.55) and f[19] == pytest.approx(0.955)
    assert f[20:] == [1.0] * 980
    cos = [lr_factor(s, 10, 0.0, "cosine", 110, 0.1) for s in (0, 10, 60, 110, 500)]
    assert cos == pytest.approx([0.0, 1.0, 0.55, 0.1, 0.1])
