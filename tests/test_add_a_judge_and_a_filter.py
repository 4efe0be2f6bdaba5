"""A new rule judge and a new filter are each one new file plus one registry line.

In a copy of the packages, the test adds `judges/answer_length.py` and `filters/mentions_word.py`, one line in
each registry's MODULES, and nothing else; then runs them through `r1f judge` and `r1f filter` in subprocesses
whose imports come from the copy, over a catalog made by `r1f ingest --generations`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("catalogs", "backends", "judges", "filters", "factory", "releases", "training", "review", "scaleout",
            "pipelines", "r1f")

JUDGE = '''"""answer_length: the answer part is at most `max_chars` characters."""
from catalogs.records import Sample, Verdict, verdict
from judges.base import JudgeSpec, params_model

NAME = "answer_length"
VERSION = "1"


def judge(sample: Sample, *, max_chars: int = 20) -> Verdict:
    n = len(sample.answer)
    return verdict(NAME, VERSION, float(n <= max_chars), n <= max_chars, "ok" if n <= max_chars else "too_long",
                   chars=n)


JUDGE = JudgeSpec(NAME, VERSION, "rule", params_model(judge), judge=judge)
'''

FILTER = '''"""mentions_word: the reasoning says `word`."""
import polars as pl
from pydantic import Field

from filters.base import FilterParams, FilterSpec, batch_filter, decisions

NAME = "mentions_word"
VERSION = "1"


class MentionsWordParams(FilterParams):
    word: str = Field("verify", min_length=1)


@batch_filter(NAME, VERSION, MentionsWordParams)
def mentions_word(batch: pl.DataFrame, params: MentionsWordParams) -> pl.DataFrame:
    said = pl.col("reasoning").str.contains(params.word, literal=True)
    reason = pl.when(said).then(pl.lit("ok")).otherwise(pl.lit(f"no_{params.word}"))
    return decisions(pl.col("generation_id"), NAME, VERSION, said, reason, None, batch)


FILTER = FilterSpec(NAME, VERSION, "rule", MentionsWordParams, fn=mentions_word)
'''

ROWS = [
    {"problem": "What is 2+2?", "answer": "4",
     "response": "<think>\n2 plus 2 is 4. Let me verify: 4 - 2 = 2.\n</think>\n\nThe answer is \\boxed{4}."},
    {"problem": "What is 3+3?", "answer": "6",
     "response": "<think>\n3 plus 3 is 6.\n</think>\n\nAdding three to three gives six, so the answer is \\boxed{6}."},
]


def _add_line(registry: Path, module: str) -> None:
    text = registry.read_text()
    assert text.count("MODULES = (\n") == 1
    registry.write_text(text.replace("MODULES = (\n", f"MODULES = (\n    \"{module}\",\n"))


def test_a_new_judge_and_filter_are_one_file_and_one_registry_line_each(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    (tree / "judges" / "answer_length.py").write_text(JUDGE)
    _add_line(tree / "judges" / "registry.py", "judges.answer_length")
    (tree / "filters" / "mentions_word.py").write_text(FILTER)
    _add_line(tree / "filters" / "registry.py", "filters.mentions_word")

    work = tmp_path / "work"
    work.mkdir()
    (work / "gens.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (work / "judge.yaml").write_text("judges:\n  - name: answer_length\n    params: {max_chars: 25}\n")
    (work / "filter.yaml").write_text("filters:\n  - name: mentions_word\n")
    env = {**os.environ, "PYTHONPATH": str(tree)}

    def r1f(*args: str) -> str:
        # From `work`, so `python -m r1f` finds the copy through PYTHONPATH, never this checkout.
        proc = subprocess.run([sys.executable, "-m", "r1f", *args, "--catalog", str(work / "cat")], cwd=work,
                              env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    r1f("ingest", "gens.jsonl", "--source", "t", "--generations", "--model", "m")
    assert json.loads(r1f("judge", "judge.yaml", "--json")) == {"answer_length": {"judged": 2, "passed": 1}}
    assert json.loads(r1f("filter", "filter.yaml", "--json")) == {
        "mentions_word": {"decided": 2, "passed": 1, "total": 2}}
    verdicts = json.loads(r1f("sql", "--json", "SELECT p.problem, v.judge, v.judge_version, v.passed, v.reason "
                              "FROM verdicts v JOIN generations g USING (generation_id) JOIN prompts p "
                              "USING (prompt_id) ORDER BY p.problem"))
    decisions = json.loads(r1f("sql", "--json", "SELECT p.problem, d.filter, d.passed, d.reason "
                               "FROM filter_decisions d JOIN generations g USING (generation_id) JOIN prompts p "
                               "USING (prompt_id) ORDER BY p.problem"))
    assert [(v["problem"], v["judge"], v["passed"], v["reason"]) for v in verdicts] == [
        ("What is 2+2?", "answer_length", True, "ok"), ("What is 3+3?", "answer_length", False, "too_long")]
    assert all(v["judge_version"].startswith("1+") for v in verdicts)  # the code version, plus the params' hash
    assert [(d["problem"], d["filter"], d["passed"], d["reason"]) for d in decisions] == [
        ("What is 2+2?", "mentions_word", True, "ok"), ("What is 3+3?", "mentions_word", False, "no_verify")]
