"""The transformers backend as recipes name it: `backend: {name: transformers}` validates, drives `r1f eval` on the
tiny model end to end, and a name no backend has is a recipe error naming the file and line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from backends import BACKENDS
from backends.config import BackendConfig
from catalogs.errors import RecipeError
from factory.recipe import load_recipe
from r1f.cli import app

BENCH = Path(__file__).resolve().parents[1] / "training" / "data" / "math500_3.jsonl"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_recipe_names_match_the_registry() -> None:
    assert set(get_args(BackendConfig.model_fields["name"].annotation)) == set(BACKENDS)


def test_transformers_recipe_validates(tmp_path: Path, tiny_model_dir: Path) -> None:
    r = load_recipe(write(tmp_path / "r.yaml", f"backend:\n  name: transformers\n  model: {tiny_model_dir}\n"
                                               "  max_model_len: 64\n  engine_kwargs: {batch_size: 4}\n"))
    assert r.backend.name == "transformers" and r.backend.in_process
    from backends.config import backend_kwargs

    assert backend_kwargs(r.backend) == {"model": str(tiny_model_dir), "max_model_len": 64, "batch_size": 4}


def test_unknown_backend_and_foreign_setting_are_recipe_errors(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.yaml", "sampling: {max_tokens: 8}\nbackend:\n  name: transformer\n  model: m\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    assert f"{p}:3" in str(e.value) and "backend.name" in str(e.value) and "'transformers'" in str(e.value)
    p = write(tmp_path / "vllm-only.yaml", "backend: {name: transformers, model: m, kv_cache_gb: 1}\n")
    with pytest.raises(RecipeError, match=r"backend\.kv_cache_gb is not a setting of the transformers backend"):
        load_recipe(p)


def test_missing_local_model_fails_before_generation(tmp_path: Path) -> None:
    from factory.recipe import check_model_path

    r = load_recipe(write(tmp_path / "r.yaml", "backend: {name: transformers, model: /not/here}\n"))
    with pytest.raises(RecipeError, match="model path '/not/here' does not exist"):
        check_model_path(r)


def test_r1f_eval_on_the_transformers_backend(tmp_path: Path, tiny_model_dir: Path) -> None:
    recipe = write(tmp_path / "eval.yaml", f"""
name: tiny-hf
backend: {{name: transformers, model: {tiny_model_dir}, engine_kwargs: {{batch_size: 4}}}}
benchmarks:
  - {{name: math500, file: {BENCH}}}
k: 2
sampling: {{max_tokens: 8}}
""")
    catalog = tmp_path / "catalog"
    first = CliRunner().invoke(app, ["eval", str(recipe), "--json", "--catalog", str(catalog)])
    assert first.exit_code == 0, first.output
    [score] = json.loads(first.stdout)
    assert score["benchmark"] == "bench/math500" and score["problems"] == 3 and score["k"] == 2

    def query(q: str) -> list[dict]:
        res = CliRunner().invoke(app, ["sql", q, "--json", "--catalog", str(catalog)])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    assert query("SELECT backend, kind FROM runs") == [{"backend": "transformers", "kind": "eval"}]
    gens = query("SELECT prompt_tokens, completion_tokens FROM generation_meta")
    assert len(gens) == 6 and all(g["prompt_tokens"] > 0 and 0 < g["completion_tokens"] <= 8 for g in gens)
    # The same eval again finds every sample there and adds nothing.
    again = CliRunner().invoke(app, ["eval", str(recipe), "--json", "--catalog", str(catalog)])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == [score]
    assert len(query("SELECT generation_id FROM generation_meta")) == 6


def test_structured_output_is_refused_not_ignored(tiny_model_dir: Path) -> None:
    from backends import get_backend
    from backends.base import ChatRequest

    backend = get_backend("transformers", model=str(tiny_model_dir))
    try:
        with pytest.raises(ValueError, match="no structured output"):
            backend.generate([ChatRequest([{"role": "user", "content": "hi"}], json_schema={"type": "object"})])
    finally:
        backend.close()
