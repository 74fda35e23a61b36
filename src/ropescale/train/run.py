"""A training run as an object: `TrainRun.prepare` (every check before anything is loaded or written) ->
`open` (the run directory) -> `fit_and_save` (build the job, fit, save the final model, make it --out).

model --scale_model--> CausalLMLoss (chunked CE) --fully_shard (torchrun)--> fit --> transformers dir

The run trains in `.OUT.partial` next to --out and becomes --out with one rename once the final model is
saved, so --out (a previous run under --overwrite included) is only ever replaced by a complete, finished
run. The commands (commands/train.py) load or build the model and hand it to the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch

from .. import outputs
from ..config import LoraOptions, Objective, TrainConfig, TrainOptions
from ..data import BatchSampler, DataRequest, Packed, PasskeyMaker, pack, validation_batches
from ..data.corpora import load_records
from ..data.positions import Positions
from ..models import compat
from ..rope.spec import RopeScaling
from . import checkpoint, dist, loop
from .lora import merged
from .loss import CausalLMLoss
from .optim import make_optimizer, make_scheduler


def _recipe(cfg: TrainOptions) -> dict[str, Any]:
    """What a resumed run must share with its checkpoint besides the fingerprint's: the optimizer and
    schedule, and the dtype (--steps may be raised to train on: the schedule then runs to the new total)."""
    return {**dataclasses.asdict(cfg.optim), "dtype": cfg.load.dtype}


@dataclass(frozen=True)
class Trainee:
    """What the command trains, beside the shared knobs: the model's name in the records, the objective
    and LoRA (`pretrain`: the tiny model, language modelling, all weights)."""

    model: str
    objective: Objective = field(default_factory=Objective)
    lora: LoraOptions = field(default_factory=LoraOptions)


@dataclass
class Start:
    """Where a run writes, what it resumes from, and what it found on the way (reported in the summary)."""

    out: Path
    work: Path  # the run directory until it has finished (checkpoint.partial_dir)
    resume_from: Path | None = None
    seed_from: Path | None = None  # --resume of a finished run: its checkpoints are linked into `work`
    skipped: list[str] = field(default_factory=list)  # damaged checkpoints passed over
    base_step: int = 0  # the step resumed from
    cleaned: list[str] = field(default_factory=list)  # debris of interrupted runs, removed
    created: bool = False  # this run made `work` (so a failure before its first checkpoint removes it)
    restart: bool = False  # --resume of a run killed before its first checkpoint: start it over in `work`
    made: list[Path] = field(default_factory=list)  # parents of --out this run created (removed on failure)


def _start_out(cfg: TrainOptions, who: Trainee) -> Start:
    """Check --out, --resume's checkpoint and recipe, and the data, before slow work; writes nothing."""
    out = Path(cfg.out)
    work = checkpoint.partial_dir(out)
    if not cfg.resume:
        outputs.check_out_dir(out, cfg.overwrite)
        if work.exists() and not cfg.overwrite:
            raise ValueError(
                f"--out {out}: an unfinished run is in {work}; pass --resume to continue it or --overwrite "
                "to start over"
            )
        _check_data(cfg, who.objective)
        return Start(out, work)
    outputs.check_writable(out)
    source = work if work.is_dir() else out  # an interrupted run, else a finished one to train on
    found, skipped = checkpoint.newest_intact(source)
    if found is None and source == work and work.is_dir():
        # killed before its first checkpoint (start-up, data caching, the first steps): nothing to continue
        # from, so the run starts over, which gives the weights an uninterrupted run gives
        _check_data(cfg, who.objective)
        return Start(out, work, skipped=skipped, restart=True)
    if found is None:
        note = f" (damaged, skipped: {'; '.join(skipped)})" if skipped else ""
        raise ValueError(f"--resume: no checkpoint in {source}/checkpoints to continue from{note}")
    saved = checkpoint.trainer_state(found)
    recipe = saved.get("fingerprint", {}).get("recipe")
    checkpoint.check_fingerprint({"recipe": recipe}, {"recipe": _recipe(cfg)}, found)
    step = int(saved["step"])
    if step > cfg.steps or (source == out and step == cfg.steps):
        raise ValueError(
            f"--resume: {found} is at step {step} and --steps is {cfg.steps}: nothing to train; raise --steps "
            "to train on"
        )
    _check_data(cfg, who.objective)
    return Start(out, work, found, out if source == out else None, skipped, step)


def _check_data(cfg: TrainOptions, objective: Objective) -> None:
    """--data names readable documents: the first one is read (the rest when the data is packed)."""
    data = cfg.data
    lm = objective.task == "lm"
    fields = (data.text_field,) if lm else (objective.report_field, objective.summary_field)
    records = load_records(data.source, fields, data.split)
    try:
        next(records)
    except StopIteration:  # load_records raises for no documents; an empty generator cannot reach here
        raise ValueError(f"--data {data.source}: no documents found") from None
    finally:
        records.close()


def _open_work(start: Start, cfg: TrainOptions, d: dist.Dist) -> None:
    """Rank 0 removes debris of interrupted runs, empties the run directory for --overwrite, and links a
    finished run's checkpoints into it to train on; every rank then waits for it."""
    if d.main:
        start.cleaned = [str(p) for p in checkpoint.clean_debris(start.out)]
        if (cfg.overwrite or start.restart) and start.work.exists():
            shutil.rmtree(start.work)
            why = (
                "started over by --resume: it had no checkpoint"
                if start.restart
                else "replaced by --overwrite"
            )
            start.cleaned.append(f"{start.work} (the unfinished run {why})")
        start.created = not start.work.exists()
        start.made = outputs.missing_parents(start.work)
        if start.seed_from is not None:
            _link_run(start.seed_from, start.work)
        start.work.mkdir(parents=True, exist_ok=True)
        dist.test_kill_point("start-up", 0)  # tests: a kill before anything is cached or trained
    dist.wait_for_main(d)
    if not start.work.is_dir():  # another node: rank 0 made it on a filesystem this one does not see
        raise ValueError(
            f"--out {start.out}: rank {d.rank} does not see {start.work}, which rank 0 made; a multi-node "
            "run needs --out (and --cache-dir) on a filesystem that every node shares"
        )


def _link_run(done: Path, work: Path) -> None:
    """A finished run's checkpoints and token cache hard-linked (never rewritten in place), its metrics
    copied, into `work`; the finished run stays untouched until the new one replaces it."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{work.name}.tmp-", dir=work.parent))  # .OUT.partial.tmp-*
    for name in ("checkpoints", ".cache"):
        if (done / name).is_dir():
            shutil.copytree(done / name, tmp / name, copy_function=os.link)
    for name in ("metrics.jsonl", "train_config.json"):
        if (done / name).is_file():
            shutil.copy2(done / name, tmp / name)
    os.replace(tmp, work)


@contextlib.contextmanager
def _cleanup_on_failure(start: Start, d: dist.Dist):
    """A run that fails before writing a checkpoint of its own leaves nothing behind."""
    try:
        yield
    except BaseException:
        last = checkpoint.latest(start.work)
        if (
            d.main
            and start.created
            and (last is None or int(last.name[len(checkpoint.PREFIX) :]) <= start.base_step)
        ):
            shutil.rmtree(start.work, ignore_errors=True)
            for p in reversed(start.made):  # and the parents of --out it created
                with contextlib.suppress(OSError):
                    p.rmdir()
        raise


class TrainResult(TypedDict, total=False):
    """What `train` and `pretrain` return (--out/ropescale.json holds it with the config and environment)."""

    command: str  # "train" or "pretrain"
    out: str
    model: str
    parameters: int | None
    trainable_parameters: int
    scaling: dict[str, Any]
    seq_len: int
    positions: dict[str, Any]  # Positions.describe, plus the validation ids
    batch_size: int
    processes: int
    rank: int
    resumed_from: str | None
    skipped_checkpoints: list[str]
    cleaned: list[str]
    train_sequences: int
    val_sequences: int
    # from loop.fit
    steps: int
    final_loss: float
    val_loss: float | None
    wall_s: float
    tokens_per_s: float | None
    peak_memory_mb: float | None
    max_position_id: int


def training_positions(cfg: TrainConfig, spec: Any, window: int) -> Positions:
    """The position-id scheme of a run, checked against the model's window after scaling (before anything
    is written): contiguous ids 0..seq-len-1, or PoSE ids spanning the target window."""
    p = cfg.positions
    seq_len = cfg.seq_len or window
    target = p.target_window or window
    if spec.rope_type == "dynamic" and p.scheme == "pose":
        raise ValueError(
            "--positions pose does not go with dynamic NTK (the model's own rope): it rescales by the "
            "largest position id of each batch, so random skips would train every batch at another scaling"
        )
    if seq_len > window:
        raise ValueError(
            f"--seq-len {seq_len} is beyond the model's window after scaling ({window}); raise --factor "
            "or lower --seq-len"
        )
    if target > window:
        raise ValueError(
            f"--target-window {target} is beyond the model's window after scaling ({window}); raise "
            "--factor or lower --target-window"
        )
    if target < seq_len:
        raise ValueError(f"--target-window ({target}) must be >= the sequence length ({seq_len})")
    if p.scheme == "pose" and seq_len >= target:
        raise ValueError(
            f"--positions pose: the sequences (--seq-len {seq_len}) already cover the target window "
            f"({target}), so there is nothing to skip; lower --seq-len"
        )
    if p.pose_chunks > seq_len:
        raise ValueError(f"--pose-chunks ({p.pose_chunks}) must be <= the sequence length ({seq_len})")
    return Positions(p.scheme, p.pose_chunks, target)


@dataclass
class TrainRun:
    """One training run, prepare -> open -> build job -> fit -> save: its knobs, what it trains, where it
    writes (checked before anything is loaded or written), the distributed context, and the model,
    tokenizer, scaling and position ids the command sets once it has them."""

    cfg: TrainOptions
    trainee: Trainee
    command: str  # "train" or "pretrain": how the records name it
    start: Start
    d: dist.Dist
    model: Any = None  # the transformers model (LoRA-wrapped with --lora)
    tokenizer: Any = None
    spec: RopeScaling | None = None  # the scaling the model carries
    positions: Positions | None = None

    @classmethod
    def prepare(cls, cfg: TrainOptions, trainee: Trainee, command: str) -> TrainRun:
        """Check --out, --resume's checkpoint and recipe and the data (writes nothing), then set up the
        process group (torchrun) or the single device."""
        start = _start_out(cfg, trainee)
        return cls(cfg, trainee, command, start, dist.init(cfg.load.device, cfg.deterministic))

    @contextlib.contextmanager
    def open(self) -> Iterator[None]:
        """The run directory made ready (debris removed, a finished run linked in for --resume); inside,
        a failure before the run's first checkpoint leaves nothing behind."""
        _open_work(self.start, self.cfg, self.d)
        with _cleanup_on_failure(self.start, self.d):
            yield

    def fit_and_save(self) -> TrainResult:
        """Build the job, resume or record how the run started, train, save the final model, and make the
        finished run --out (one rename)."""
        cfg, d, start, positions = self.cfg, self.d, self.start, self.positions
        seq_len = cfg.seq_len or int(self.model.config.max_position_embeddings)
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        work = start.work
        try:
            job = self.build_job(seq_len)
            resume_from = checkpoint.checkpoint_dir(work, start.base_step) if start.resume_from else None
            if resume_from is not None:
                loop.restore(job, resume_from)
            elif d.main:  # a resumed run keeps the record of how it started
                outputs.write_json(
                    work / "train_config.json",
                    {"command": self.command, "config": cfg, "environment": outputs.environment(d.device)},
                )
            dist.barrier(d)
            result = loop.fit(job)
            saved = self.save(job)
            packed = job.sampler.packed
            summary: TrainResult = {
                "command": self.command,
                "out": str(cfg.out),
                "model": self.trainee.model,
                "parameters": saved.get("parameters"),
                "trainable_parameters": trainable,
                "scaling": self.spec.to_dict(),
                "seq_len": seq_len,
                # validation always runs with contiguous ids at the training length
                "positions": {**positions.describe(seq_len), "validation": [0, seq_len - 1]},
                "batch_size": cfg.batch_size,
                "processes": d.world,
                "rank": d.rank,
                "resumed_from": str(start.resume_from) if start.resume_from else None,
                "skipped_checkpoints": start.skipped,
                "cleaned": start.cleaned,
                "train_sequences": int(packed.meta["train_sequences"]),
                "val_sequences": int(packed.meta["val_sequences"]),
                **result,
            }
            if d.main:  # the finished run replaces --out in one rename
                outputs.write_json(
                    work / "ropescale.json",
                    {**summary, "config": cfg, "environment": outputs.environment(d.device)},
                )
                dist.test_kill_point("final-swap", job.step)
                outputs.replace_dir(work, Path(cfg.out))
            dist.barrier(d)
        finally:
            dist.close(d)
        return summary

    def build_job(self, seq_len: int) -> loop.Job:
        """The loop's job: data, passkey mixture, loss, sharding, optimizer and schedule, and the fingerprint."""
        cfg, d, positions = self.cfg, self.d, self.positions
        if cfg.batch_size % (cfg.micro_batch_size * d.world):
            raise ValueError(
                f"--batch-size ({cfg.batch_size}) must be a multiple of --micro-batch-size x processes "
                f"({cfg.micro_batch_size} x {d.world})"
            )
        packed = self.pack(seq_len)
        pk, maker = cfg.passkey, None
        if pk.fraction > 0:
            maker = PasskeyMaker.for_tokenizer(
                self.tokenizer, seq_len, pk.min_fill, pk.whole_batches, pk.span
            )
            # whole passkey batches hold rows of the span's length, more of them per step
            if pk.whole_batches:
                maker = tuple(
                    dataclasses.replace(maker, seq_len=n, span=n) for n in pk.spans(maker.span, seq_len)
                )
        sampler = BatchSampler(
            packed, cfg.batch_size, cfg.seed, maker, pk.fraction, pk.whole_batches, positions
        )
        root = CausalLMLoss(self.model, cfg.memory.loss_chunk)
        # one precision scheme for 1 and N processes (train/dist.py): fp32 weights, grads and optimizer
        # state, and on a GPU with --dtype auto, bf16 autocast
        gpu_bf16 = d.device.type == "cuda" and cfg.load.dtype == "auto"
        dist.shard(root, self.model, d)
        if not d.sharded:
            root.to(d.device)
        o = cfg.optim
        optimizer = make_optimizer(root, o.lr, (o.beta1, o.beta2), o.weight_decay)
        scheduler = make_scheduler(
            optimizer, o.warmup_steps, o.warmup_start, o.schedule, cfg.steps, o.min_lr_ratio
        )
        return loop.Job(
            root=root,
            optimizer=optimizer,
            scheduler=scheduler,
            sampler=sampler,
            val=validation_batches(packed, cfg.micro_batch_size * d.world, cfg.checkpoints.eval_sequences),
            d=d,
            out=self.start.work,
            steps=cfg.steps,
            micro_batch_size=cfg.micro_batch_size,
            optim=o,
            checkpoints=cfg.checkpoints,
            fingerprint=self.fingerprint(packed, seq_len),
            autocast_dtype=torch.bfloat16 if gpu_bf16 else None,
        )

    def pack(self, seq_len: int) -> Packed:
        """The packed token sequences (rank 0 packs and caches them, the others read the cache)."""
        cfg, objective, d = self.cfg, self.trainee.objective, self.d
        data = cfg.data
        request = DataRequest(
            data=data.source,
            seq_len=seq_len,
            text_field=data.text_field,
            split=data.split,
            val_fraction=data.val_fraction,
            max_tokens=data.max_tokens,
            task=objective.task,
            report_field=objective.report_field,
            summary_field=objective.summary_field,
            max_summary_tokens=objective.max_summary_tokens,
        )
        cache = Path(data.cache_dir) if data.cache_dir is not None else self.start.work / ".cache"
        packed = pack(request, self.tokenizer, cache) if d.main else None
        dist.test_kill_point("data-cache", 0)  # tests: a kill once the data is cached, before the first step
        dist.wait_for_main(d)
        return packed if packed is not None else pack(request, self.tokenizer, cache)

    def fingerprint(self, packed: Packed, seq_len: int) -> dict[str, Any]:
        """What a resumed run must share with the checkpoint for its batches and positions to be the same
        (the keys of checkpoints written before the knobs were grouped, so those resume too)."""
        cfg, pk = self.cfg, self.cfg.passkey
        return {
            "model": self.trainee.model,
            "rope": self.spec.to_dict(),
            "data": packed.fingerprint,
            "seq_len": seq_len,
            "batch_size": cfg.batch_size,
            **{f"passkey_{k}": v for k, v in dataclasses.asdict(pk).items()},
            "seed": cfg.seed,
            "lora": self.trainee.lora.enabled,
            "positions": self.positions.fingerprint(),
            "recipe": _recipe(cfg),
        }

    def save(self, job: loop.Job) -> dict[str, Any]:
        """Write the final transformers checkpoint into the run directory (a kill here leaves the run to
        --resume: it is not --out until it is complete)."""
        d, lora = self.d, self.trainee.lora
        state = dist.model_state(job.root, d) if (d.sharded or lora.enabled) else {}
        info: dict[str, Any] = {}
        if d.main:
            model = self.final_model(state)
            if model.supports_gradient_checkpointing:
                compat.set_activation_checkpointing(model, False)
            model.save_pretrained(job.out)
            dist.test_kill_point("final-save", job.step)
            self.tokenizer.save_pretrained(job.out)
            compat.legacy_rope_keys(job.out / "config.json")
            outputs.follow_umask(job.out, recursive=False)  # the weights as readable as the run's other files
            info["parameters"] = sum(p.numel() for p in model.parameters())
        return dist.broadcast(info, d)

    def final_model(self, state: dict[str, torch.Tensor]) -> Any:
        """The model to save on rank 0: the live one when it is whole, else rebuilt from the full state."""
        from transformers import AutoModelForCausalLM

        lm, lora = self.model, self.trainee.lora
        state = {k.removeprefix("lm."): v for k, v in state.items()}
        config = lm.config
        if lora.enabled:
            model = merged(config, state, lora.rank, lora.alpha, lora.targets)
        elif not self.d.sharded:
            return lm
        else:
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config)
            model.to_empty(device="cpu")
            model.tie_weights()  # to_empty gives tied parameters separate storage
            model.load_state_dict(state, strict=True)
        compat.rebuild_rotary(model)  # rotary buffers are not in the state dict
        return model
