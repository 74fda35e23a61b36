"""Toy causal LMs whose logits are set by hand, so perplexities can be worked out on paper."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn


class ToyLM(nn.Module):
    """A model whose log-probabilities come from a rule `logprobs(ids) -> (B, T, V)`. It honours the two
    arguments the evaluation code passes (`logits_to_keep`, `labels`) the way transformers models do."""

    def __init__(self, vocab: int, rule):
        super().__init__()
        self.vocab = vocab
        self.rule = rule
        self.dummy = nn.Parameter(torch.zeros(1))  # so `next(model.parameters())` gives a device
        self.config = SimpleNamespace(max_position_embeddings=1 << 20)

    def forward(self, input_ids, logits_to_keep=0, labels=None, use_cache=False, **_):
        logits = self.rule(input_ids)
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        loss = None
        if labels is not None:
            flat = logits[:, :-1].reshape(-1, self.vocab)
            loss = nn.functional.cross_entropy(flat.float(), labels[:, 1:].reshape(-1), ignore_index=-100)
        return SimpleNamespace(logits=logits, loss=loss)


def bigram(matrix: torch.Tensor) -> ToyLM:
    """p(next = j | current = i) = matrix[i, j]."""
    logp = matrix.log()
    return ToyLM(matrix.shape[0], lambda ids: logp[ids])


def position_toy(vocab: int = 4) -> ToyLM:
    """At window position i, token 0 has probability 1/(i+2) and the rest share the remainder equally,
    whatever the input: the NLL of a target depends only on where its predictor sits in the window."""

    def rule(ids):
        b, t = ids.shape
        p0 = 1.0 / (torch.arange(t, dtype=torch.float64) + 2)
        rest = (1 - p0) / (vocab - 1)
        probs = torch.cat([p0[:, None], rest[:, None].expand(t, vocab - 1)], dim=1)
        return probs.log().float().expand(b, t, vocab)

    return ToyLM(vocab, rule)


class RecallToy(nn.Module):
    """A generator that answers the passkey prompt perfectly when the key line lies within its last `span`
    prompt tokens and answers 0 otherwise: an attention span of `span`, so its k_max is known. With
    `garble`, it answers the key's digits rotated by one place (found, but in the wrong order)."""

    def __init__(self, tokenizer, span: int, garble: bool = False):
        super().__init__()
        self.encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]
        self.pattern = self.encode("\nThe pass key is ")
        self.vocab = len(tokenizer)
        self.eos = tokenizer.eos_token_id
        self.span = span
        self.garble = garble
        self.dummy = nn.Parameter(torch.zeros(1))
        self.prompts: list[list[int]] = []
        self.generation_config = None  # set by ropescale's `generate` for each call

    def _answer(self, visible: list[int]) -> str:
        n = len(self.pattern)
        for i in range(len(visible) - n + 1):
            if visible[i : i + n] == self.pattern:
                digits = self.decode_digits(visible[i + n : i + n + 5])
                return digits[1:] + digits[:1] if self.garble else digits
        return "0"

    def decode_digits(self, ids: list[int]) -> str:
        digits = {self.encode(str(d))[0]: str(d) for d in range(10)}
        return "".join(digits.get(i, "?") for i in ids)

    def forward(self, input_ids, cache=None, use_cache=False, logits_to_keep=0, **_):
        if cache is None:  # prefill: remember the prompt
            cache = SimpleNamespace(prompt=input_ids[0].tolist(), new=[])
            self.prompts.append(cache.prompt)
        else:
            cache.new.append(int(input_ids[0, -1]))
        answer = self.encode(" " + self._answer(cache.prompt[-self.span :]) + ".")
        token = answer[len(cache.new)] if len(cache.new) < len(answer) else self.eos
        logits = torch.full((1, 1, self.vocab), -1e4)
        logits[0, 0, token] = 0.0
        return SimpleNamespace(logits=logits, cache=cache)

    def generate(self, input_ids, attention_mask=None):
        """What transformers' `generate` does with ropescale's greedy settings: argmax tokens until an EOS
        id of `generation_config` or max_new_tokens (the toy's forward stands in for a transformers model)."""
        cfg = self.generation_config
        stop = set(cfg.eos_token_id or [])
        ids = input_ids[0].tolist()
        out = self(input_ids=input_ids, use_cache=True)
        for _ in range(cfg.max_new_tokens):
            ids.append(int(out.logits[0, -1].argmax()))
            if ids[-1] in stop:
                break
            out = self(input_ids=torch.tensor([[ids[-1]]]), cache=out.cache, use_cache=True)
        return torch.tensor([ids])
