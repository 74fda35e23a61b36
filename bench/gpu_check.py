"""The prepared GPU check (issue 21): one process, a few minutes on one GPU, every result in one JSON file.

    PYTHONPATH=src python bench/gpu_check.py --out runs/gpu_check.json          # on a GPU machine
    PYTHONPATH=src python bench/gpu_check.py --device cpu --small --out X.json  # the dry run (a test)

Checks, in order (each one's result is written to --out as soon as it is done; once --budget seconds have
passed the remaining ones are recorded as skipped):
  versions          torch / CUDA / cuDNN / transformers / Python, the GPU's name, memory and capability
  sdpa_flash        SDPA's flash kernel alone (sdpa_kernel(FLASH_ATTENTION)) accepts SmolLM2's attention at
                    4096 tokens under bf16 autocast: the bare call, and through the model (contiguous and
                    PoSE-like position ids), forward and backward
  chunked_loss      ropescale's chunked loss vs a plain full-logits loss, value and gradients: float32
                    tight, bf16 autocast loose
  train_gpu_vs_cpu  a short `ropescale train` of the shipped tiny model: float32 on the GPU vs the same on
                    the CPU (per-step losses), and bf16 autocast on the GPU vs float32
  resume            on the GPU: 8 steps straight vs 4 steps then --resume to 8, with --deterministic
                    (bit-identical losses and weights) and without (the difference, reported)
  fsdp2_world1      `ropescale train` under a torchrun environment of one process (NCCL, FSDP2-sharded
                    parameters): save, resume, load the final checkpoint; losses vs the unsharded run
  eval_gpu_vs_cpu   `eval ppl` and `eval passkey` of the tiny model on the GPU vs the CPU (float32)
  smollm2_pi_step   SmolLM2-135M-shaped (bench/smollm2_135m_config.json, random weights) PI training step
                    at 16384 and 32768 tokens: tokens/s, peak memory, MFU against the H200's 989 TFLOP/s
                    dense bf16 and against a measured bf16 matmul rate

A check's status is ok, fail (a comparison outside its stated tolerance), error (an exception; its
message is kept) or skipped. Exit status 0 when nothing failed or errored, else 1. --device cpu runs
every check that can run without CUDA (comparing the CPU with itself, so only the code paths are proved).
MFU = (6 N + 12 n_layers d_model T) tokens/s / peak, the usual estimate (PaLM appendix B; N counts the
tied embedding once; the recomputed forward of activation checkpointing is not counted).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the resume check's --deterministic runs need cuBLAS's deterministic workspace, which is read when CUDA
# first creates a cuBLAS handle: set for the whole process, before anything touches the GPU
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
SRC = Path(__file__).resolve().parents[1] / "src"
if SRC.is_dir() and str(SRC) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(SRC))

import torch  # noqa: E402

from ropescale import outputs  # noqa: E402

CONFIG = Path(__file__).with_name("smollm2_135m_config.json")
PEAK_TFLOPS = 989.0  # H100/H200 SXM dense bf16
# tolerances: float32 GPU vs CPU, and bf16 (autocast) vs float32
FP32_REL, BF16_REL = 1e-4, 5e-2


@dataclass
class Ctx:
    device: str
    small: bool
    work: Path
    out: Path
    budget: float
    start: float = field(default_factory=time.perf_counter)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def write(self, done: bool = False) -> None:
        outputs.write_json(self.out, {"device": self.device, "small": self.small, "budget_s": self.budget,
                                 "elapsed_s": round(self.elapsed(), 1), "done": done, "checks": self.results})  # fmt: skip


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---- versions -------------------------------------------------------------------------------------------


def check_versions(ctx: Ctx) -> dict[str, Any]:
    import transformers

    r: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "environment": outputs.environment(ctx.device),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
    if ctx.cuda:
        p = torch.cuda.get_device_properties(0)
        r.update(gpu=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                 gpus_visible=torch.cuda.device_count(),
                 sdp_enabled={"flash": torch.backends.cuda.flash_sdp_enabled(),
                              "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                              "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
                              "math": torch.backends.cuda.math_sdp_enabled()})  # fmt: skip
    return r


# ---- SDPA flash eligibility -----------------------------------------------------------------------------


def _smollm2(ctx: Ctx, layers: int | None = None, window: int | None = None) -> Any:
    """SmolLM2-135M's architecture with random weights (float32 master weights)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    data = json.loads(CONFIG.read_text())
    if layers is not None:
        data["num_hidden_layers"] = layers
    if ctx.small:
        data.update(vocab_size=4096)
    if window is not None:
        data["max_position_embeddings"] = window
    config = LlamaConfig(**data)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(ctx.device):
        return LlamaForCausalLM(config).float()


def _try(fn) -> dict[str, Any]:
    try:
        fn()
        _sync()
        return {"eligible": True}
    except RuntimeError as err:
        return {"eligible": False, "error": str(err).splitlines()[0][:300]}


def check_sdpa_flash(ctx: Ctx) -> dict[str, Any]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    t = 256 if ctx.small else 4096
    backend = SDPBackend.FLASH_ATTENTION if ctx.cuda else SDPBackend.MATH  # the dry run: the path only
    dev, dtype = ctx.device, torch.bfloat16
    q = torch.randn(1, 9, t, 64, device=dev, dtype=dtype, requires_grad=True)
    kv = torch.randn(1, 3, t, 64, device=dev, dtype=dtype).repeat_interleave(3, dim=1)

    def bare():
        with sdpa_kernel([backend]):
            torch.nn.functional.scaled_dot_product_attention(q, kv, kv, is_causal=True).sum().backward()

    lm = _smollm2(ctx, layers=1, window=2 * t)
    lm.train()
    ids = torch.randint(0, lm.config.vocab_size, (1, t), device=dev)
    skip = torch.arange(t, device=dev) + (torch.arange(t, device=dev) >= t // 2) * (t // 2)  # one PoSE skip

    def through_model(position_ids):
        def run():
            with sdpa_kernel([backend]), torch.autocast(torch.device(dev).type, dtype=dtype):
                out = lm.model(input_ids=ids, position_ids=position_ids, use_cache=False).last_hidden_state
            out.float().pow(2).mean().backward()

        return run

    r = {
        "backend": backend.name,
        "tokens": t,
        "shape": "q (1, 9, T, 64), k/v 3 heads repeated to 9, bf16, causal",
        "bare_call": _try(bare),
        "model_contiguous_positions": _try(through_model(None)),
        "model_pose_positions": _try(through_model(skip[None])),
    }
    if not ctx.cuda:
        r["note"] = "dry run: the MATH backend (no flash kernel on the CPU); only the code path is checked"
    eligible = all(
        r[k]["eligible"] for k in ("bare_call", "model_contiguous_positions", "model_pose_positions")
    )
    r["status"] = "ok" if eligible else "fail"
    return r


# ---- chunked loss ---------------------------------------------------------------------------------------


def check_chunked_loss(ctx: Ctx) -> dict[str, Any]:
    from ropescale.train.loss import chunked_lm_loss

    g = torch.Generator().manual_seed(0)
    n, d, d_model, v = (2, 128, 64, 512) if ctx.small else (2, 2048, 576, 49152)
    h0 = torch.randn(n, d, d_model, generator=g)
    w0 = 0.05 * torch.randn(v, d_model, generator=g)
    y = torch.randint(0, v, (n, d), generator=g)
    y[0, :7] = -100

    def grads(chunked: bool, autocast: bool):
        h = h0.clone().to(ctx.device).requires_grad_()
        w = w0.clone().to(ctx.device).requires_grad_()
        yy = y.to(ctx.device)
        kind = torch.device(ctx.device).type
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=autocast):
            if chunked:
                total, _ = chunked_lm_loss(h, w, yy, chunk=100)
            else:
                logits = (h[:, :-1].reshape(-1, d_model) @ w.T).float()
                total = torch.nn.functional.cross_entropy(logits, yy[:, 1:].reshape(-1), reduction="sum")
        total.backward()
        return float(total.detach()), h.grad.detach().float().cpu(), w.grad.detach().float().cpu()

    ref = grads(False, False)  # float32 full logits

    def compare(got, rel):
        e_loss = _rel(got[0], ref[0])
        e_h = float((got[1] - ref[1]).abs().max() / ref[1].abs().max())
        e_w = float((got[2] - ref[2]).abs().max() / ref[2].abs().max())
        return {"loss_rel": e_loss, "grad_h_rel_to_max": e_h, "grad_w_rel_to_max": e_w,
                "ok": max(e_loss, e_h, e_w) <= rel, "tolerance": rel}  # fmt: skip

    fp32 = compare(grads(True, False), 1e-5)
    bf16 = compare(grads(True, True), BF16_REL)
    return {"shape": [n, d, d_model, v], "float32": fp32, "bf16_autocast": bf16,
            "status": "ok" if fp32["ok"] and bf16["ok"] else "fail"}  # fmt: skip


# ---- training runs of the shipped tiny model --------------------------------------------------------------


def _base() -> Path:
    import ropescale

    return Path(ropescale.__file__).parent / "demo" / "base"


def _train(ctx: Ctx, name: str, device: str, dtype: str, steps: int, **kw: Any) -> dict[str, Any]:
    from ropescale.commands.train import run_train
    from ropescale.config import LoadOptions, RopeScaling, TrainConfig, build

    out = ctx.work / name
    base = dict(
        model=str(_base()), out=out, data="pystdlib", rope=RopeScaling("linear", 2.0),
        seq_len=128 if ctx.small else 512, max_tokens=40_000 if ctx.small else 400_000, steps=steps,
        batch_size=4 if ctx.small else 8, micro_batch_size=2 if ctx.small else 4, lr=1e-3, warmup_steps=1,
        schedule="constant", save_every=2, eval_sequences=2, cache_dir=ctx.work / "cache",
        load=LoadOptions(device=device, dtype=dtype),
    )  # fmt: skip
    base.update(kw)
    summary = run_train(build(TrainConfig, base))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"summary": summary, "losses": [r["loss"] for r in rows], "out": out}


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


def _max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = _weights(a), _weights(b)
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def check_train_gpu_vs_cpu(ctx: Ctx) -> dict[str, Any]:
    steps = 4 if ctx.small else 6
    gpu = _train(ctx, "train-gpu-fp32", ctx.device, "float32", steps)
    cpu = _train(ctx, "train-cpu-fp32", "cpu", "float32", steps)
    r: dict[str, Any] = {"steps": steps, "gpu_fp32": gpu["losses"], "cpu_fp32": cpu["losses"]}
    r["fp32_max_rel"] = max(_rel(a, b) for a, b in zip(gpu["losses"], cpu["losses"], strict=True))
    r["fp32_max_weight_diff"] = _max_weight_diff(gpu["out"], cpu["out"])
    ok = r["fp32_max_rel"] <= FP32_REL
    if ctx.cuda:
        bf16 = _train(ctx, "train-gpu-bf16", ctx.device, "auto", steps)  # fp32 weights + bf16 autocast
        r["gpu_bf16_autocast"] = bf16["losses"]
        r["bf16_max_rel_vs_fp32"] = max(
            _rel(a, b) for a, b in zip(bf16["losses"], cpu["losses"], strict=True)
        )
        r["bf16_tokens_per_s"] = bf16["summary"]["tokens_per_s"]
        ok = ok and r["bf16_max_rel_vs_fp32"] <= BF16_REL
    r["tolerance"] = {"fp32": FP32_REL, "bf16": BF16_REL}
    r["status"] = "ok" if ok else "fail"
    return r


def check_resume(ctx: Ctx) -> dict[str, Any]:
    dtype = "auto"  # the GPU's training precision (on the CPU: float32)
    r: dict[str, Any] = {}
    ok = True
    for det in (True, False):
        tag = "deterministic" if det else "default"
        whole = _train(ctx, f"resume-{tag}-whole", ctx.device, dtype, 8, deterministic=det)
        half = _train(ctx, f"resume-{tag}-cut", ctx.device, dtype, 4, deterministic=det)
        resumed = _train(ctx, f"resume-{tag}-cut", ctx.device, dtype, 8, deterministic=det, resume=True)
        same_losses = resumed["losses"] == whole["losses"]
        diff = _max_weight_diff(whole["out"], resumed["out"])
        r[tag] = {
            "resumed_from": resumed["summary"]["resumed_from"],
            "losses_whole": whole["losses"],
            "losses_resumed": resumed["losses"],
            "first_half_equal": half["losses"] == whole["losses"][:4],
            "bit_identical_losses": same_losses,
            "max_weight_diff": diff,
            "max_loss_rel": max(_rel(a, b) for a, b in zip(resumed["losses"], whole["losses"], strict=True)),
        }
        if det or not ctx.cuda:  # the CPU is always exact; the GPU with --deterministic
            ok = ok and same_losses and diff == 0.0
        else:
            ok = ok and r[tag]["max_loss_rel"] <= BF16_REL
    r["status"] = "ok" if ok else "fail"
    return r


@contextlib.contextmanager
def _torchrun_env():
    """The environment torchrun gives one process (world size 1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_fsdp2_world1(ctx: Ctx) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    from ropescale.train import dist

    seen: list[dict[str, str]] = []
    real_shard = dist.shard

    def recording_shard(root, lm, d):
        real_shard(root, lm, d)
        p = next(root.parameters())
        local = p.to_local() if hasattr(p, "to_local") else p
        seen.append({"type": type(p).__name__, "dtype": str(p.dtype), "device": str(local.device)})

    dist.shard = recording_shard
    try:
        with _torchrun_env():
            _train(ctx, "fsdp-cut", ctx.device, "float32", 4)
            sharded = _train(ctx, "fsdp-cut", ctx.device, "float32", 6, resume=True)
    finally:
        dist.shard = real_shard
    plain = _train(ctx, "fsdp-plain", ctx.device, "float32", 6)
    final = AutoModelForCausalLM.from_pretrained(sharded["out"])  # a normal transformers checkpoint
    r = {
        "backend": "nccl" if ctx.cuda else "gloo",
        "parameters_after_shard": seen,
        "resumed_from": sharded["summary"]["resumed_from"],
        "processes": sharded["summary"]["processes"],
        "losses_fsdp2": sharded["losses"],
        "losses_plain": plain["losses"],
        "max_loss_rel": max(_rel(a, b) for a, b in zip(sharded["losses"], plain["losses"], strict=True)),
        "max_weight_diff_vs_plain": _max_weight_diff(sharded["out"], plain["out"]),
        "final_loads": sum(p.numel() for p in final.parameters()),
    }
    ok = bool(seen) and all(s["type"] == "DTensor" for s in seen) and r["max_loss_rel"] <= FP32_REL
    r["status"] = "ok" if ok else "fail"
    return r


# ---- evaluations ----------------------------------------------------------------------------------------


def check_eval_gpu_vs_cpu(ctx: Ctx) -> dict[str, Any]:
    from ropescale.commands.passkey import run_passkey
    from ropescale.commands.ppl import run_ppl
    from ropescale.config import LoadOptions
    from ropescale.config.eval import PasskeyConfig, PplConfig

    def ppl(device):
        cfg = PplConfig(model=str(_base()), data="pystdlib", lengths=[128, 256], stride=64, max_docs=4,
                        truncate_to=1024, bootstrap=10, load=LoadOptions(device=device, dtype="float32"))  # fmt: skip
        return [x["ppl"] for x in run_ppl(cfg)["lengths"]]

    def passkey(device):
        cfg = PasskeyConfig(model=str(_base()), lengths=[256], num_k=3, trials=2,
                            load=LoadOptions(device=device, dtype="float32"))  # fmt: skip
        return [t["answer"] for row in run_passkey(cfg)["lengths"] for c in row["ks"] for t in c["trials"]]

    gpu_ppl, cpu_ppl = ppl(ctx.device), ppl("cpu")
    gpu_keys, cpu_keys = passkey(ctx.device), passkey("cpu")
    r = {
        "ppl_gpu": gpu_ppl,
        "ppl_cpu": cpu_ppl,
        "ppl_max_rel": max(_rel(a, b) for a, b in zip(gpu_ppl, cpu_ppl, strict=True)),
        "passkey_answers_equal": sum(a == b for a, b in zip(gpu_keys, cpu_keys, strict=True)),
        "passkey_answers": len(cpu_keys),
        "tolerance": FP32_REL,
    }
    ok = r["ppl_max_rel"] <= FP32_REL and r["passkey_answers_equal"] == r["passkey_answers"]
    r["status"] = "ok" if ok else "fail"
    return r


# ---- SmolLM2-shaped PI training step --------------------------------------------------------------------


def matmul_tflops(ctx: Ctx) -> float:
    """Measured dense matmul rate (bf16 on the GPU, float32 on the CPU) in TFLOP/s."""
    n = 256 if ctx.small else 8192
    dtype = torch.bfloat16 if ctx.cuda else torch.float32
    a = torch.randn(n, n, device=ctx.device, dtype=dtype)
    b = torch.randn(n, n, device=ctx.device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync()
    reps = 3 if ctx.small else 20
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def pi_step(ctx: Ctx, length: int, steps: int, measured: float) -> dict[str, Any]:
    from ropescale.config import RopeScaling
    from ropescale.models import compat, scale_model
    from ropescale.train.loss import CausalLMLoss

    lm = _smollm2(ctx, layers=2, window=length // 2) if ctx.small else _smollm2(ctx)  # small: PI x2
    window = int(lm.config.max_position_embeddings)
    scale_model(lm, RopeScaling("linear", length / window, original_max_position_embeddings=window))
    lm.train()
    compat.set_activation_checkpointing(lm, True)
    root = CausalLMLoss(lm)
    opt = torch.optim.AdamW(root.parameters(), lr=2e-5, betas=(0.9, 0.95), weight_decay=0.0)
    ids = torch.randint(0, lm.config.vocab_size, (1, length), device=ctx.device)
    kind = torch.device(ctx.device).type

    def step():
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=ctx.cuda):
            total, count = root(ids, ids)
        (total / count).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float((total / count).detach())

    first = step()  # warm-up (allocations, kernel choice)
    _sync()
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        last = step()
    _sync()
    wall = (time.perf_counter() - t0) / steps
    c = lm.config
    n = sum(p.numel() for p in lm.parameters())
    flops = (6 * n + 12 * c.num_hidden_layers * c.hidden_size * length) * length
    r = {
        "length": length,
        "pi_factor": length / window,
        "layers": c.num_hidden_layers,
        "parameters": n,
        "step_s": wall,
        "tokens_per_s": length / wall,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if ctx.cuda else None,
        "model_tflops_per_step": flops / 1e12,
        "mfu_vs_989": flops / wall / (PEAK_TFLOPS * 1e12),
        "mfu_vs_measured_matmul": flops / wall / (measured * 1e12),
        "loss_first_last": [first, last],
        "finite": math.isfinite(first) and math.isfinite(last),
    }
    return r


def check_smollm2_pi_step(ctx: Ctx, lengths: list[int]) -> dict[str, Any]:
    measured = matmul_tflops(ctx)
    rows, skipped = [], []
    for length in lengths:
        if ctx.elapsed() > ctx.budget:
            skipped.append(length)
            continue
        rows.append(pi_step(ctx, length, 1 if ctx.small else 3, measured))
        if ctx.cuda:  # the step's model and optimizer are gone with its frame
            torch.cuda.empty_cache()
    return {
        "matmul_tflops_measured": measured,
        "peak_tflops": PEAK_TFLOPS,
        "lengths": rows,
        "skipped_over_budget": skipped,
        "status": "ok" if all(r["finite"] for r in rows) else "fail",
    }


# ---- driver ---------------------------------------------------------------------------------------------


def run(ctx: Ctx, lengths: list[int], only: set[str] | None = None) -> int:
    checks = [
        ("versions", check_versions),
        ("sdpa_flash", check_sdpa_flash),
        ("chunked_loss", check_chunked_loss),
        ("train_gpu_vs_cpu", check_train_gpu_vs_cpu),
        ("resume", check_resume),
        ("fsdp2_world1", check_fsdp2_world1),
        ("eval_gpu_vs_cpu", check_eval_gpu_vs_cpu),
        ("smollm2_pi_step", lambda c: check_smollm2_pi_step(c, lengths)),
    ]
    bad = 0
    for name, fn in checks:
        if only is not None and name not in only:
            continue
        if ctx.elapsed() > ctx.budget:
            ctx.results[name] = {"status": "skipped", "why": f"past the {ctx.budget:.0f} s budget"}
        else:
            t0 = time.perf_counter()
            try:
                result = fn(ctx)
                result.setdefault("status", "ok")
            except Exception as err:
                result = {"status": "error", "error": f"{type(err).__name__}: {err}"[:2000],
                          "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
            result["seconds"] = round(time.perf_counter() - t0, 2)
            ctx.results[name] = result
        status = ctx.results[name]["status"]
        bad += status in ("fail", "error")
        print(f"{name}: {status} ({ctx.results[name].get('seconds', 0)} s)", flush=True)
        ctx.write()
    ctx.write(done=True)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (the dry run)")
    ap.add_argument("--out", type=Path, default=Path("runs/gpu_check.json"), help="results JSON")
    ap.add_argument("--budget", type=float, default=380.0, help="seconds; later checks are skipped past it")
    ap.add_argument("--small", action="store_true", help="small sizes (the CPU dry run)")
    ap.add_argument("--lengths", default="16384,32768", help="SmolLM2-shaped step lengths")
    ap.add_argument("--only", help="comma-separated check names")
    ap.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: this torch ({torch.__version__}) sees no GPU; use --device cpu for the dry run",
              file=sys.stderr)  # fmt: skip
        return 2
    lengths = [int(n) for n in args.lengths.split(",")]
    if args.small and args.lengths == "16384,32768":
        lengths = [128, 256]
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Ctx(args.device, args.small, args.work or Path(tmp), args.out, args.budget)
        return run(ctx, lengths, set(args.only.split(",")) if args.only else None)


if __name__ == "__main__":
    sys.exit(main())
