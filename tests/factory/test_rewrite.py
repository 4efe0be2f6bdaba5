"""The `rewrite` stage: R1-Zero-style generations reformatted into the readable pattern by a declared rewriter, as
new generations that name their parent; run through `r1f run` (rewrite, then the judges), rerun adding nothing,
shown with its lineage by `r1f show`; bad recipes refused naming the file, line and field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalogs import Catalog
from catalogs.errors import RecipeError
from factory.rewrite import compose, load_rewrite_recipe, readable, rewrite_catalog
from pipelines.run import run_pipeline
from tests.catalogs.helpers import r1f

PIPELINE = """name: rw
stages:
  - {name: ingest, kind: ingest, args: {source: zero.jsonl, generations: true, model: r1-zero, domain: math}}
  - {name: rewrite, kind: rewrite, recipe: rewrite.yaml}
  - {name: judge, kind: judge, recipe: judge.yaml}
"""
REWRITES = "run_id IN (SELECT run_id FROM runs WHERE kind = 'rewrite')"


def _rows() -> list[dict]:
    """R1-Zero outputs: right, wrong, one without a box, one without reasoning."""
    rows = []
    for i in range(4):
        given = i + 1 if i != 1 else 99
        rows.append({"problem": f"{i}+1", "answer": str(i + 1),
                     "response": f"<think>{i}+1={given}</think> <answer>\\boxed{{{given}}}</answer>"})
    rows.append({"problem": "7+1", "answer": "8", "response": "<think>7+1=8</think> <answer>8</answer>"})
    rows.append({"problem": "8+1", "answer": "9", "response": "<answer>\\boxed{9}</answer>"})
    return rows


def _folder(tmp_path: Path, rewriter: str = "readable", where: str = "run_id IN (SELECT run_id FROM runs WHERE "
                                                                      "model = 'r1-zero')") -> Path:
    (tmp_path / "zero.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    (tmp_path / "rewrite.yaml").write_text(f"rewriter: {rewriter}\nwhere: \"{where}\"\n")
    (tmp_path / "judge.yaml").write_text(f"where: \"{REWRITES}\"\nworkers: 1\njudges:\n  - name: math_accuracy\n"
                                         f"  - name: format\n    params: {{template: think}}\n")
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    return tmp_path / "pipeline.yaml"


def test_readable_only_reformats() -> None:
    assert readable("<think>2+3=5</think> <answer>\\boxed{5}</answer>", "2+3=5", "<answer>\\boxed{5}</answer>") == \
        ("2+3=5", "The answer is \\boxed{5}.")
    assert readable("", " 2+3=5, 5-1=4 ", "\\boxed{4}</answer>") == (" 2+3=5, 5-1=4 ", "The answer is \\boxed{4}.")
    assert readable("x", "2+3=5", "<answer>5</answer>") == "no_boxed_answer"
    assert readable("x", "  ", "\\boxed{5}") == "no_reasoning"
    assert compose("a", "b") == "<think>a</think> b"


def test_rewrite_stage_makes_judged_generations_that_name_their_parent(tmp_path: Path) -> None:
    pipeline = _folder(tmp_path)
    cat = Catalog(tmp_path / "cat", create=True)
    result = run_pipeline(cat, pipeline)
    out = result["outputs"]["rewrite"]
    assert (out["parents"], out["rewritten"], out["added"]) == (6, 4, 4)
    assert out["skipped"] == {"no_boxed_answer": 1, "no_reasoning": 1}
    with cat.reader() as con:
        got = con.execute(f"""SELECT g.text, g.reasoning, p.text, p.reasoning, m.edited_by, r.model, r.kind,
                                     r.template, r.template_version
                              FROM generations g JOIN generation_meta m USING (generation_id)
                              JOIN generations p ON p.generation_id = m.parent_id
                              JOIN runs r ON r.run_id = g.run_id WHERE g.{REWRITES} ORDER BY g.text""").fetchall()
        verdicts = dict(con.execute(f"""SELECT judge || ':' || reason, count(*) FROM verdicts v
            JOIN generation_meta g USING (generation_id) WHERE g.{REWRITES} GROUP BY ALL""").fetchall())
    assert len(got) == 4
    for text, reasoning, parent_text, parent_reasoning, by, model, kind, template, version in got:
        assert reasoning == parent_reasoning  # the model's own reasoning, verbatim
        assert text.startswith(f"<think>{parent_reasoning}</think> The answer is \\boxed{{") and text.endswith("}.")
        assert "<answer>" in parent_text and "<answer>" not in text
        assert (by, model, kind, template, version) == ("rewrite:readable@1", "r1-zero", "rewrite", "readable", "1")
    # Judged like any generation: the wrong answer stays wrong, every rewrite is in the readable format.
    assert verdicts == {"math_accuracy:correct": 3, "math_accuracy:wrong_answer": 1, "format:ok": 4}

    # `r1f show` names the parent, and the parent lists its rewrite.
    with cat.reader() as con:
        child, parent = con.execute(f"SELECT generation_id, parent_id FROM generation_meta WHERE {REWRITES} "
                                    f"ORDER BY generation_id LIMIT 1").fetchone()
    shown = r1f("show", child, catalog=cat.root).stdout
    assert f"of {parent} by rewrite:readable@1" in shown and "original reasoning" in shown
    assert f"→ {child} by rewrite:readable@1" in r1f("show", parent, catalog=cat.root).stdout

    # Again: the plan skips every stage; the rewrite itself, called again, adds nothing.
    assert run_pipeline(cat, pipeline)["outputs"] == {}
    again = rewrite_catalog(cat, load_rewrite_recipe(tmp_path / "rewrite.yaml"))
    assert (again["rewritten"], again["added"], again["skipped"]["own_rewrite"]) == (4, 0, 4)
    with cat.reader() as con:
        assert con.execute(f"SELECT count(*) FROM generation_meta WHERE {REWRITES}").fetchone()[0] == 4


def test_bad_rewrite_recipes_are_refused_naming_file_and_field(tmp_path: Path) -> None:
    from pipelines.recipe import check_pipeline

    pipeline = _folder(tmp_path, rewriter="prettify")
    with pytest.raises(RecipeError, match=r"rewrite\.yaml:1.*rewriter.*unknown rewriter 'prettify'.*readable"):
        check_pipeline(pipeline)

    # A selection with no parent in the catalog: the error names the recipe's `where`, and nothing is written.
    _folder(tmp_path, where="run_id IN (SELECT run_id FROM runs WHERE model = 'no-such-model')")
    cat = Catalog(tmp_path / "cat", create=True)
    r1f("ingest", str(tmp_path / "zero.jsonl"), "--generations", "--model", "r1-zero", catalog=cat.root)
    recipe = load_rewrite_recipe(tmp_path / "rewrite.yaml")
    with pytest.raises(RecipeError, match=r"rewrite\.yaml: where: .*selects no generation.*no parent to rewrite"):
        rewrite_catalog(cat, recipe)
    recipe.where = "no_such_column = 1"
    with pytest.raises(RecipeError, match=r"rewrite\.yaml: where: .*no_such_column.*fix the predicate"):
        rewrite_catalog(cat, recipe)
    with cat.reader() as con:
        assert con.execute("SELECT count(*) FROM runs WHERE kind = 'rewrite'").fetchone()[0] == 0


def test_a_rewrite_run_is_named_by_its_parent_run_not_the_model_folder() -> None:
    """The same parent run (a local model is named by its content) rewritten from two folders gets one run id, so
    the same rewrite ids and the same picks downstream: a fresh demo folder repeats the last one. The stored model
    stays the path, which selections by model read."""
    from factory.rewrite import get_rewriter, rewrite_params, rewrite_run_id

    rw = get_rewriter("readable")
    here, there = rewrite_params(rw, "/a/demo-out/models/r1-zero"), rewrite_params(rw, "/b/demo-out/models/r1-zero")
    assert rewrite_run_id(here, "r_parent") == rewrite_run_id(there, "r_parent")
    assert rewrite_run_id(here, "r_parent") != rewrite_run_id(here, "r_other")
    assert here["model"] == "/a/demo-out/models/r1-zero"
