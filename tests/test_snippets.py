"""The snippets in docs/api.md and docs/quickstart.md (pasted into the README) run as written, on the tiny model."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _block(page: str, language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", (ROOT / "docs" / page).read_text(), re.S)
    assert len(blocks) == 1, f"docs/{page}: expected one ```{language} block"
    return blocks[0]


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def test_api_snippet(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _block("api.md", "python")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ppls, k_max = result.stdout.strip().rsplit("] ", 1)
    ppl = json.loads((tmp_path / "runs/api/pi2/config.json").read_text())
    assert ppl["rope_parameters"]["rope_type"] == "linear" and ppl["rope_parameters"]["factor"] == 2.0
    values = [float(x) for x in ppls.strip("[").split(",")]
    assert len(values) == 2 and all(v > 1 for v in values)
    assert k_max == "None" or 0 <= int(k_max) <= 512


def test_quickstart_commands(tmp_path, monkeypatch, capsys):
    """Each line of the quickstart, with `ropescale` this checkout's CLI and MODEL the shipped tiny model.
    bash runs the block as written with `ropescale` recording its arguments; the commands then run in this
    process, in order (five fresh interpreters importing torch and transformers would cost ~40 s)."""
    from ropescale import TINY_MODEL, cli

    prelude = "ropescale() { printf '%q ' \"$@\" >> commands.txt; echo >> commands.txt; }\nset -e\n"
    script = prelude + _block("quickstart.md", "sh")
    env = dict(_env(), MODEL=TINY_MODEL)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    commands = [shlex.split(line) for line in (tmp_path / "commands.txt").read_text().splitlines()]
    assert [c[:1] for c in commands] == [["inspect"], ["extend"], ["eval"], ["eval"], ["report"]]
    assert commands[0] == ["inspect", TINY_MODEL]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for argv in commands:
        assert cli.main(argv) == 0, (argv, capsys.readouterr().err[-2000:])
    ppl = json.loads((tmp_path / "runs/qs/ppl.json").read_text())
    assert [r["length"] for r in ppl["lengths"]] == [256, 512] and ppl["model"]["method"] == "linear"
    passkey = json.loads((tmp_path / "runs/qs/passkey.json").read_text())
    assert passkey["model"]["window"] == 512
    assert (tmp_path / "runs/qs/report/report.md").is_file()


def test_readme_carries_the_tested_snippets_and_stays_short():
    """The README's quickstart and API blocks are the docs' (which the tests above run), its links resolve,
    and it stays a page a newcomer reads (<= 15 KB)."""
    readme = (ROOT / "README.md").read_text()
    assert f"```python\n{_block('api.md', 'python')}```" in readme
    assert f"```sh\n{_block('quickstart.md', 'sh')}```" in readme
    assert len(readme.encode()) <= 15_000
    for target in re.findall(r"\]\(((?:docs|bench|src)/[^)#\s]+)\)", readme):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
    for target in re.findall(r"make ([a-z-]+)", readme):
        assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.M), (
            f"make {target}: no such target"
        )
