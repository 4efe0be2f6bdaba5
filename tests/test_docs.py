"""The README and the recipes' comments tell users what to type: every `r1f` command they show must exist,
with options it really takes and repository files that really exist; and the CPU recipe's walk-through runs
here, word for word.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from tests.helpers import SINGLE_PROCESS_ENGINE

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "recipes").glob("*.yaml")), *sorted(ROOT.glob("*/README.md"))]


def _shown_commands() -> list[tuple[str, str]]:
    """(where, command line) for every `r1f …` line in a README code block or a recipe comment."""
    found = []
    for doc in DOCS:
        in_block = doc.suffix != ".md"
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if doc.suffix == ".md" and line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            text = line.lstrip("# \t") if doc.suffix != ".md" else line.strip()
            if in_block and text.startswith("r1f "):
                command = text.split("   #")[0].split("  #")[0].strip()
                found.append((f"{doc.relative_to(ROOT)}:{n}", command))
    return found


SHOWN = _shown_commands()


def _click_command(words: list[str]) -> tuple[Any, list[str]]:
    """The click command a command line reaches (typer ships its own click, so groups are told by their
    `commands`)."""
    from r1f.cli import app

    command = typer.main.get_command(app)
    rest = words[1:]
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def test_docs_show_commands() -> None:
    assert len(SHOWN) >= 10, SHOWN  # the parser must keep finding them


@pytest.mark.parametrize(("where", "line"), SHOWN, ids=[w for w, _ in SHOWN])
def test_shown_command_exists_with_its_options_and_files(where: str, line: str) -> None:
    words = shlex.split(line)
    command, rest = _click_command(words)
    assert not hasattr(command, "commands"), f"{where}: `{line}`: no such r1f command"
    options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"{where}: `{line}`: {word} is not an option of this command"
        elif re.match(r"^(recipes|r1f|tests|benchmarks)/", word):
            assert (ROOT / word).exists(), f"{where}: `{line}`: {word} does not exist in the repository"


def test_cpu_recipe_walkthrough_runs_as_written(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The comment at the top of recipes/generate_cpu_tiny.yaml, run line by line from a repository-shaped
    folder (the tiny model is the tests' own, built once; the recipe is the shipped file)."""
    recipe = ROOT / "recipes" / "generate_cpu_tiny.yaml"
    lines = [line[1:].strip().split("   #")[0].strip() for line in recipe.read_text().splitlines()
             if line.startswith("#   ")]
    assert lines[0].startswith("python -c") and lines[1].startswith("r1f ingest"), lines
    (tmp_path / "recipes").mkdir()
    shutil.copy(recipe, tmp_path / "recipes" / recipe.name)
    (tmp_path / "r1f").symlink_to(ROOT / "r1f")
    (tmp_path / "tiny-model").symlink_to(tiny_model_dir)  # what the first line builds
    env = {**os.environ, "R1F_CATALOG": str(tmp_path / "catalog"), "COLUMNS": "200", **SINGLE_PROCESS_ENGINE}
    outputs = []
    for line in lines[1:]:
        words = shlex.split(line)
        proc = subprocess.run([sys.executable, "-m", "r1f", *words[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"`{line}` failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout + proc.stderr)
    assert "plan" in outputs[1].lower()  # the dry run prints the plan
    stats = subprocess.run([sys.executable, "-m", "r1f", "sql", "SELECT count(*) AS n FROM generation_meta",
                            "--csv"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert int(stats.stdout.splitlines()[-1]) >= 8 * 2  # 8 prompts, 2 accepted samples each (no judges)
