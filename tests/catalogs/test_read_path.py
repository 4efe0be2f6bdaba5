"""The read commands import only what they use: no torch, vLLM, transformers, polars, pyarrow or fastText on
the paths of `r1f --help`, `show`, `sql` and `stats` (their speed is measured in benchmarks/bench_show.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.catalogs.helpers import r1f, write_generations

HEAVY = ("torch", "vllm", "transformers", "polars", "pyarrow", "fasttext", "datasets", "pandas", "pydantic")


def _imported(args: list[str], cwd: Path) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "r1f", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "r1f" in names and "typer" in names  # the parse sees the imports
    return names


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("read-path")
    write_generations(tmp / "gens.jsonl", n_prompts=3)
    r1f("ingest", str(tmp / "gens.jsonl"), "--generations", "--model", "m", "--source", "s",
        catalog=tmp / "cat")
    gid = r1f("sql", "SELECT generation_id FROM generation_meta LIMIT 1", "--csv",
              catalog=tmp / "cat").stdout.splitlines()[-1]
    return tmp / "cat", gid


@pytest.mark.parametrize("command", ["--help", "show", "sql", "stats"])
def test_read_commands_import_nothing_heavy(command: str, catalog: tuple[Path, str], tmp_path: Path) -> None:
    cat, gid = catalog
    args = {"--help": ["--help"], "show": ["show", gid, "--catalog", str(cat)],
            "sql": ["sql", "SELECT count(*) FROM verdicts", "--catalog", str(cat)],
            "stats": ["stats", "--catalog", str(cat)]}[command]
    heavy = sorted(_imported(args, tmp_path) & set(HEAVY))
    assert not heavy, f"`r1f {command}` imports {heavy}; import them inside the commands that need them"
