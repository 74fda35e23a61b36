"""Grouped training knobs, their flat names (config/flat.py) and the shipped recipe files.

The references are independent of the recipe files: the command lines that made the demo's base model
(the flags spelled out, as recipe.json held them before the recipes existed), the configuration recorded
when its second stage ran (demo/base/train_config.json), and `pretrain`'s defaults as its config class
declared them before they moved into recipes/pretrain.toml.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

from ropescale import cli, outputs
from ropescale.config import (
    LoadOptions,
    OptimOptions,
    PretrainConfig,
    RopeScaling,
    TrainConfig,
    build,
)
from ropescale.config.flat import by_flag, keys, knobs, read, recipe_names

BASE = Path(cli.__file__).parent / "demo" / "base"

STAGE1 = (
    "pretrain --out base-stage1 --data shakespeare,pystdlib --text-field text --split train --seq-len 256 "
    "--val-fraction 0.02 --max-tokens 6000000 --passkey-fraction 0.3 --passkey-loss answer --passkey-min-fill "
    "0.0 --steps 2400 --batch-size 32 --micro-batch-size 32 --lr 0.004 --warmup-steps 50 --warmup-start 0.0 "
    "--schedule cosine --min-lr-ratio 0.1 --weight-decay 0.1 --beta1 0.9 --beta2 0.95 --max-grad-norm 1.0 "
    "--no-activation-checkpointing --checkpoint-every-n-layers 1 --loss-chunk 0 --save-every 400 "
    "--keep-checkpoints 2 --eval-every 0 --eval-sequences 16 --seed 0 --vocab-size 2048 --tokenizer-chars "
    "4000000 --hidden-size 128 --num-layers 2 --num-heads 4 --num-kv-heads 2 --intermediate-size 352 "
    "--rope-theta 10000.0"
)
STAGE2 = (
    "train base-stage1 --out base --data shakespeare,pystdlib --text-field text --split train --seq-len 256 "
    "--val-fraction 0.02 --max-tokens 6000000 --passkey-fraction 0.6 --passkey-loss answer --passkey-min-fill "
    "0.0 --steps 1200 --batch-size 32 --micro-batch-size 32 --lr 0.002 --warmup-steps 20 --warmup-start 0.1 "
    "--schedule cosine --min-lr-ratio 0.1 --weight-decay 0.0 --beta1 0.9 --beta2 0.95 --max-grad-norm 0.0 "
    "--no-activation-checkpointing --checkpoint-every-n-layers 1 --loss-chunk 0 --save-every 300 "
    "--keep-checkpoints 2 --eval-every 0 --eval-sequences 16 --seed 0 --task lm --report-field report "
    "--summary-field summary --max-summary-tokens 1000 --no-lora --lora-rank 8 --lora-alpha 16.0 "
    "--lora-targets q_proj,k_proj,v_proj,o_proj"
)
# PretrainConfig's own defaults before they became recipes/pretrain.toml
OLD_PRETRAIN = dict(
    seq_len=256, passkey_fraction=0.0, steps=300, batch_size=16, micro_batch_size=16, lr=2e-3, warmup_steps=30,
    warmup_start=0.0, schedule="cosine", weight_decay=0.1, max_grad_norm=1.0, activation_checkpointing=False,
    vocab_size=2048, tokenizer_chars=4_000_000, hidden_size=256, num_layers=4, num_heads=4, head_dim=0,
    num_kv_heads=2, intermediate_size=688, rope_theta=10000.0,
)  # fmt: skip


def _parse(line: str):
    return cli.parse(shlex.split(line))[1]


def _commands() -> list[str]:
    return [c.removeprefix("ropescale ") for c in json.loads((BASE / "recipe.json").read_text())["commands"]]


def test_the_base_models_recipe_files_are_its_spelled_out_commands():
    short1, short2 = _commands()
    assert "--config tiny-base-stage1" in short1 and "--config tiny-base-stage2" in short2
    assert _parse(short1) == _parse(STAGE1)
    assert _parse(short2) == _parse(STAGE2)


def test_stage_two_is_the_configuration_recorded_when_the_base_model_was_trained():
    recorded = json.loads((BASE / "train_config.json").read_text())
    assert recorded["command"] == "train"
    want = by_flag(TrainConfig, recorded["config"])  # the flat record of the old flat config
    got = by_flag(TrainConfig, outputs.jsonable(_parse(_commands()[1])))
    for name in ("overwrite",):  # the run replaced an earlier attempt; not part of the recipe
        want.pop(name), got.pop(name)
    assert {k: got[k] for k in want} == want and len(want) > 40
    # knobs added after the base was made: at the defaults that keep the old behaviour
    newer = {k: v for k, v in got.items() if k not in want}
    assert newer == {"deterministic": False, "passkey_span_mix": False, "positions": "contiguous",
                     "pose_chunks": 2, "target_window": None, "allow_smaller_window": False}  # fmt: skip


def test_pretrain_starts_from_its_shipped_recipe():
    cfg = _parse("pretrain --out x")
    assert by_flag(PretrainConfig, outputs.jsonable(cfg)).items() >= OLD_PRETRAIN.items()
    assert read("pretrain") and "pretrain" in recipe_names()
    # flags win over the recipe, and a --config file over the recipe
    assert _parse("pretrain --out x --lr 0.5").optim.lr == 0.5
    assert build(PretrainConfig, out="x", seq_len=64).optim.lr == 2e-5  # Python: the fields' own defaults
    assert build(PretrainConfig, recipe="pretrain", out="x").optim.lr == 2e-3


def test_a_config_file_layers_over_the_recipe_and_under_the_flags(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('steps = 7\n[optim]\nschedule = "constant"\n')
    cfg = _parse(f"pretrain --out x --config {path} --steps 9")
    assert (cfg.steps, cfg.optim.schedule, cfg.optim.lr) == (9, "constant", 2e-3)


def test_a_recorded_config_is_a_config_file(tmp_path):
    """train_config.json's `config` read back with --config gives the same configuration."""
    cfg = _parse("train m --out o --method linear --factor 2 --lr 3e-4 --passkey-fraction 0.25 --lora")
    path = tmp_path / "record.json"
    outputs.write_json(path, outputs.jsonable(cfg))
    assert _parse(f"train --config {path}") == cfg
    plain = _parse("train m --out o")  # a record without scaling ("rope": null), then a flag that scales
    outputs.write_json(path, outputs.jsonable(plain))
    assert _parse(f"train --config {path} --method yarn --factor 4").rope == RopeScaling("yarn", 4.0)


def test_build_takes_flag_names_dotted_paths_and_groups():
    a = build(TrainConfig, model="m", out="o", lr=1e-3, passkey_fraction=0.5, method="linear", factor=2.0)
    b = build(TrainConfig, {"model": "m", "out": "o", "optim.lr": 1e-3, "passkey.fraction": 0.5},
              rope=RopeScaling("linear", 2.0))  # fmt: skip
    c = TrainConfig(model="m", out="o", optim=OptimOptions(lr=1e-3), rope=RopeScaling("linear", 2.0),
                    passkey=dataclasses.replace(TrainConfig.__dataclass_fields__["passkey"].default, fraction=0.5))  # fmt: skip
    assert a == b == c
    assert build(TrainConfig, model="m", out="o").rope is None  # an optional group stays unset
    assert build(TrainConfig, model="m", out="o", load=LoadOptions(dtype="float32")).load.dtype == "float32"
    with pytest.raises(ValueError, match=r"unknown knobs \['colour'\]"):
        build(TrainConfig, model="m", out="o", colour="red")


def test_every_knob_has_one_flag_and_its_group_checks_it():
    for cls in (TrainConfig, PretrainConfig):
        flags = [cli.flag(f) for f in knobs(cls).values()]
        assert len(flags) == len(set(flags)), cls
        assert all(keys(cls)[path] == path for path in knobs(cls))
    with pytest.raises(ValueError, match=r"^--passkey-span must be an integer >= 2, got 1"):
        build(TrainConfig, model="m", out="o", passkey_span=1)
    with pytest.raises(ValueError, match=r"^--lora-rank must be an integer >= 1, got 0"):
        build(TrainConfig, model="m", out="o", lora_rank=0)


def test_records_of_the_flat_and_the_grouped_configs_read_the_same():
    cfg = _parse(STAGE2)
    grouped = outputs.jsonable(cfg)
    assert grouped["optim"]["lr"] == 0.002 and grouped["passkey"]["fraction"] == 0.6
    flat = by_flag(TrainConfig, grouped)
    assert flat["lr"] == 0.002 and flat["passkey_fraction"] == 0.6 and flat["lora"] is False
    legacy = json.loads((BASE / "train_config.json").read_text())["config"]  # written before the groups
    assert by_flag(TrainConfig, legacy)["passkey_fraction"] == 0.6


def test_an_unknown_recipe_names_the_shipped_ones():
    with pytest.raises(ValueError, match=r"--config nope: no such file \(or shipped recipe: pretrain, "):
        read("nope")


def test_help_lists_the_groups(capsys):
    with pytest.raises(SystemExit):
        cli.parse(["train", "--help"])
    text = capsys.readouterr().out
    for heading in ("training data:", "passkey documents in training:", "optimizer and schedule:", "LoRA:"):
        assert heading in text


def test_a_base_without_recipe_json_reproduces_its_command(tmp_path):
    """The demo names the command that made a base from its record (grouped config) alone."""
    from ropescale.demo.tiny import base_info

    cfg = _parse("pretrain --out x --seq-len 64 --lr 0.01 --hidden-size 64 --passkey-fraction 0.2 --lr 0.01")
    base = tmp_path / "b"
    base.mkdir()
    # a config transformers can read (the demo reads the window through models/, as for any checkpoint)
    (base / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 64}))
    outputs.write_json(base / "ropescale.json", {"command": "pretrain", "config": cfg, "parameters": 1})
    info = base_info(base)
    assert (info["passkey_fraction"], info["data"], info["window"]) == (0.2, "shakespeare", 64)
    line = info["commands"][0].removeprefix("ropescale ").replace("--out DIR", "--out x")
    assert _parse(line) == cfg


def test_config_file_values_are_converted_like_flags(tmp_path):
    """A --config file's values go through the flags' conversion: an integer for a float knob, a list or a
    number for a comma-separated knob, a path from a string; the result equals the command line's."""
    path = tmp_path / "c.toml"
    path.write_text('out = "o"\nfactor = 2\nmethod = "linear"\nlengths = [64, 128]\nstride = "32"\n')
    from_file = cli.parse(["eval", "ppl", "m", "--data", "d", "--config", str(path)])[1]
    from_flags = cli.parse(
        [
            "eval",
            "ppl",
            "m",
            "--data",
            "d",
            "--out",
            "o",
            "--factor",
            "2.0",
            "--method",
            "linear",
            "--lengths",
            "64,128",
            "--stride",
            "32",
        ]
    )[1]
    assert from_file == from_flags
    assert isinstance(from_file.rope.factor, float) and from_file.lengths == [64, 128]
