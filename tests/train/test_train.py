"""`ropescale pretrain` and `train` end to end on the tiny model: losses against an independent plain
transformers loop, the saved checkpoint, the summarization task, LoRA and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

from ropescale.cli import main
from ropescale.commands.train import run_train
from ropescale.config import RopeScaling
from ropescale.data import BatchSampler, DataRequest, pack
from ropescale.models import scale_model

from .conftest import metrics, train_cfg


def test_pretrain_learns_and_saves_a_normal_checkpoint(tiny_base):
    out, result = tiny_base
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5
    assert result["parameters"] == sum(
        p.numel() for p in AutoModelForCausalLM.from_pretrained(out).parameters()
    )
    config = AutoConfig.from_pretrained(out)
    assert config.max_position_embeddings == 32 and config.vocab_size <= 320
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    assert tok.decode(tok("The pass key is 12345.")["input_ids"]) == "The pass key is 12345."


def _plain_loop(model_dir, rope, cfg, packed, steps):
    """An independent reference: transformers' own loss (full logits, whole batch at once) and
    torch.optim.AdamW with the paper's warmup written out by hand."""
    lm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    scale_model(lm, rope)
    lm.train()
    opt = torch.optim.AdamW(lm.parameters(), lr=cfg.optim.lr, betas=(0.9, 0.95), weight_decay=0.0, eps=1e-8)
    sampler = BatchSampler(packed, cfg.batch_size, cfg.seed)
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cfg.optim.lr * (
                0.1 + 0.9 * step / cfg.optim.warmup_steps if step < cfg.optim.warmup_steps else 1.0
            )
        ids, labels, _ = sampler.next_batch()
        loss = lm(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses, lm


@pytest.mark.parametrize("method", ["linear", "none"])
def test_train_matches_a_plain_transformers_loop(tmp_path, tiny_base, corpus, method):
    base, _ = tiny_base
    rope = RopeScaling(method, 2.0)
    cfg = train_cfg(
        base, tmp_path / "ft", corpus, rope=rope, steps=3, warmup_steps=2, activation_checkpointing=True
    )
    result = run_train(cfg)
    tok_packed = pack(
        DataRequest(str(corpus), seq_len=64, val_fraction=cfg.data.val_fraction),
        __import__("transformers").AutoTokenizer.from_pretrained(base),
        tmp_path / "ft" / ".cache",
    )
    want, reference = _plain_loop(base, rope, cfg, tok_packed, 3)
    got = [r["loss"] for r in metrics(tmp_path / "ft")]
    assert got == pytest.approx(want, rel=2e-5)
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "ft")
    for name, p in reference.state_dict().items():
        torch.testing.assert_close(saved.state_dict()[name], p, rtol=1e-4, atol=2e-6, msg=name)
    # the checkpoint carries the scaling for stock transformers: PI x2, or plain RoPE over 2x the window
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert config["max_position_embeddings"] == 64
    assert config["rope_parameters"]["rope_type"] == ("linear" if method == "linear" else "default")
    assert result["scaling"]["rope_type"] == method and result["seq_len"] == 64
    assert (tmp_path / "ft" / "model.safetensors").is_file() and (
        tmp_path / "ft" / "tokenizer.json"
    ).is_file()
    assert (
        json.loads((tmp_path / "ft" / "train_config.json").read_text())["config"]["optim"]["lr"]
        == cfg.optim.lr
    )
    row = metrics(tmp_path / "ft")[-1]
    assert {"step", "loss", "lr", "tokens_per_s", "peak_memory_mb", "val_loss"} <= set(row)


def test_summarize_task_trains_on_the_summary_only(tmp_path, tiny_base):
    base, _ = tiny_base
    path = tmp_path / "gov.jsonl"
    rows = [{"report": "The king is dead. " * (8 + i % 5), "summary": f"Dead king {i}."} for i in range(16)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = train_cfg(base, tmp_path / "sum", path, task="summarize", seq_len=128, steps=1, val_fraction=0.0,
                    rope=RopeScaling("linear", 4.0))  # fmt: skip
    run_train(cfg)
    tok = __import__("transformers").AutoTokenizer.from_pretrained(base)
    request = DataRequest(str(path), seq_len=128, val_fraction=0.0, task="summarize")
    packed = pack(request, tok, tmp_path / "sum" / ".cache")
    _ids, labels, _ = BatchSampler(packed, 4, 0).next_batch()
    assert ((labels != -100).sum(1) < 20).all()  # only the short summaries are scored
    want, _ = _plain_loop(base, RopeScaling("linear", 4.0), cfg, packed, 1)
    assert metrics(tmp_path / "sum")[0]["loss"] == pytest.approx(want[0], rel=2e-5)


def test_lora_trains_adapters_embeddings_and_norms_then_merges(tmp_path, tiny_base, corpus):
    pytest.importorskip("peft")
    base, _ = tiny_base
    result = run_train(train_cfg(base, tmp_path / "lora", corpus, lora=True, lora_rank=4, steps=2, lr=1e-2))
    saved = load_file(str(tmp_path / "lora" / "model.safetensors"))
    before = load_file(str(base / "model.safetensors"))
    assert set(saved) == set(before)  # merged: a plain model, no adapter weights
    changed = {k for k in saved if not torch.equal(saved[k], before[k])}
    assert "model.layers.0.self_attn.q_proj.weight" in changed  # adapters merged in
    assert "model.embed_tokens.weight" in changed and "model.norm.weight" in changed
    assert "model.layers.0.mlp.up_proj.weight" not in changed  # frozen
    assert result["trainable_parameters"] < result["parameters"]


def test_cli_prints_a_summary_and_reports_bad_input(tmp_path, tiny_base, corpus, capsys):
    base, _ = tiny_base
    common = ["train", str(base), "--data", str(corpus), "--method", "linear", "--factor", "2"]
    code = main(
        [*common, "--out", str(tmp_path / "a"), "--steps", "1", "--batch-size", "2", "--save-every", "0"]
    )
    out, _ = capsys.readouterr()
    assert code == 0 and "rope linear x2; 1 steps of 2 x 64 tokens" in out
    cases = [
        (["--out", str(tmp_path / "a")], "exists and is not empty"),
        (
            ["--out", str(tmp_path / "b"), "--batch-size", "3", "--micro-batch-size", "2"],
            "must be a multiple",
        ),
        (["--out", str(tmp_path / "c"), "--resume"], "no checkpoint"),
        (["--out", str(tmp_path / "d"), "--warmup-start", "2"], "--warmup-start must be in [0, 1]"),
    ]
    for flags, message in cases:
        assert main([*common, *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_passkey_batches_at_their_span_match_a_plain_loop(tmp_path, tiny_base, corpus):
    """With --passkey-loss answer and a --passkey-span half the sequence, a passkey batch holds twice the
    rows at half the length; the loop (micro-batches of as many tokens as usual) still computes the mean
    answer loss of the whole batch, as transformers' own loss on the whole batch at once does."""
    from transformers import AutoTokenizer

    from ropescale.data import PasskeyMaker

    base, _ = tiny_base
    rope = RopeScaling("linear", 16.0)  # 32 -> 512; the passkey prompt needs ~180 of this tokenizer's tokens
    kw = dict(passkey_fraction=1.0, passkey_loss="answer", passkey_min_fill=0.0, passkey_span=256)
    cfg = train_cfg(base, tmp_path / "ft", corpus, rope=rope, steps=2, warmup_steps=1, **kw)
    run_train(cfg)
    tok = AutoTokenizer.from_pretrained(base)
    packed = pack(
        DataRequest(str(corpus), seq_len=512, val_fraction=cfg.data.val_fraction), tok, tmp_path / "c"
    )
    maker = PasskeyMaker.for_tokenizer(tok, 256, 0.0, answer_only=True)
    sampler = BatchSampler(packed, 4, cfg.seed, maker, 1.0, passkey_batches=True)
    ids, labels, _ = sampler.next_batch()
    assert ids.shape == (8, 256)  # twice the documents of a text batch (4 x 512), the same tokens
    assert ((labels != -100).sum(1) >= 6).all()  # each row scores its answer " KEY." (5 digits and ".")

    lm = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    scale_model(lm, rope)
    want = lm(input_ids=ids, labels=labels).loss.item()  # step 1: before any update
    assert metrics(tmp_path / "ft")[0]["loss"] == pytest.approx(want, rel=2e-5)
