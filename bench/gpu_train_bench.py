"""GPU training benchmark (prepared; run it where a GPU is available):

    python bench/gpu_train_bench.py                  # SmolLM2-135M, PI to 16384 and 32768 tokens, bf16
    python bench/gpu_train_bench.py --lengths 16384 --steps 5 --peak-tflops 989

Each length: SmolLM2-135M (trained window 8192) with PI factor length/8192, ropescale's training step
(fp32 master weights, bf16 autocast, SDPA attention, decoder layers checkpointed, chunked output layer +
cross-entropy), AdamW; one warm-up step, then `--steps` measured steps of one sequence each.
Reports tokens/s, peak GPU memory (torch.cuda.max_memory_allocated) and model FLOPs utilisation:
MFU = (6 N + 12 n_layers d_model T) tokens/s / peak FLOP/s, the usual estimate (PaLM appendix B) with N the
parameter count (embedding included once, tied) and T the sequence length; recomputation is not counted.
"""

from __future__ import annotations

import argparse
import json
import time


def measure(length: int, steps: int, peak_tflops: float) -> dict:
    import torch

    from ropescale.config import RopeScaling
    from ropescale.models import compat, load_model, scale_model
    from ropescale.train.loss import CausalLMLoss

    torch.manual_seed(0)
    lm = load_model("smollm2-135m", torch.float32, device="cuda")
    scale_model(lm, RopeScaling("linear", length / 8192, original_max_position_embeddings=8192))
    lm.train()
    compat.set_activation_checkpointing(lm, True)
    root = CausalLMLoss(lm)
    opt = torch.optim.AdamW(root.parameters(), lr=2e-5, betas=(0.9, 0.95), weight_decay=0.0)
    ids = torch.randint(0, lm.config.vocab_size, (1, length), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            total, count = root(ids, ids)
        (total / count).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / steps
    n = sum(p.numel() for p in lm.parameters())
    c = lm.config
    flops_per_token = 6 * n + 12 * c.num_hidden_layers * c.hidden_size * length
    tok_s = length / wall
    return {
        "length": length,
        "factor": length / 8192,
        "step_s": wall,
        "tokens_per_s": tok_s,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2**30,
        "mfu": flops_per_token * tok_s / (peak_tflops * 1e12),
        "gpu": torch.cuda.get_device_name(0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="16384,32768")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200 SXM: 989)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    rows = [measure(int(n), args.steps, args.peak_tflops) for n in args.lengths.split(",")]
    print("| tokens | PI factor | step (s) | tokens/s | peak GPU memory (GiB) | MFU |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['length']} | {r['factor']:g} | {r['step_s']:.2f} | {r['tokens_per_s']:.0f} "
            f"| {r['peak_gpu_memory_gb']:.1f} | {100 * r['mfu']:.1f}% |"
        )
    print(f"on {rows[0]['gpu']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
