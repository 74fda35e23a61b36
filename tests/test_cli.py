"""One CLI convention: MODEL positional everywhere (``--model`` an alias), choices shown, no dotted metavars."""

from __future__ import annotations

import json

import pytest

from ropescale import __version__, cli

MODEL_COMMANDS = ["extend", "inspect", "theory", "train", "eval ppl", "eval passkey", "eval summarize",
                  "eval harness", "eval ruler"]  # fmt: skip
REQUIRED = {"extend": ["--out", "o"], "train": ["--out", "o"], "eval summarize": ["--data", "d.jsonl"]}


@pytest.mark.parametrize("command", MODEL_COMMANDS)
@pytest.mark.parametrize("spelling", ["positional", "flag"])
def test_model_positional_or_flag(command, spelling):
    model = ["some/model"] if spelling == "positional" else ["--model", "some/model"]
    name, cfg = cli.parse([*command.split(), *model, *REQUIRED.get(command, [])])
    assert name == command and cfg.model == "some/model"


@pytest.mark.parametrize("command", ["eval ppl", "extend"])
def test_model_given_twice_is_a_usage_error(command, capsys):
    code = cli.main([*command.split(), "a/b", "--model", "c/d", *REQUIRED.get(command, [])])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "MODEL" in err and "--model" in err and "Traceback" not in err


def test_missing_model_names_it(capsys):
    assert cli.main(["eval", "passkey", "--lengths", "256"]) == 2
    assert "required: MODEL" in capsys.readouterr().err


def test_config_file_model_and_flag(tmp_path):
    """A --config file may name the model; --model on the command line wins over it, as any flag does."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": "from/file", "stride": 8, "lengths": [16]}))
    assert cli.parse(["eval", "ppl", "--config", str(path)])[1].model == "from/file"
    assert cli.parse(["eval", "ppl", "--config", str(path), "--model", "from/flag"])[1].model == "from/flag"
    assert cli.parse(["eval", "ppl", "from/arg", "--config", str(path)])[1].model == "from/arg"


def test_help_shows_choices_and_no_internal_metavars():
    _, leaves = cli.build_parser()
    for name, parser in leaves.items():
        text = parser.format_help()
        assert "ROPE." not in text and "LOAD." not in text, name
    ppl = leaves["eval ppl"].format_help()
    assert "usage: ropescale eval ppl MODEL [options]" in ppl
    from ropescale.config import METHOD_NAMES

    assert "--method {" + ",".join(METHOD_NAMES) + "}" in ppl
    assert "--dtype {auto,float32,bfloat16,float16}" in ppl and "--device DEVICE" in ppl


def test_choice_error_comes_from_the_config(capsys):
    assert cli.main(["eval", "ppl", "a/b", "--method", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ropescale: error: --method must be one of") and len(err.splitlines()) == 1


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser()[0].parse_args(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"ropescale {__version__}"


def test_builtin_model_names_are_the_same_for_every_command(tmp_path, capsys):
    """`demo --model tiny` worked while `inspect tiny` / `extend tiny` said "no such file": MODEL `tiny` is the
    shipped base model in every command, and the error for an unknown name lists it."""
    from pathlib import Path

    import ropescale
    from ropescale.cli import main

    assert main(["inspect", "tiny", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert main(["extend", "tiny", "--method", "linear", "--factor", "2", "--out", str(tmp_path / "x")]) == 0
    config = json.loads((tmp_path / "x" / "config.json").read_text())
    shipped = json.loads((Path(ropescale.__file__).parent / "demo" / "base" / "config.json").read_text())
    assert config["hidden_size"] == shipped["hidden_size"] and shown
    assert config["rope_parameters"]["factor"] == 2.0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert "one of: smollm2-135m, tiny" in capsys.readouterr().err
