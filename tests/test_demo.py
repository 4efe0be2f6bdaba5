"""`r1f demo`, the README's main job, end to end: every stage must succeed, or this test fails."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _r1f(*args: str, catalog: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "r1f", *args, "--catalog", str(catalog)], capture_output=True,
                          text=True, check=True, env={**os.environ, "COLUMNS": "200"})
    return proc.stdout


def test_demo_runs_every_stage_and_reruns_adding_nothing(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("R1F_CATALOG", None)
    first = subprocess.run([sys.executable, "-m", "r1f", "demo", "--out", str(out)], capture_output=True,
                           text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    for stage in ("ingest", "generate", "judge", "filter", "release", "export", "show", "stats"):
        assert f"$ r1f {stage}" in first.stdout, f"the demo did not run `r1f {stage}`"
    catalog = out / "catalog"
    stats = json.loads(_r1f("stats", "--json", catalog=catalog))
    assert stats["runs"] >= 4 and stats["judged_generations"] > 0 and stats["filtered_generations"] > 0
    release = json.loads(_r1f("sql", "SELECT name, members FROM releases", "--json", catalog=catalog))
    assert release[0]["name"] == "demo-r1-mix" and release[0]["members"] > 0
    drops = json.loads(_r1f("sql", "SELECT DISTINCT filter FROM filter_decisions WHERE NOT passed", "--json",
                            catalog=catalog))
    assert {"language_mixing", "decontamination", "code_blocks"} <= {d["filter"] for d in drops}
    assert (out / "demo-r1-mix" / "manifest.json").exists()

    before = _r1f("sql", "SELECT (SELECT count(*) FROM generation_meta), (SELECT count(*) FROM verdicts), "
                         "(SELECT count(*) FROM filter_decisions)", "--csv", catalog=catalog)
    again = subprocess.run([sys.executable, "-m", "r1f", "demo", "--out", str(out)], capture_output=True,
                           text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-4000:]
    after = _r1f("sql", "SELECT (SELECT count(*) FROM generation_meta), (SELECT count(*) FROM verdicts), "
                        "(SELECT count(*) FROM filter_decisions)", "--csv", catalog=catalog)
    assert before == after
