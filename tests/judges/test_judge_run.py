"""`r1f judge`: the recipe's judges over a real catalog, cached by version, counted by reason in stats."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backends.config import BackendConfig
from catalogs import Catalog
from catalogs.errors import RecipeError
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import stats
from judges.run import JudgeRecipe, JudgeStep, judge_catalog

ROWS = [
    # right, in <think> format, English
    {"problem": "What is 1/2 as a decimal?", "answer": "0.5",
     "response": "<think>\nHalf of one is 0.5. Let me verify: 0.5 * 2 = 1.\n</think>\n\nSo \\boxed{\\frac{1}{2}}."},
    # wrong answer
    {"problem": "What is 3 squared?", "answer": "9",
     "response": "<think>\n3 times 3 is 6. Let me verify.\n</think>\n\nSo \\boxed{6}."},
    # no reference answer for this prompt
    {"problem": "Name a prime number.", "response": "<think>\n2 is prime.\n</think>\n\n\\boxed{2}"},
    # truncated: no </think>
    {"problem": "What is 2+2?", "answer": "4", "response": "<think>\n2 plus 2 is", "finish_reason": "length"},
    # Chinese prompt, reasoning mixing in English
    {"problem": "计算 2+3。", "answer": "5", "language": "zh",
     "response": "<think>\nWe need to add two and three, which gives five in total. Let me double check this by "
                 "counting up from two: three, four, five. So the sum of the two numbers is five.\n</think>\n\n"
                 "\\boxed{5}"},
]


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "gens.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS))
    cat = Catalog(tmp_path / "cat")
    ingest(cat, path, IngestOptions(source="t", generations=True, model="m", domain="math"))
    return cat


def test_rule_judges_write_cached_verdicts_counted_by_reason(catalog: Catalog, tmp_path: Path) -> None:
    recipe = JudgeRecipe(judges=[JudgeStep(name="math_accuracy"), JudgeStep(name="format"),
                                 JudgeStep(name="language_consistency")])
    summary = judge_catalog(catalog, recipe)
    assert summary["math_accuracy"] == {"judged": 5, "passed": 2}
    verdicts = {(r["judge"], r["reason"]) for r in catalog.verdicts().iter_rows(named=True)}
    assert {("math_accuracy", "correct"), ("math_accuracy", "wrong_answer"),
            ("math_accuracy", "no_reference"), ("format", "truncated")} <= verdicts
    zh = [r for r in catalog.verdicts().iter_rows(named=True) if r["judge"] == "language_consistency"
          and not r["passed"]]
    assert len(zh) == 1  # the English CoT for the Chinese prompt
    # Judging again costs nothing; new params make a new version and judge again.
    assert judge_catalog(catalog, recipe)["math_accuracy"] == {"judged": 0, "passed": 0}
    again = judge_catalog(catalog, JudgeRecipe(judges=[JudgeStep(name="language_consistency",
                                                                 params={"threshold": 0.5})]))
    assert again["language_consistency"]["judged"] == 5
    reasons = {(r["judge"], r["reason"]): r["n"] for r in stats(catalog)["judge_reasons"]}
    assert reasons[("math_accuracy", "no_reference")] == 1 and reasons[("math_accuracy", "wrong_answer")] == 1
    # The command, as a user types it.
    (tmp_path / "judge.yaml").write_text("judges:\n  - name: math_accuracy\n    params: {timeout_s: 60}\n")
    out = subprocess.run([sys.executable, "-m", "r1f", "judge", str(tmp_path / "judge.yaml"), "--json",
                          "--catalog", str(catalog.root)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["math_accuracy"] == {"judged": 5, "passed": 2}


def test_bad_judge_recipes(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="unknown judge 'math_acuracy'; known judges: .*math_accuracy"):
        judge_catalog(catalog, JudgeRecipe(judges=[JudgeStep(name="math_acuracy")]))
    with pytest.raises(RecipeError, match="llm_judge needs a `backend`"):
        judge_catalog(catalog, JudgeRecipe(judges=[JudgeStep(name="llm_judge")]))
    (tmp_path / "bad.yaml").write_text("judges:\n  - name: format\n    wher: x\n")
    proc = subprocess.run([sys.executable, "-m", "r1f", "judge", str(tmp_path / "bad.yaml"),
                           "--catalog", str(catalog.root)], check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and "bad.yaml:3: judges[0].wher: unknown key; did you mean where?" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "r1f", "judge", str(tmp_path / "nope.yaml"),
                           "--catalog", str(catalog.root)], check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and "recipe file not found" in proc.stderr


def test_a_judge_param_typo_fails_at_recipe_load_naming_file_line_and_key(catalog: Catalog, tmp_path: Path) -> None:
    """Params are checked against the judge's declared params as the recipe loads, before any judging: a typo is
    a recipe error (exit 2) with the file, the line of the bad key, and the fix; not a TypeError at a batch."""
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("judges:\n  - name: math_accuracy\n  - name: format\n    params:\n      require_open: false\n"
                      "      tempalte: r1_zero\n  - name: llm_judge\n    params: {max_tokens: many}\n")
    proc = subprocess.run([sys.executable, "-m", "r1f", "judge", str(recipe), "--catalog", str(catalog.root)],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{recipe}:6: judges[1].params.tempalte: unknown key; did you mean template?" in proc.stderr
    assert (f"{recipe}:8: judges[2].params.max_tokens: Input should be a valid integer, unable to parse string as "
            f"an integer (got 'many'); give a value of the right type") in proc.stderr
    assert catalog.verdicts().height == 0  # nothing judged, not even the judge before the typo


def test_judge_file_params_are_read_from_the_recipe_folder(tmp_path: Path) -> None:
    from catalogs.recipes import load_model

    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "rm.yaml"
    recipe.write_text("judges:\n  - name: helpfulness\n    params: {reward_model: ../models/rm}\n"
                      "  - name: harmlessness\n    params: {reward_model: /abs/rm}\n")
    steps = load_model(recipe, JudgeRecipe).judges
    assert [s.params["reward_model"] for s in steps] == [str(tmp_path / "models" / "rm"), "/abs/rm"]


def test_llm_judge_second_opinion_through_served_model(catalog: Catalog, vllm_server: str,
                                                       tiny_model_dir: Path) -> None:
    """The paper's V3 judge, as a second opinion where the rule said "different", via a real server."""
    from transformers import AutoTokenizer

    judge_catalog(catalog, JudgeRecipe(judges=[JudgeStep(name="math_accuracy")]))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # A random model fills JSON with whitespace until max_tokens; ban whitespace-only tokens.
    spaces = {str(i): -100 for i in range(len(tok)) if tok.decode([i]).strip() == "" and tok.decode([i])}
    step = JudgeStep(name="llm_judge", where="generation_id IN (SELECT generation_id FROM verdicts WHERE judge = "
                                              "'math_accuracy' AND reason = 'wrong_answer')",
                     backend=BackendConfig(name="openai", model="tiny", base_url=vllm_server, max_retries=1),
                     params={"max_tokens": 400, "request_extra": {"body": {"logit_bias": spaces}}})
    summary = judge_catalog(catalog, JudgeRecipe(judges=[step]))
    assert summary["llm_judge"]["judged"] == 1
    [v] = [r for r in catalog.verdicts().iter_rows(named=True) if r["judge"] == "llm_judge"]
    assert v["reason"] in ("equivalent", "different", "ambiguous", "unparseable_judge_response")
    assert v["judge_version"].startswith("1+llm_judge_v1+")
    assert judge_catalog(catalog, JudgeRecipe(judges=[step]))["llm_judge"]["judged"] == 0  # cached


def test_second_opinion_in_the_same_recipe_sees_the_first_verdicts(catalog: Catalog) -> None:
    """A judge whose `where` reads verdicts runs after the judges before it are written (a pass of its own)."""
    second = JudgeStep(name="format", where="generation_id IN (SELECT generation_id FROM verdicts WHERE judge = "
                                            "'math_accuracy' AND NOT passed)")
    summary = judge_catalog(catalog, JudgeRecipe(judges=[JudgeStep(name="math_accuracy"), second]))
    assert summary == {"math_accuracy": {"judged": 5, "passed": 2}, "format": {"judged": 3, "passed": 2}}
