"""A pipeline's `reward` stage: planned, run (a tiny reward model trained by trl's RewardTrainer and recorded), skipped
on a rerun, planned again when its pairs file changes; a bad reward recipe refused before anything runs."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from catalogs import Catalog
from catalogs.errors import RecipeError
from pipelines.recipe import check_pipeline
from pipelines.run import plan, run_pipeline
from tests.training.test_reward import pairs_rows, reward_recipe, write_pairs

PIPELINE = """name: rm
stages:
  - {name: rm-helpful, kind: reward, recipe: rm.yaml}
"""


def _folder(tmp_path: Path, model: Path) -> Path:
    write_pairs(tmp_path / "pairs.jsonl", pairs_rows(16))
    reward_recipe(tmp_path, model, steps=2)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    return tmp_path / "pipeline.yaml"


def _actions(catalog: Catalog | None, pipeline: Path) -> list[tuple[str, str, str, str]]:
    return [(s.name, s.kind, s.action, s.why.split(" (")[0]) for s in plan(catalog, pipeline)[1]]


def test_a_reward_stage_plans_runs_and_is_skipped_until_its_pairs_change(tmp_path: Path, tiny_model_dir: Path) -> None:
    pipeline = _folder(tmp_path, tiny_model_dir)
    assert _actions(None, pipeline) == [("rm-helpful", "reward", "run", "never ran")]  # the dry run's plan

    catalog = Catalog(tmp_path / "cat")
    first = run_pipeline(catalog, pipeline)
    out = first["outputs"]["rm-helpful"]
    assert first["status"] == "done" and out["output_dir"] == str((tmp_path / "rm-out").resolve())
    assert out["metrics"]["global_step"] == 2 and "curve" not in out["metrics"] and "log_history" not in out
    weights = tmp_path / "rm-out" / "model.safetensors"
    written = weights.stat().st_mtime_ns

    assert _actions(catalog, pipeline) == [("rm-helpful", "reward", "skip", "done, unchanged")]
    again = run_pipeline(catalog, pipeline)
    assert again["outputs"] == {} and weights.stat().st_mtime_ns == written
    con = duckdb.connect(str(tmp_path / "cat" / "catalog.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT kind, status, metrics FROM trainings").fetchall()
    finally:
        con.close()
    assert [(k, s) for k, s, _ in rows] == [("reward", "finished")]
    assert len(json.loads(rows[0][2])["curve"]) == 2  # the per-step curve stays in the catalog

    write_pairs(tmp_path / "pairs.jsonl", pairs_rows(17))  # one pair more
    assert _actions(catalog, pipeline) == [("rm-helpful", "reward", "run", "inputs changed")]


def test_a_bad_reward_recipe_is_refused_before_anything_runs(tmp_path: Path, tiny_model_dir: Path) -> None:
    pipeline = _folder(tmp_path, tiny_model_dir)
    reward_recipe(tmp_path, tiny_model_dir, trl="  max_step: 2\n")
    with pytest.raises(RecipeError, match=r"rm\.yaml:15: trl\.max_step: unknown key; did you mean max_steps\?"):
        check_pipeline(pipeline)
    reward_recipe(tmp_path, tmp_path / "runs" / "base")
    with pytest.raises(RecipeError, match=r"stages\[0\]\.recipe: model '.*runs/base' is no earlier stage's output_dir"):
        check_pipeline(pipeline)
