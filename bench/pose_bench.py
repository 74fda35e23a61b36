"""Short-sequence extension benchmark: a PoSE step at Lc vs a contiguous step at the full window, same run.

    python bench/pose_bench.py            # tiny (PoSE 256 covering 2048 vs 2048) + SmolLM2-135M (2048 vs 8192)
    python bench/pose_bench.py --quick    # tiny only
    python bench/pose_bench.py --json out.json

Both sides are ropescale's training step (decoder layers checkpointed, chunked output layer + loss, AdamW)
on one sequence, fp32 on CPU, in a fresh process each (so peak memory is that step's alone). The PoSE side
trains on Lc tokens whose position ids span the target window (two chunks, skips drawn as in training);
the contiguous side trains on the full window. The ratios say what PoSE saves per step: the contiguous side
sees target/Lc times the tokens, so tokens/s and memory per step are both reported. Timings: tiny after one
warm-up step; SmolLM2 one step each (a minute on CPU), first-call overheads included on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_bench import PeakRSS, _model, run_child  # the same model builder, memory sampler, driver

CASES = {
    "tiny": {"model": "tiny", "window": 256, "factor": 8, "pose_len": 256},
    "smollm2-135m": {
        "model": "smollm2-135m",
        "window": 8192,
        "factor": 2,
        "pose_len": 2048,
        "contig_len": 8192,
    },
}


def child(case: dict, mode: str) -> dict:
    import torch

    from ropescale.data.positions import Positions
    from ropescale.models import compat
    from ropescale.train.loss import CausalLMLoss

    torch.manual_seed(0)
    lm = _model({"model": case["model"], "factor": case["factor"]})
    target = case["window"] * case["factor"] if case["model"] == "tiny" else 2 * case["window"]
    if mode == "pose":
        n = case["pose_len"]
        pos = torch.from_numpy(Positions("pose", 2, target).draw(n, 0, 0))[None]
    else:
        n = case.get("contig_len", target)
        pos = None
    ids = torch.randint(0, lm.config.vocab_size, (1, n))
    compat.set_activation_checkpointing(lm, True)
    root = CausalLMLoss(lm)
    opt = torch.optim.AdamW(root.parameters(), lr=1e-5, betas=(0.9, 0.95))

    def step():
        total, count = root(ids, ids, pos)
        (total / count).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if case["model"] == "tiny":
        step()
    sampler = PeakRSS()
    base = sampler.now()
    sampler.start()
    t0 = time.perf_counter()
    step()
    wall = time.perf_counter() - t0
    sampler.running = False
    sampler.join()
    return {
        "tokens": n,
        "max_position_id": int(pos.max()) if pos is not None else n - 1,
        "tokens_per_s": n / wall,
        "step_s": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "step_peak_mb": (sampler.peak - base) / 2**20,
    }


def run(name: str, mode: str) -> dict:
    return run_child(__file__, {"case": CASES[name], "mode": mode}, f"{name}/{mode}")


def table(results: dict) -> str:
    lines = [
        "| model | PoSE tokens (ids up to) | contiguous tokens | step s PoSE / contiguous | tok/s PoSE / contiguous "
        "| peak RSS MB PoSE / contiguous | step peak MB PoSE / contiguous | step time ratio | step-peak ratio |",
        "|" + "---|" * 9,
    ]
    for name, r in results.items():
        p, c = r["pose"], r["contiguous"]
        lines.append(
            f"| {name} | {p['tokens']} ({p['max_position_id']}) | {c['tokens']} | {p['step_s']:.2f} / {c['step_s']:.2f} "
            f"| {p['tokens_per_s']:.0f} / {c['tokens_per_s']:.0f} | {p['peak_rss_mb']:.0f} / {c['peak_rss_mb']:.0f} "
            f"| {p['step_peak_mb']:.0f} / {c['step_peak_mb']:.0f} | {c['step_s'] / p['step_s']:.2f}x faster "
            f"| {c['step_peak_mb'] / max(p['step_peak_mb'], 1):.2f}x lower |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="tiny model only")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(child(job["case"], job["mode"])))
        return
    results = {}
    for name in [n for n in CASES if not (args.quick and n != "tiny")]:
        results[name] = {mode: run(name, mode) for mode in ("pose", "contiguous")}
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
