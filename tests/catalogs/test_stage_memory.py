"""catalogs.stage.keep_freed_memory: what a filter worker process sets before polars loads, in real processes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import os, sys\n"
         "{before}\n"
         "from catalogs.stage import keep_freed_memory\n"
         "keep_freed_memory()\n"
         "import polars\n"
         "print(os.environ['_RJEM_MALLOC_CONF'])\n")
POLARS_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"


def _conf_seen(inherited: str | None, before: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if inherited is not None:
        env["_RJEM_MALLOC_CONF"] = inherited
    out = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


@pytest.mark.parametrize("inherited", [None, POLARS_DEFAULT, f"{POLARS_DEFAULT},{POLARS_DEFAULT}"])
def test_a_fresh_worker_keeps_polars_pages_unless_told_otherwise(inherited: str | None) -> None:
    # polars puts its default first and the environment's value after it: the last option wins
    assert _conf_seen(inherited).endswith(",dirty_decay_ms:5000,muzzy_decay_ms:5000")


def test_the_users_jemalloc_options_and_an_already_loaded_polars_are_left_alone() -> None:
    assert _conf_seen(f"{POLARS_DEFAULT},narenas:2").endswith("narenas:2")
    assert "5000" not in _conf_seen(None, before="import polars")
