"""Benchmark: scored tokens/s of `eval ppl`'s scorer vs the naive reference loop, same run.

Same model, documents, window and stride for both. The naive loop is the common recipe: one window at a
time, full logits for every position, the model's own loss with unscored labels masked. `eval ppl` runs
the LM head only on scored positions and batches windows. Both must give the same numbers.

    .venv/bin/python bench/eval_ppl_bench.py      # SmolLM2-135M, 2 docs x 4096 tokens, window 2048, stride 256
    .venv/bin/python bench/eval_ppl_bench.py --model DIR --length 2048 --stride 256 --docs 4
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from ropescale.config import LoadOptions
from ropescale.eval.perplexity import document_nll, reference_nll, tokenize_documents
from ropescale.models.prepare import prepare_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data", default="shakespeare")
    p.add_argument("--length", type=int, default=2048)
    p.add_argument("--stride", type=int, default=256)
    p.add_argument("--docs", type=int, default=2)
    p.add_argument("--tokens", type=int, default=4096, help="documents cut to this many tokens")
    p.add_argument("--batch-tokens", type=int, default=16384)
    p.add_argument("--repeats", type=int, default=1, help="best of N timings per side, the sides interleaved")
    args = p.parse_args(argv)

    model, tokenizer, _ = prepare_model(args.model, LoadOptions(), None)
    docs = tokenize_documents(tokenizer, args.data, max_docs=args.docs, truncate_to=args.tokens)
    document_nll(docs[:1], args.length, args.stride, model, args.batch_tokens)  # warm-up (allocator, kernels)

    def ours():
        nll, count = document_nll(docs, args.length, args.stride, model, args.batch_tokens)
        return float(nll.sum()), int(count.sum())

    def naive():
        pairs = [reference_nll(model, d, args.length, args.stride) for d in docs]
        return sum(s for s, _ in pairs), sum(c for _, c in pairs)

    rows: dict[str, tuple[float, int, float]] = {}
    for _ in range(args.repeats):  # interleaved, so a change in machine load hits both sides alike
        for name, fn in (("naive loop", naive), ("eval ppl", ours)):
            start = time.perf_counter()
            total, count = fn()
            seconds = time.perf_counter() - start
            rows[name] = (total, count, min(seconds, rows.get(name, (0, 0, math.inf))[2]))

    print(
        f"model {args.model}, {len(docs)} docs x {args.tokens} tokens, window {args.length}, stride {args.stride}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'':12s} {'scored':>8s} {'seconds':>9s} {'tok/s':>9s} {'ppl':>12s}")
    for name, (total, count, sec) in rows.items():
        print(f"{name:12s} {count:8d} {sec:9.2f} {count / sec:9.1f} {math.exp(total / count):12.6f}")
    (t_ref, c_ref, s_ref), (t_ours, c_ours, s_ours) = rows["naive loop"], rows["eval ppl"]
    rel = abs(t_ours - t_ref) / abs(t_ref)
    print(f"speed-up {s_ref / s_ours:.2f}x (target >= 1.5x); total NLL relative difference {rel:.2e}")
    return 0 if c_ref == c_ours and rel < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
