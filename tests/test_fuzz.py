"""A fuzz test over every command: hypothesis builds command lines from each command's config dataclasses
(every knob, as its flag, with valid and invalid values), odd paths (dangling and looping links, `.`, `..`,
empty, unicode, under a file, an existing non-empty directory, missing parents) and odd files (binary, empty,
wrong JSON, a directory), and checks the contract of `ropescale.cli.main`:

- exit 0, with the promised output (--out / --figures) in place and no temporary or partial debris; or
- exit 2 with exactly one line on stderr, `ropescale[ CMD]: error: ...`, no traceback, and the listing of the
  scratch tree (every input, every output location and its parent) unchanged.

Each command starts from a fast valid command line (a tiny model, a tiny corpus, one step), so a generated
line that stays valid still runs in seconds. `demo` keeps an --out that is refused (a valid demo runs for
minutes); `eval ruler` and `eval harness` keep task lists that are refused or cheap.

Bounded for CI: EXAMPLES examples per command, derandomized (the same lines every run). A longer, randomized
run: ROPESCALE_FUZZ_EXAMPLES=500 pytest tests/test_fuzz.py (docs/testing.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import typing
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ropescale.cli import COMMANDS, main
from ropescale.config.flat import fields, flag

from .conftest import save_tiny_llama, tiny_llama_config

EXAMPLES = int(os.environ.get("ROPESCALE_FUZZ_EXAMPLES", "6"))
LONG = "ROPESCALE_FUZZ_EXAMPLES" in os.environ

# a valid command line per command that runs in seconds ({m} model, {d} corpus, {o} a fresh output path,
# {w} the scratch tree)
BASE = {
    "extend": "extend {m} --method linear --factor 2 --out {o}",
    "inspect": "inspect {m}",
    "theory": "theory {m} --tokens 32 --pairs 4",
    "pretrain": "pretrain --data {w}/prose.txt --seq-len 32 --steps 1 --batch-size 2 --micro-batch-size 2 --tokenizer-chars 1000 --out {o}",
    "train": "train {m} --data {d} --method linear --factor 2 --steps 1 --batch-size 2 --micro-batch-size 2 --eval-sequences 1 --out {o}",
    "eval ppl": "eval ppl {m} --data {d} --lengths 64 --stride 64 --max-docs 1 --bootstrap 10 --out {o}",
    "eval passkey": "eval passkey {m} --lengths 64 --num-k 1 --trials 1 --out {o}",
    "eval summarize": "eval summarize {m} --data {w}/records.jsonl --max-docs 1 --max-input-tokens 32 --max-new-tokens 4 --out {o}",
    "eval harness": "eval harness {m} --data {d} --max-docs 1 --out {o}",
    "eval ruler": "eval ruler {m} --lengths 64 --tasks niah_single_1 --samples 1 --out {o}",
    "demo": "demo --model tiny --quick --out {w}/full",
    "report": "report {w}/ppl.json --out {o}",
}  # fmt: skip
# knobs a generated line leaves alone: they would make a valid run slow (a real demo, a download), or name
# the inputs themselves as outputs
FIXED = {
    "demo": {"out", "overwrite", "prepare", "model", "full"},
    "eval ruler": {"tasks", "online"},
    "eval harness": {"tasks", "include_path"},
    "*": {"trust_remote_code", "device", "cache_dir"},
}

ODD_PATHS = [
    "{w}/dangling", "{w}/loop", ".", "..", "", "{w}/afile/x", "{w}/afile", "{w}/full", "{w}/dangling/x",
    "{w}/outs/ünïcødé ✓", "{w}/outs/new/deeper/x", "{w}/nope",
]  # fmt: skip
ODD_FILES = ["{w}/binary.txt", "{w}/empty.txt", "{w}/broken.json", "{w}/list.json", "{w}/full", "{w}/nope"]
INTS = ["1", "2", "4", "16", "64", "0", "-1", "3.5", "x", "", "99999999999999999999", "18446744073709551616"]
FLOATS = ["0.5", "1", "2", "4", "0", "-1", "nan", "inf", "1e300", "1e-300", "x", ""]


def _knobs(cls: type) -> list[tuple[dataclasses.Field, typing.Any]]:
    out = []
    for f, tp, _ in fields(cls):
        out += _knobs(tp) if dataclasses.is_dataclass(tp) else [(f, tp)]
    return out


def _values(f: dataclasses.Field, tp: typing.Any) -> st.SearchStrategy:
    """Text values for one knob: valid ones and invalid ones mixed."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal or f.metadata.get("choices"):
        choices = typing.get_args(tp) if origin is typing.Literal else f.metadata["choices"]
        return st.sampled_from([*map(str, choices), "nope", ""])
    if origin in (list, tuple):
        item = typing.get_args(tp)[0]
        pool = INTS if item is int else FLOATS if item is float else ["a", "b,c", "niah_single_1"]
        return st.lists(st.sampled_from(pool), min_size=1, max_size=3).map(",".join)
    if tp is int:
        return st.sampled_from(INTS)
    if tp is float:
        return st.sampled_from(FLOATS)
    if tp is Path or f.name in ("model", "data", "text", "base", "compare"):
        return st.sampled_from(ODD_PATHS + ODD_FILES + ["{m}", "{d}"])
    return st.sampled_from(["x", "", "{m}", "ünï"])


def _flag_items(command: str) -> list[tuple[dataclasses.Field, typing.Any]]:
    skip = FIXED.get(command, set()) | FIXED["*"]
    return [(f, tp) for f, tp in _knobs(COMMANDS[command].config) if f.name not in skip]


@st.composite
def command_lines(draw, command: str) -> list[str]:
    """The command's base line with 0-3 knobs set to drawn values (a positional replaced, a flag added
    after the base's own so it wins), and perhaps an odd --out or --config."""
    argv = BASE[command].split()
    items = _flag_items(command)
    for f, tp in draw(st.lists(st.sampled_from(items), max_size=3, unique_by=lambda x: x[0].name)):
        if tp is bool:
            argv.append(draw(st.sampled_from([flag(f), "--no-" + flag(f)[2:]])))
            continue
        value = draw(_values(f, tp))
        if f.metadata.get("positional"):  # MODEL or RESULTS: right after the command's words
            at = len(command.split())
            if at < len(argv) and not argv[at].startswith("-"):
                argv[at] = value
            else:
                argv.insert(at, value)
        else:
            argv += [flag(f), value]
    if "--out" in argv and command != "demo" and draw(st.booleans()):
        argv[argv.index("--out") + 1] = draw(st.sampled_from([*ODD_PATHS, "{w}/res.json"]))
    if draw(st.integers(0, 4)) == 0:
        argv += ["--config", draw(st.sampled_from([*ODD_FILES, "{w}/wrong-type.toml", "{w}/group.toml"]))]
    return argv


def _world(w: Path) -> None:
    """A scratch tree: a tiny model, a corpus, records, result files, and files that are wrong on purpose."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    save_tiny_llama(LlamaForCausalLM(tiny_llama_config()).eval(), w / "model")
    (w / "corpus").mkdir()
    for i in range(2):
        (w / "corpus" / f"{i}.txt").write_text(" ".join(f"<{3 + j % 90}>" for j in range(400)))
    (w / "prose.txt").write_text(" ".join(f"word{i % 97} thing{i % 13} stuff{i % 7}" for i in range(3000)))
    (w / "records.jsonl").write_text('{"report": "<5> <6> <7> <8>", "summary": "<5>"}\n')
    (w / "binary.txt").write_bytes(bytes(range(256)) * 16)
    (w / "empty.txt").write_text("")
    (w / "broken.json").write_text("{not json")
    (w / "list.json").write_text("[1, 2]")
    (w / "wrong-type.toml").write_text("out = 5\n")
    (w / "group.toml").write_text("rope = 3\n")
    (w / "afile").write_text("a regular file")
    (w / "full").mkdir()
    (w / "full" / "keep.txt").write_text("precious")
    (w / "outs").mkdir()
    (w / "res.json").write_text('{"kind": "ppl"}\n')
    cell = {"length": 64, "stride": 64, "ppl": 9.0, "ci95": [8.0, 10.0], "documents": 1, "tokens": 64}
    model = {"name": "m", "method": "none", "factor": 1.0, "window": 64, "original_window": 64}
    (w / "ppl.json").write_text(
        json.dumps({"kind": "ppl", "model": model, "data": {"spec": "d"}, "lengths": [cell]})
    )
    (w / "dangling").symlink_to(w / "nowhere")
    (w / "loop").symlink_to(w / "loop")


def _listing(root: Path) -> list[tuple]:
    rows = []
    for p in sorted(root.rglob("*")):
        s = p.lstat()
        rows.append(
            (str(p.relative_to(root)), p.is_dir(), None if p.is_dir() else (s.st_size, s.st_mtime_ns))
        )
    return rows


def _debris(root: Path) -> list[str]:
    marks = (".tmp-", ".partial", ".old-", ".pruned-")
    return [str(p) for p in root.rglob("*") if any(m in p.name for m in marks)]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-pristine") / "w"
    root.mkdir()
    _world(root)
    return root


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_line_meets_the_contract(command, pristine, tmp_path, capfd, monkeypatch):
    assert set(BASE) == set(COMMANDS)  # a new command gets a base line here
    world = tmp_path / "w"
    shutil.copytree(pristine, world, symlinks=True)
    monkeypatch.chdir(world / "outs")  # relative paths (`.`, `..`, ``) land in the scratch tree
    monkeypatch.delenv("ROPESCALE_DEBUG", raising=False)
    count = iter(range(10**6))

    @settings(
        max_examples=EXAMPLES,
        derandomize=not LONG,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(argv=command_lines(command))
    def check(argv):
        paths = {
            "m": world / "model",
            "d": world / "corpus",
            "w": world,
            "o": world / "outs" / f"o{next(count)}",
        }
        line = [a.format(**paths) for a in argv]
        before = _listing(world)
        capfd.readouterr()
        code = main(line)
        out, err = capfd.readouterr()
        if os.environ.get("ROPESCALE_FUZZ_LOG"):  # one line per example: the exit code and the line
            with open(os.environ["ROPESCALE_FUZZ_LOG"], "a") as log:
                log.write(
                    json.dumps({"code": code, "argv": line, "error": err.strip()[-300:] if code else ""})
                    + "\n"
                )
        assert code in (0, 2), (line, code, err[-2000:])
        assert "Traceback" not in err, (line, err[-2000:])
        if code == 2:
            errors = [e for e in err.splitlines() if e.strip()]
            one = len(errors) == 1 and errors[0].startswith("ropescale") and "error: " in errors[0]
            assert one, (line, err[-2000:])  # `ropescale: error:`, or argparse's `ropescale CMD: error:`
            assert _listing(world) == before, line  # nothing written, moved or deleted
        else:
            assert _debris(world) == [], line
            for name in ("--out", "--figures"):
                if name in line:
                    target = Path(line[len(line) - 1 - line[::-1].index(name) + 1])
                    assert target.exists(), (line, out[-500:])
            os.chdir(tmp_path)  # the next example starts from the same tree
            shutil.rmtree(world)
            shutil.copytree(pristine, world, symlinks=True)
            os.chdir(world / "outs")

    check()
