"""The package's floors (docs/design.md): imports point down, never up, never in a circle.

The graph is built with `ast` from src/ropescale, counting every import of ropescale's own modules as
written: top-level, function-local and under TYPE_CHECKING. A unit is a top-level package (`rope`,
`models`) or module (`cli`, `knobs`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ropescale"

# The floors, bottom first: a unit imports only units on lower floors (or itself). Written once, here.
FLOORS: list[set[str]] = [
    {"knobs", "outputs", "prompts"},  # ground: knob(), flags and checks; result files; prompt texts
    {"rope", "data", "report"},  # the rope spec and pure math; corpora and packing; tables and plots
    {"config"},  # dataclasses of knobs (pure)
    {"models"},  # load and scale transformers models
    {"train", "eval", "theory"},  # the libraries the commands compose
    {"commands"},  # one module per verb: run, format, typed result
    {"demo", "api"},  # experiments made of commands; the Python API over them
    {"cli"},  # argv in, text out: the only place that prints
    {"__main__", "__init__"},  # `python -m ropescale`; the package face
]
FLOOR = {unit: i for i, units in enumerate(FLOORS) for unit in units}

# Function-local imports of our own modules: only where they defer a heavy or optional dependency.
DEFERRED = {
    "cli.py": "each command's loader: `--help` must not import transformers",
    "api.py": "`import ropescale` must not import transformers",
    "eval/ruler.py": "ruler_local imports lm-eval (an optional extra)",
    "commands/ruler.py": "ruler_local imports lm-eval (an optional extra)",
}


def _unit(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported ropescale module as 'ropescale.a.b', line, whether inside a function) of one file."""
    package = ["ropescale", *path.relative_to(SRC).with_suffix("").parts][:-1]  # the file's package
    tree = ast.parse(path.read_text())
    local: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = [*base, *(node.module.split(".") if node.module else [])]
                if node.module is None:  # `from . import outputs`: each name is a module
                    names = [".".join([*module, a.name]) for a in node.names]
                else:
                    names = [".".join(module)]
            elif node.module and node.module.split(".")[0] == "ropescale":
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "ropescale"]
        out += [(name, node.lineno, id(node) in local) for name in names]
    return out


def _target_unit(module: str) -> str | None:
    """'ropescale.rope.spec' -> 'rope'; the package face itself ('ropescale') -> None."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    unit = parts[1]
    return unit if (SRC / unit).is_dir() or (SRC / f"{unit}.py").is_file() else None


def graph() -> dict[str, dict[str, list[str]]]:
    """{unit: {imported unit: ['file:line', ...]}} over src/ropescale."""
    edges: dict[str, dict[str, list[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        u = _unit(path) if path != SRC / "__init__.py" else "__init__"
        for module, line, _ in _imports(path):
            v = _target_unit(module)
            if v is not None and v != u:
                edges.setdefault(u, {}).setdefault(v, []).append(f"{path.relative_to(SRC)}:{line}")
    return edges


def cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_every_unit_has_a_floor():
    units = {_unit(p) for p in SRC.rglob("*.py") if p.parent != SRC or p.name != "__init__.py"}
    assert units - set(FLOOR) == set(), "add the new unit to FLOORS (and to docs/design.md)"


def test_no_cycle():
    assert cycles(graph()) == []


def test_imports_point_down():
    upward = [
        f"{where}: {u} (floor {FLOOR[u]}) imports {v} (floor {FLOOR[v]})"
        for u, targets in graph().items()
        for v, sites in targets.items()
        if FLOOR[v] >= FLOOR[u]
        for where in sites
    ]
    assert upward == []


def test_function_local_imports_only_defer_heavy_libraries():
    hidden = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in sorted(SRC.rglob("*.py"))
        for module, line, local in _imports(path)
        if local and path.relative_to(SRC).as_posix() not in DEFERRED
    ]
    assert hidden == []


@pytest.mark.parametrize(
    "edges, expect",
    [
        ({"a": {"b": ["x"]}, "b": {"c": ["x"]}}, []),
        ({"a": {"b": ["x"]}, "b": {"c": ["x"]}, "c": {"a": ["x"]}}, [["a", "b", "c"]]),
        (
            {"a": {"b": ["x"]}, "b": {"a": ["x"]}, "c": {"d": ["x"]}, "d": {"c": ["x"]}},
            [["a", "b"], ["c", "d"]],
        ),
    ],
)
def test_cycle_finder(edges, expect):
    assert sorted(cycles(edges)) == expect


def test_graph_sees_function_local_and_type_checking_imports(tmp_path, monkeypatch):
    """The parser counts the imports a reader sees, wherever they are written."""
    pkg = tmp_path / "ropescale"
    (pkg / "rope").mkdir(parents=True)
    (pkg / "config").mkdir()
    (pkg / "outputs.py").write_text("def f():\n    from . import cli\n")
    (pkg / "cli.py").write_text("")
    (pkg / "rope" / "spec.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..config import X\n"
    )
    (pkg / "config" / "__init__.py").write_text("from ..rope.spec import Y\n")
    monkeypatch.setitem(globals(), "SRC", pkg)
    edges = graph()
    assert edges == {
        "outputs": {"cli": ["outputs.py:2"]},
        "rope": {"config": ["rope/spec.py:3"]},
        "config": {"rope": ["config/__init__.py:1"]},
    }
    assert cycles(edges) == [["config", "rope"]]
