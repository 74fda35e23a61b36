"""Training-step benchmark: ropescale's step vs a plain transformers loop, measured in the same run.

    python bench/train_bench.py                 # tiny at 4x/8x its window + SmolLM2-135M at 2048/4096
    python bench/train_bench.py --quick         # tiny only
    python bench/train_bench.py --json out.json

ropescale's step: decoder layers checkpointed (recomputed in backward), the output layer and cross-entropy
in chunks with their gradients computed in the same pass (no full-vocabulary logits), AdamW step.
Plain loop: `model(input_ids, labels=labels).loss.backward()` with full logits and no checkpointing, then
the same AdamW step. Both in fp32 on CPU, SDPA attention, batch of one sequence, same weights and tokens.

Each (case, implementation) runs in a fresh process, so peak memory is that process's alone: we report
the process's peak resident memory (ru_maxrss, everything: weights, gradients, AdamW state, activations)
and the peak of the step above the memory held just before it (sampled every millisecond).
Tokens/s is sequence length / wall time of the measured step(s), after one warm-up step for the tiny
model (for SmolLM2, whose CPU step takes about a minute, the one measured step includes the first-call
overheads and the allocation of gradients and AdamW state, in both loops alike).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

CASES = {
    "tiny-4x": {"model": "tiny", "seq_len": 1024, "factor": 4},
    "tiny-8x": {"model": "tiny", "seq_len": 2048, "factor": 8},
    "smollm2-2048": {"model": "smollm2-135m", "seq_len": 2048, "factor": 1},
    "smollm2-4096": {"model": "smollm2-135m", "seq_len": 4096, "factor": 1},
}


class PeakRSS(threading.Thread):
    """Samples this process's resident memory every millisecond; `peak` is the largest seen (bytes)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.now()
        self.running = True

    def now(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def run(self):
        while self.running:
            self.peak = max(self.peak, self.now())
            time.sleep(0.001)


def _model(case: dict):
    import torch

    from ropescale.config import RopeScaling
    from ropescale.models import scale_model

    if case["model"] == "tiny":
        from ropescale.models.tiny import build_tiny, tiny_config

        lm = build_tiny(tiny_config(vocab_size=2048, window=256))
    else:
        from ropescale.models import load_model

        lm = load_model(case["model"], torch.float32)
    if case["factor"] > 1:
        scale_model(lm, RopeScaling("linear", float(case["factor"])))
    return lm.train()


def child(case: dict, impl: str, steps: int) -> dict:
    """One process, one implementation: warm-up step (tiny only), then `steps` measured steps."""
    import torch

    from ropescale.models import compat
    from ropescale.train.loss import CausalLMLoss

    torch.manual_seed(0)
    lm = _model(case)
    ids = torch.randint(0, lm.config.vocab_size, (1, case["seq_len"]))
    if impl == "ropescale":
        compat.set_activation_checkpointing(lm, True, case.get("every_n", 1))
        root = CausalLMLoss(lm)  # automatic chunk, as `ropescale train` uses

        def step():
            total, count = root(ids, ids)
            (total / count).backward()
    else:
        root = lm

        def step():
            lm(input_ids=ids, labels=ids).loss.backward()

    opt = torch.optim.AdamW(root.parameters(), lr=1e-5, betas=(0.9, 0.95))

    def full_step():
        step()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if case["model"] == "tiny":  # warm-up: AdamW state, gradients, first-call overheads (SmolLM2: a
        full_step()  # step takes a minute on CPU, so its one measured step includes them, in both loops)
    sampler = PeakRSS()
    base = sampler.now()
    sampler.start()
    t0 = time.perf_counter()
    for _ in range(steps):
        full_step()
    wall = time.perf_counter() - t0
    sampler.running = False
    sampler.join()
    return {
        "tokens_per_s": case["seq_len"] * steps / wall,
        "step_s": wall / steps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "step_peak_mb": (sampler.peak - base) / 2**20,
        "parameters": sum(p.numel() for p in lm.parameters()),
    }


def run_case(name: str, impl: str, steps: int, every_n: int) -> dict:
    case = {**CASES[name], "every_n": every_n}
    return run_child(__file__, {"case": case, "impl": impl, "steps": steps}, f"{name}/{impl}")


def run_child(script: str, job: dict, what: str) -> dict:
    """Run `script --child JOB` in a fresh process (its peak memory is its own) and return the JSON
    object it prints last."""
    cmd = [sys.executable, script, "--child", json.dumps(job)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict) -> str:
    head = (
        "| case | tokens | tok/s ours | tok/s plain | throughput ratio | peak RSS ours (MB) | plain (MB) "
        "| memory ratio | step peak ours (MB) | plain (MB) | step-peak ratio |"
    )
    lines = [head, "|" + "---|" * 11]
    for name, r in results.items():
        o, p = r["ropescale"], r["plain"]
        lines.append(
            f"| {name} | {CASES[name]['seq_len']} | {o['tokens_per_s']:.0f} | {p['tokens_per_s']:.0f} "
            f"| {o['tokens_per_s'] / p['tokens_per_s']:.2f} | {o['peak_rss_mb']:.0f} | {p['peak_rss_mb']:.0f} "
            f"| {p['peak_rss_mb'] / o['peak_rss_mb']:.2f}x lower | {o['step_peak_mb']:.0f} | {p['step_peak_mb']:.0f} "
            f"| {p['step_peak_mb'] / max(o['step_peak_mb'], 1):.2f}x lower |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="tiny model only")
    ap.add_argument("--cases", default=None, help=f"comma-separated subset of {', '.join(CASES)}")
    ap.add_argument("--steps", type=int, default=1, help="measured steps per case (after one warm-up)")
    ap.add_argument("--every-n", type=int, default=1, help="checkpoint every n-th decoder layer (ours)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(child(job["case"], job["impl"], job["steps"])))
        return
    names = args.cases.split(",") if args.cases else [n for n in CASES if not (args.quick and "smollm2" in n)]
    results = {}
    for name in names:
        results[name] = {
            impl: run_case(name, impl, args.steps, args.every_n) for impl in ("ropescale", "plain")
        }
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    print(table(results))
    at4096 = results.get("smollm2-4096")
    if at4096:
        o, p = at4096["ropescale"], at4096["plain"]
        mem, thr = p["peak_rss_mb"] / o["peak_rss_mb"], 1 - o["tokens_per_s"] / p["tokens_per_s"]
        ok = mem >= 2 and thr <= 0.35
        print(f"\ntarget at 4096 tokens (>= 2x lower peak memory, <= 35% lower throughput): "
              f"{mem:.2f}x lower, {100 * thr:.0f}% lower throughput -> {'met' if ok else 'NOT met'}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
