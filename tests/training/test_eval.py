"""`r1f eval`: k samples per benchmark problem on the real vLLM CPU engine, judged and stored as an eval run;
pass@1 and cons@k are SQL over the catalog and match a count made by hand from `r1f sql`."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1f.cli import app
from tests.training.conftest import judged_planted_run, write_recipe

DATA = Path(__file__).parent / "data"


def sql(catalog, query: str) -> list[dict]:
    res = CliRunner().invoke(app, ["sql", query, "--json", "--catalog", str(catalog.root)])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_eval_on_the_vllm_engine_matches_a_hand_count(tmp_path, tiny_model_dir, vllm_llm):
    from backends.vllm_backend import VLLMBackend
    from catalogs.store import Catalog
    from training.evaluate import run_eval

    catalog = Catalog(tmp_path / "catalog")
    recipe = write_recipe(tmp_path / "eval.yaml", f"""
name: tiny-math500
backend: {{name: vllm, model: {tiny_model_dir}}}
benchmarks:
  - {{name: math500, file: {DATA / 'math500_3.jsonl'}}}
k: 4
sampling: {{max_tokens: 48}}
""")
    backend = VLLMBackend(llm=vllm_llm)
    first = run_eval(catalog, recipe, backend=backend)
    [score] = first["scores"]
    assert score["benchmark"] == "bench/math500" and score["problems"] == 3 and score["k"] == 4

    # The hand count: every sample's verdict and answer class, straight from the catalog.
    rows = sql(catalog, "SELECT g.prompt_id, g.sample_index, v.passed, a.answer_key FROM generation_meta g "
                        "JOIN verdicts v USING (generation_id) LEFT JOIN eval_answers a USING (generation_id) "
                        f"WHERE g.run_id = '{first['run_id']}' AND v.judge = 'math_accuracy'")
    assert len(rows) == 12
    by_prompt: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: (r["prompt_id"], r["sample_index"])):
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    pass1 = sum(sum(r["passed"] for r in rs) / len(rs) for rs in by_prompt.values()) / len(by_prompt)
    cons = 0
    for rs in by_prompt.values():
        votes = Counter(r["answer_key"] for r in rs if r["answer_key"] is not None)
        if votes:
            top = max(votes.values())
            winner = next(r["answer_key"] for r in rs if votes.get(r["answer_key"]) == top)
            cons += any(r["passed"] for r in rs if r["answer_key"] == winner)
    assert score["pass_at_1"] == round(100 * pass1, 2) and score["cons_at_k"] == round(100 * cons / 3, 2)

    runs = sql(catalog, "SELECT kind, count(*) AS n FROM runs GROUP BY kind")
    assert {"kind": "eval", "n": 1} in runs
    # Evaluating the same model again adds nothing.
    counts = sql(catalog, "SELECT (SELECT count(*) FROM generation_meta) AS g, (SELECT count(*) FROM verdicts) AS v, "
                          "(SELECT count(*) FROM eval_answers) AS a")
    again = run_eval(catalog, recipe, backend=backend)
    assert again["run_id"] == first["run_id"] and again["answers_added"] == 0
    assert sql(catalog, "SELECT (SELECT count(*) FROM generation_meta) AS g, (SELECT count(*) FROM verdicts) AS v, "
                        "(SELECT count(*) FROM eval_answers) AS a") == counts
    assert again["scores"] == first["scores"]
    # An eval's samples answer the test set: no release may take them, however it selects.
    from catalogs.errors import CatalogError
    from releases.release import create_release

    with pytest.raises(CatalogError, match="no generation matches"):
        create_release(catalog, "everything", where="true")


def test_cons_at_k_votes_by_math_equivalence(tmp_path):
    """Planted answers: "0.5" and "\\frac{1}{2}" are one vote; pass@1 and cons@3 are exactly known."""
    planted = [("What is 1/2 as a decimal?", "\\frac{1}{2}", ["0.5", "\\frac{1}{2}", "3"]),
               ("What is 3 + 4?", "7", ["7", "8", "8"])]
    # Imports are keyed by their text: each sample says its index, so equal answers stay separate samples.
    catalog, row = judged_planted_run(tmp_path, [
        {"problem": p, "answer": ref, "response": f"Try {i}: \\boxed{{{a}}}."}
        for p, ref, answers in planted for i, a in enumerate(answers)])
    # Problem 1: 2 of 3 right, majority class {0.5, 1/2} right. Problem 2: 1 of 3 right, majority "8" wrong.
    assert row["pass_at_1"] == 50.0 and row["cons_at_k"] == 50.0 and row["k"] == 3
    keys = sql(catalog, "SELECT answer_key, count(*) AS n FROM eval_answers GROUP BY 1 ORDER BY 1")
    assert {r["answer_key"]: r["n"] for r in keys} == {"0.5": 2, "3": 1, "7": 1, "8": 2}


def test_eval_recipe_errors_name_file_and_key(tmp_path):
    from catalogs.errors import RecipeError
    from catalogs.store import Catalog
    from training.evaluate import run_eval

    recipe = write_recipe(tmp_path / "eval.yaml", f"""
backend: {{name: vllm, model: {tmp_path / 'nope'}}}
benchmarks: [{{name: m, file: {DATA / 'math500_3.jsonl'}}}]
judges: [math_accuracy, vibes]
""")
    with pytest.raises(RecipeError, match=r"eval.yaml:3: judges: \[1\] 'vibes' is not a judge"):
        run_eval(Catalog(tmp_path / "c"), recipe)
    recipe.write_text(recipe.read_text().replace(", vibes", ""))
    with pytest.raises(RecipeError, match=r"eval.yaml: backend.model: model path .* does not exist"):
        run_eval(Catalog(tmp_path / "c"), recipe)


def test_compare_prints_a_table_per_benchmark(tmp_path):
    from catalogs.ingest import IngestOptions, ingest
    from catalogs.store import Catalog
    from judges.run import JudgeRecipe, JudgeStep, judge_catalog

    catalog = Catalog(tmp_path / "catalog")
    for model, answer in (("model-a", "7"), ("model-b", "8")):
        src = tmp_path / f"{model}.jsonl"
        src.write_text(json.dumps({"problem": "What is 3 + 4?", "answer": "7",
                                   "response": f"{model}: \\boxed{{{answer}}}"}) + "\n")
        ingest(catalog, src, IngestOptions(source="tiny-bench", generations=True, model=model))
    judge_catalog(catalog, JudgeRecipe(judges=[JudgeStep(name="math_accuracy")]))
    res = CliRunner().invoke(app, ["eval", "--compare", "model-a", "--compare", "model-b",
                                   "--catalog", str(catalog.root)])
    assert res.exit_code == 0, res.output
    assert "tiny-bench" in res.output and "pass@1" in res.output
    rows = json.loads(CliRunner().invoke(app, ["eval", "--compare", "model-a", "--compare", "model-b", "--json",
                                               "--catalog", str(catalog.root)]).output)
    assert {r["model"]: (r["pass_at_1"], r["cons_at_k"]) for r in rows} == {"model-a": (100.0, 100.0),
                                                                            "model-b": (0.0, 0.0)}


GPQA_STYLE = [{"Question": q, "Correct Answer": right, "Incorrect Answer 1": w1, "Incorrect Answer 2": w2,
               "Incorrect Answer 3": w3}
              for q, right, w1, w2, w3 in [("Which gas is most abundant in air?", "Nitrogen", "Oxygen", "Argon", "CO2"),
                                           ("Which planet is largest?", "Jupiter", "Mars", "Venus", "Earth"),
                                           ("Which is a prime?", "7", "9", "15", "21")]]


def test_multiple_choice_benchmark_on_the_vllm_engine(tmp_path, tiny_model_dir, vllm_llm):
    """A GPQA-style file as it comes (question, correct option, three wrong ones): the eval recipe's `choices`
    makes lettered prompts with the letter as the reference; samples are judged and scored as any benchmark."""
    from backends.vllm_backend import VLLMBackend
    from catalogs.store import Catalog
    from training.evaluate import run_eval

    bench = tmp_path / "gpqa.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in GPQA_STYLE))
    catalog = Catalog(tmp_path / "catalog")
    recipe = write_recipe(tmp_path / "eval.yaml", f"""
backend: {{name: vllm, model: {tiny_model_dir}}}
benchmarks:
  - name: gpqa
    file: {bench}
    rename: {{Question: problem, Correct Answer: answer}}
    choices: [answer, Incorrect Answer 1, Incorrect Answer 2, Incorrect Answer 3]
    shuffle_choices: true
k: 2
sampling: {{max_tokens: 16}}
""")
    out = run_eval(catalog, recipe, backend=VLLMBackend(llm=vllm_llm))
    [score] = out["scores"]
    assert score["benchmark"] == "bench/gpqa" and score["problems"] == 3 and score["k"] == 2
    prompts = sql(catalog, "SELECT problem, answer, domain FROM prompts WHERE source = 'bench/gpqa'")
    assert {p["answer"] for p in prompts} <= set("ABCD") and {p["domain"] for p in prompts} == {"multiple_choice"}
    assert all("\nA) " in p["problem"] and "\nD) " in p["problem"] for p in prompts)
    verdicts = sql(catalog, "SELECT v.passed FROM verdicts v JOIN generation_meta g USING (generation_id) "
                            f"WHERE g.run_id = '{out['run_id']}' AND v.judge = 'math_accuracy'")
    assert len(verdicts) == 6
    assert score["pass_at_1"] == round(100 * sum(v["passed"] for v in verdicts) / 6, 2)


def test_multiple_choice_scores_from_planted_letters(tmp_path):
    """Planted answers to lettered questions: pass@1 and cons@3 exactly known, letters judged in \\boxed{}."""
    from catalogs.ingest import IngestOptions, ingest
    from catalogs.store import Catalog
    from judges.run import JudgeRecipe, JudgeStep, judge_catalog
    from training.evaluate import compare_runs

    # Unshuffled: the correct option is A for every question. Question 1: A, A, (B) -> 2/3 right, majority A right.
    # Question 2: C, C, A -> 1/3 right, majority C wrong.
    planted = [(GPQA_STYLE[0], ["\\boxed{A}", "\\boxed{(A)}", "\\boxed{B}"]),
               (GPQA_STYLE[1], ["\\boxed{C}", "\\boxed{C}", "\\boxed{A}"])]
    src = tmp_path / "planted.jsonl"
    src.write_text("".join(json.dumps({**row, "response": f"Try {i}: {a}"}) + "\n"
                           for row, answers in planted for i, a in enumerate(answers)))
    catalog = Catalog(tmp_path / "catalog")
    ingest(catalog, src, IngestOptions(source="bench/gpqa", generations=True, model="mc-model",
                                       rename={"Question": "problem", "Correct Answer": "answer"},
                                       choices=("answer", "Incorrect Answer 1", "Incorrect Answer 2",
                                                "Incorrect Answer 3")))
    judge_catalog(catalog, JudgeRecipe(judges=[JudgeStep(name="math_accuracy")]))
    [row] = compare_runs(catalog, ["mc-model"])
    assert row["pass_at_1"] == 50.0 and row["cons_at_k"] == 50.0 and row["k"] == 3


def test_shuffle_without_choices_names_the_benchmark(tmp_path):
    from catalogs.errors import RecipeError
    from catalogs.store import Catalog
    from training.evaluate import run_eval

    recipe = write_recipe(tmp_path / "eval.yaml", f"""
backend: {{name: vllm, model: {tmp_path}}}
benchmarks: [{{name: m, file: {DATA / 'math500_3.jsonl'}, shuffle_choices: true}}]
""")
    catalog = Catalog(tmp_path / "c")
    with pytest.raises(RecipeError, match=r"eval.yaml:2: benchmarks\[0\]: shuffle_choices needs choices"):
        run_eval(catalog, recipe)
    assert len(catalog.prompts()) == 0  # refused before any benchmark was ingested


def test_later_samples_join_the_stored_classes(tmp_path):
    """Answer classes are stored once per generation; samples classed later vote with the classes stored before them,
    and a shard gone from the catalog is named, not read as no answer."""
    from catalogs import CatalogError
    from training.evaluate import store_answer_classes

    catalog, row = judged_planted_run(tmp_path, [
        {"problem": "What is 1/2 as a decimal?", "answer": "0.5", "response": f"Try {i}: \\boxed{{{a}}}."}
        for i, a in enumerate(["\\frac{1}{2}", "3", "0.5", "3.0", "2/4"])])
    classes = {"\\frac{1}{2}": 3, "3": 2}
    keys = sql(catalog, "SELECT answer_key, count(*) AS n FROM eval_answers GROUP BY 1 ORDER BY 1")
    assert {r["answer_key"]: r["n"] for r in keys} == classes
    assert store_answer_classes(catalog, row["run_id"], "math_accuracy") == 0  # all classed already
    # Forget the last three samples' classes: classed again, they join the two classes stored.
    with catalog.connect(write=True) as con:
        con.execute("DELETE FROM eval_answers WHERE generation_id IN (SELECT generation_id FROM generation_meta "
                    "ORDER BY shard, shard_row OFFSET 2)")
    assert store_answer_classes(catalog, row["run_id"], "math_accuracy") == 3
    keys = sql(catalog, "SELECT answer_key, count(*) AS n FROM eval_answers GROUP BY 1 ORDER BY 1")
    assert {r["answer_key"]: r["n"] for r in keys} == classes
    with catalog.connect(write=True) as con:
        con.execute("DELETE FROM eval_answers")
        ((shard,),) = con.execute("SELECT DISTINCT shard FROM generation_meta").fetchall()
    (catalog.root / "shards" / shard).unlink()
    with pytest.raises(CatalogError, match=f"shard {shard} is missing"):
        store_answer_classes(catalog, row["run_id"], "math_accuracy")
