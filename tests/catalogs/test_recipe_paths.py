"""The one rule for a relative path in a recipe, which every stage's recipe uses."""
from __future__ import annotations

from pathlib import Path

import pytest

from catalogs.recipes import resolve_path
from factory.recipe import load_recipe
from training.recipe import EvalRecipe, load_recipe as load_training_recipe


def test_beside_the_recipe_first_then_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipes, cwd = tmp_path / "recipes", tmp_path / "cwd"
    recipes.mkdir(), cwd.mkdir()
    monkeypatch.chdir(cwd)
    recipe = recipes / "r.yaml"
    (recipes / "both.txt").write_text("beside"), (cwd / "both.txt").write_text("cwd")
    (cwd / "here.txt").write_text("cwd")
    assert resolve_path("both.txt", recipe) == (recipes / "both.txt").resolve()
    assert resolve_path("here.txt", recipe) == (cwd / "here.txt").resolve()
    # Nowhere: beside the recipe, so that "not found" names the place the recipe means.
    assert resolve_path("missing.txt", recipe) == (recipes / "missing.txt").resolve()
    assert resolve_path("/abs/x", recipe) == Path("/abs/x")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_path("~/recipes/both.txt", recipe) == recipes / "both.txt"
    assert resolve_path("x", None) == Path("x")


def test_generate_and_eval_recipes_resolve_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bench.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    gen = tmp_path / "sub" / "g.yaml"
    gen.write_text("backend: {name: vllm, model: m}\n")
    ev = tmp_path / "sub" / "e.yaml"
    ev.write_text("backend: {name: vllm, model: m}\nbenchmarks: [{name: b, file: bench.jsonl}]\n")
    expected = (tmp_path / "sub" / "bench.jsonl").resolve()
    assert load_recipe(gen).resolve("bench.jsonl") == expected
    assert load_training_recipe(ev, EvalRecipe).resolve("bench.jsonl") == expected
