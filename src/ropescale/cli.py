"""The only place that reads argv and prints. One entry point; `COMMANDS` maps each subcommand to its
config dataclass and a loader of its ``run_*`` and ``format_*`` (commands/, one module per verb).

Each command is a config dataclass (config/), a ``run_*(cfg) -> result`` (a TypedDict) and a
``format_*(result) -> str``.
Flags are generated from the dataclass fields: a field's ``help`` is its --help text, nested dataclasses
are flattened (so ``RopeScaling.factor`` is ``--factor``; config/flat.py holds the mapping) and headed
groups in --help, bools get ``--x/--no-x``, lists are comma separated. Defaults come in layers: the
fields', the command's shipped recipe (``Command.recipe``), ``--config FILE.json|.toml|RECIPE``, and
the flags win. A user error (ValueError and friends) prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from . import config as C
from .config.flat import default, fields, flag, has_default, knobs, nest, read, recipe_names
from .config.flat import keys as flat_keys


@dataclass(frozen=True)
class Command:
    config: type
    load: Callable[[], tuple[Callable[[Any], Any], Callable[[Any], str]]]  # -> (run, format)
    help: str
    recipe: str | None = None  # a shipped recipe (config/flat.py) whose values are this command's defaults


# One loader per command: its module is imported when the command runs, not for `--help` (most of them
# import transformers, about a second); "go to definition" on a name below leads to the command's code.
def _extend():
    from .commands.extend import format_extend, run_extend

    return run_extend, format_extend


def _inspect():
    from .commands.inspect import format_inspect, run_inspect

    return run_inspect, format_inspect


def _theory():
    from .commands.theory import format_theory, run_theory

    return run_theory, format_theory


def _pretrain():
    from .commands.train import format_train, run_pretrain

    return run_pretrain, format_train


def _train():
    from .commands.train import format_train, run_train

    return run_train, format_train


def _ppl():
    from .commands.ppl import format_ppl, run_ppl

    return run_ppl, format_ppl


def _passkey():
    from .commands.passkey import format_passkey, run_passkey

    return run_passkey, format_passkey


def _summarize():
    from .commands.summarize import format_summarize, run_summarize

    return run_summarize, format_summarize


def _harness():
    from .commands.harness import format_harness, run_harness

    return run_harness, format_harness


def _ruler():
    from .commands.ruler import format_ruler, run_ruler

    return run_ruler, format_ruler


def _demo():
    from .demo import format_demo, run_demo

    return run_demo, format_demo


def _report():
    from .commands.report import format_report, run_report

    return run_report, format_report


COMMANDS: dict[str, Command] = {
    "extend": Command(
        C.ExtendConfig,
        _extend,
        "write a checkpoint whose config carries the RoPE scaling (stock transformers loads it scaled)",
    ),
    "inspect": Command(
        C.InspectConfig,
        _inspect,
        "show a model's RoPE scaling per dimension and check the live rotary module matches its config",
    ),
    "theory": Command(
        C.TheoryConfig,
        _theory,
        "the paper's interpolation vs extrapolation bounds measured on a model, and its Figures 2 and 5",
    ),
    "pretrain": Command(
        C.PretrainConfig,
        _pretrain,
        "train the built-in tiny LLaMA and its BPE tokenizer from scratch at a short window (CPU, minutes)",
        recipe="pretrain",
    ),
    "train": Command(
        C.TrainConfig,
        _train,
        "fine-tune a model on long sequences with scaled RoPE (the paper's recipe; torchrun for FSDP)",
    ),
    # evaluation (eval/, report/)
    "eval ppl": Command(
        C.PplConfig,
        _ppl,
        "sliding-window perplexity (Press et al., stride S) at one or more window lengths, with bootstrap confidence intervals",
    ),
    "eval passkey": Command(
        C.PasskeyConfig,
        _passkey,
        "passkey retrieval (the paper's prompt): accuracy by distance k, effective window k_max, depth grid",
    ),
    "eval summarize": Command(
        C.SummarizeConfig,
        _summarize,
        "long-document summarization with the paper's prompt and sampling, ROUGE-1/2/L vs references",
    ),
    "eval harness": Command(
        C.HarnessConfig,
        _harness,
        "short-context regression: perplexity in the original window (and lm-evaluation-harness tasks) before vs after scaling",
    ),
    "eval ruler": Command(
        C.RulerConfig,
        _ruler,
        "RULER (needle-in-a-haystack variants, variable tracking, word extraction) through lm-evaluation-harness: score per task and length, effective length",
    ),
    "demo": Command(
        C.DemoConfig,
        _demo,
        "the paper's findings in miniature: tiny model extended 8x (PI vs direct fine-tuning), or SmolLM2 across methods",
    ),
    "report": Command(
        C.ReportConfig,
        _report,
        "markdown tables in the paper's layout and PNG plots from eval result files",
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


# ----------------------------------------------------------------------------- dataclass -> flags


def _list_parser(item: type, name: str):
    def parse(text: str) -> list:
        try:
            return [item(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {item.__name__} values, got {text!r}"
            ) from None

    parse.__name__ = f"list of {item.__name__}"
    return parse


def _add_fields(parser: Any, cls: type, prefix: str, optional_group: bool, top: Any = None) -> None:
    """Add the flags of `cls`'s fields to `parser`; a group's flags go under its own heading in --help."""
    top = top or parser
    for f, tp, optional in fields(cls):
        dest = prefix + f.name
        if dataclasses.is_dataclass(tp):
            heading = top.add_argument_group(f.metadata.get("help") or f.name.replace("_", " "))
            _add_fields(heading, tp, dest + ".", optional_group or optional, top)
            continue
        kwargs: dict[str, Any] = {"help": f.metadata.get("help", ""), "dest": dest}
        if optional_group:
            kwargs["default"] = None  # "not given": the nested config stays None unless a flag is used
        elif has_default(f):
            kwargs["default"] = default(f)
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (list, tuple):
            item = typing.get_args(tp)[0]
            kwargs["type"] = _list_parser(item, f.name)
            kwargs["metavar"] = "X,Y,..."
        elif origin is typing.Literal:
            kwargs["choices"] = typing.get_args(tp)
        else:
            kwargs["type"] = tp if tp in (int, float, str, Path) else str
            # the valid values in --help (`--method {none,linear,...}`); __post_init__ still validates them,
            # so a value from a --config file gets the same error as one from a flag
            choices = f.metadata.get("choices")
            kwargs["metavar"] = "{" + ",".join(choices) + "}" if choices else _metavar(f)
        if f.metadata.get("positional"):
            kwargs.pop("dest")
            kwargs["nargs"] = "?"  # required positionals are checked after --config and --NAME (see `parse`)
            if origin in (list, tuple):  # a positional list takes one or more arguments: `report A B C`
                kwargs.update(nargs="+", type=typing.get_args(tp)[0])
                kwargs.pop("metavar")
            else:  # `--model X` still works: an alias of the positional MODEL
                alias = {k: v for k, v in kwargs.items() if k not in ("nargs", "default")}
                alias.update(dest=ALIAS + dest, default=None, help=f"same as {f.name.upper()}")
                parser.add_argument("--" + f.name.replace("_", "-"), **alias)
            kwargs["metavar"] = f.name.upper()
            parser.add_argument(dest, **kwargs)
        else:
            # required flags are checked after --config files are merged (see `parse`)
            parser.add_argument(flag(f), **kwargs)


ALIAS = "_alias."  # argparse dest prefix of a positional's --NAME spelling


def _metavar(f: dataclasses.Field) -> str:
    """`--device DEVICE`, not the nested dest `LOAD.DEVICE`."""
    return flag(f).lstrip("-").replace("-", "_").upper()


def _merge_aliases(args: argparse.Namespace, strict: bool) -> str | None:
    """Move each `--NAME X` into its positional NAME. With `strict` (the command line alone), giving both
    is an error: returns its message."""
    for key in [k for k in vars(args) if k.startswith(ALIAS)]:
        value, dest = vars(args).pop(key), key[len(ALIAS) :]
        if value is None:
            continue
        if strict and getattr(args, dest, None) is not None:
            name = dest.rsplit(".", 1)[-1]
            return f"{name.upper()} given twice (positional {getattr(args, dest)!r} and --{name} {value!r}); pass one"
        setattr(args, dest, value)
    return None


# ----------------------------------------------------------------------------- parser and main


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's subparser, by command name."""
    parser = _Parser(prog="ropescale", description="Extend the context window of RoPE language models.")
    parser.add_argument("--version", action="version", version=f"ropescale {version('ropescale')}")
    groups = {"": parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)}
    leaves: dict[str, argparse.ArgumentParser] = {}
    for name, cmd in COMMANDS.items():
        *parents, leaf = name.split()
        holder = ""
        for part in parents:  # "eval ppl" -> `ropescale eval ppl`
            key = f"{holder} {part}".strip()
            if key not in groups:
                group = groups[holder].add_parser(part, help=f"{part} commands")
                groups[key] = group.add_subparsers(dest=f"_{key}", metavar="COMMAND", parser_class=_Parser)
                groups[key].required = True
            holder = key
        usage = f"%(prog)s {_usage(cmd.config)}"
        sub = groups[holder].add_parser(leaf, help=cmd.help, description=cmd.help, usage=usage)
        sub.add_argument(
            "--config",
            metavar="FILE",
            help="JSON or TOML file of defaults (flags override it), or a shipped recipe's name: "
            + ", ".join(recipe_names()),
        )
        _add_fields(sub, cmd.config, "", False)
        sub.set_defaults(_command=name)
        leaves[name] = sub
    return parser, leaves


def _usage(cls: type) -> str:
    """`MODEL --out OUT [options]`: the positionals and required flags, the rest listed by --help."""
    words = []
    for f, tp, _ in fields(cls):
        required = not has_default(f)
        if dataclasses.is_dataclass(tp) or not (required or f.metadata.get("positional")):
            continue
        name = f.name.upper()
        if not f.metadata.get("positional"):
            words.append(f"{flag(f)} {_metavar(f)}")
        elif typing.get_origin(tp) in (list, tuple):
            words.insert(0, f"{name} [{name} ...]")
        else:
            words.insert(0, name if required else f"[{name}]")
    return " ".join([*words, "[options]"])


def parse(argv: list[str] | None = None) -> tuple[str, Any]:
    """argv -> (command name, validated config). Raises ValueError for invalid values."""
    parser, leaves = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_command", None):
        parser.print_help(sys.stderr)
        raise SystemExit(2)
    cmd = COMMANDS[args._command]
    twice = _merge_aliases(args, strict=True)
    if twice:
        leaves[args._command].error(twice)
    layers = _layer_defaults(leaves[args._command], cmd, args.config)
    if layers:
        args = parser.parse_args(argv)
        _merge_aliases(args, strict=False)  # a --NAME flag wins over the file, like every flag
    missing = [name for dest, name in _required(cmd.config).items() if getattr(args, dest, None) is None]
    if missing:
        leaves[args._command].error(f"the following arguments are required: {', '.join(missing)}")
    cfg = nest(cmd.config, vars(args))
    _check_layers(cmd, args, layers)
    return args._command, cfg


def _layer_defaults(
    leaf: argparse.ArgumentParser, cmd: Command, config: str | None
) -> list[tuple[str, dict]]:
    """Defaults in layers over the fields' own: the command's shipped recipe, then the --config file (flags
    given on the command line win over all of them). Each file's values are converted and checked like the
    flags' text (`_from_file`). Returns each layer's name and {dest: value}."""
    layers = [name for name in (cmd.recipe, config) if name]
    dests = flat_keys(cmd.config)
    actions = {a.dest: a for a in leaf._actions}
    applied = []
    for name in layers:
        values = read(name)
        unknown = sorted(k for k in values if k not in dests)
        if unknown:
            raise ValueError(f"--config {name}: unknown keys {unknown}")
        converted = {dests[k]: _from_file(name, k, v, actions.get(dests[k])) for k, v in values.items()}
        leaf.set_defaults(**converted)
        applied.append((name, converted))
    return applied


def _from_file(name: str, key: str, value: Any, action: argparse.Action | None) -> Any:
    """A --config value converted as its flag's text is (`factor = "2"` and `factor = 2` alike), or a
    ValueError naming the file and the key: `out = 5`, `rope = 3`, `steps = 1.5`, `lengths = true`."""
    if (
        action is None and value is not None
    ):  # a group's own name (null: the group is unset): its knobs are set one by one (a [rope] table, or factor = 2)
        raise ValueError(
            f"--config {name}: {key} is a group of knobs; set them one by one ({key}.NAME = ...)"
        )
    if value is None:
        return None
    conv = action.type
    try:
        if isinstance(action, argparse.BooleanOptionalAction):
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if isinstance(value, bool):
            raise ValueError("expected a value, not true/false")
        if action.nargs == "+":  # a positional list (report's RESULTS)
            return [_scalar(conv, v) for v in (value if isinstance(value, list) else [value])]
        if getattr(conv, "__name__", "").startswith("list of"):  # comma-separated on the command line
            items = value if isinstance(value, list) else [value]
            if any(isinstance(v, (bool, list, dict)) for v in items):
                raise ValueError(f"expected a {conv.__name__}")
            return conv(",".join(str(v) for v in items))
        value = _scalar(conv, value)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
        raise ValueError(f"--config {name}: {key} = {value!r}: {err}") from None
    if action.choices is not None and value not in action.choices:
        raise ValueError(
            f"--config {name}: {key} must be one of {', '.join(map(str, action.choices))}, got {value!r}"
        )
    return value


def _scalar(conv: Any, value: Any) -> Any:
    if isinstance(value, (bool, list, dict)):
        raise ValueError(f"expected a single {getattr(conv, '__name__', 'value')}")
    if conv in (str, Path) or conv is None:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value if conv is None else conv(value)
    if conv is int and isinstance(value, float):
        raise ValueError("expected an integer")
    return conv(value)


def _check_layers(cmd: Command, args: argparse.Namespace, layers: list[tuple[str, dict]]) -> None:
    """A file's values are checked even where a flag overrides them: the config is built once more with the
    file's values in place of those flags, and its error names the file."""
    given = vars(args)
    for name, values in layers:
        if all(given.get(dest) == v for dest, v in values.items()):
            continue  # nothing overridden: the real config checked these values already
        try:
            nest(cmd.config, {**given, **values})
        except (ValueError, TypeError) as err:
            raise ValueError(f"--config {name}: {str(err).strip().splitlines()[0]}") from None


def defaults(command: str) -> dict[str, Any]:
    """{dotted path: default} of a command's knobs as its parser has them (its recipe applied)."""
    cmd = COMMANDS[command]
    leaf = build_parser()[1][command]
    _layer_defaults(leaf, cmd, None)
    return {path: leaf.get_default(path) for path, f in knobs(cmd.config).items() if has_default(f)}


def _required(cls: type, prefix: str = "") -> dict[str, str]:
    """{dest: flag} of the fields without a default (nested dataclasses included)."""
    out: dict[str, str] = {}
    for f, tp, optional in fields(cls):
        if dataclasses.is_dataclass(tp):
            if not optional:
                out.update(_required(tp, prefix + f.name + "."))
        elif not has_default(f):
            out[prefix + f.name] = f.name.upper() if f.metadata.get("positional") else flag(f)
    return out


def _quiet_libraries() -> None:
    """transformers' warnings, the hub's retry messages and the libraries' progress bars (weight loading,
    dataset reading) are mostly noise for our users, and would make an error more than one line on stderr
    (ROPESCALE_DEBUG=1 keeps them). Our own progress bars stay."""
    if not os.environ.get("ROPESCALE_DEBUG"):
        import logging

        from huggingface_hub.utils import disable_progress_bars
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        disable_progress_bars()
        for name in ("huggingface_hub", "datasets", "filelock", "urllib3", "lm_eval", "lm-eval"):
            logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            name, cfg = parse(argv)
        except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), already printed
            return int(exit_.code or 0)
        _quiet_libraries()
        run, format_ = COMMANDS[name].load()
        text = format_(run(cfg))
    except KeyboardInterrupt:
        print("ropescale: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:  # user input, and files the user pointed at
        if os.environ.get("ROPESCALE_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"ropescale: error: {message}", file=sys.stderr)
        return 2
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
