"""`r1f filter`: filters over a real catalog; one decision per generation and filter, recomputed only when that
filter's params change; drop reasons in stats; clear errors for bad recipes and an empty corpus."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from catalogs import Catalog, CatalogError
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql, stats
from filters.decontamination import BenchmarkFormatError
from filters.registry import UnknownFilterError
from filters.run import FilterRecipe, FilterStep, filter_catalog
from tests.filters.helpers import EN_COT, FR_PARAGRAPH, ZH_COT

DATA = Path(__file__).parent / "data"


def rows() -> list[dict]:
    math500 = json.loads((DATA / "math500.jsonl").read_text().splitlines()[3])["problem"]
    out = [
        {"problem": "Solve x^2 + 3x = 10 for positive x.", "response": f"<think>\n{EN_COT}\n</think>\n\n\\boxed{{2}}"},
        {"problem": "Solve x^2 + 3x = 10 for x > 0.", "response": f"<think>\n{EN_COT}\n</think>\n\n\\boxed{{2}}"},
        {"problem": "Find positive x with x^2 + 3x = 10.",
         "response": f"<think>\n{EN_COT}\n\n{ZH_COT}\n</think>\n\n\\boxed{{2}}"},
        {"problem": "求满足 x^2 + 3x = 10 的正数 x。", "language": "zh",
         "response": f"<think>\n{ZH_COT}\n</think>\n\n\\boxed{{2}}"},
        {"problem": "Solve x^2+3x=10, x positive, with code.",
         "response": f"<think>\n{EN_COT}\n\n```python\nprint(2)\n```\n</think>\n\n\\boxed{{2}}"},
        {"problem": "Solve x^2 + 3x = 10 (wall of text).",
         "response": "<think>\n" + " ".join([EN_COT.replace("\n\n", " ")] * 8) + "\n</think>\n\n\\boxed{2}"},
        {"problem": math500, "response": f"<think>\n{FR_PARAGRAPH}\n\n{EN_COT}\n</think>\n\n\\boxed{{2}}"},
    ]
    return out


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "gens.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows()))
    cat = Catalog(tmp_path / "cat")
    ingest(cat, path, IngestOptions(source="t", generations=True, model="m", domain="math"))
    return cat


RECIPE = FilterRecipe(filters=[
    FilterStep(name="language_mixing"), FilterStep(name="long_paragraphs"), FilterStep(name="code_blocks"),
    FilterStep(name="hygiene"), FilterStep(name="dedup", params={"field": "reasoning"}),
    FilterStep(name="decontamination", params={"benchmark_files": [str(DATA / "math500.jsonl")]})])


def failed(cat: Catalog, name: str) -> set[str]:
    _, rows_ = sql(cat, f"SELECT p.problem FROM filter_decisions f JOIN generation_meta g USING (generation_id) "
                        f"JOIN prompts p USING (prompt_id) WHERE f.filter = '{name}' AND NOT f.passed")
    return {r[0][:30] for r in rows_}


def test_filters_decide_each_generation_once(catalog: Catalog) -> None:
    summary = filter_catalog(catalog, RECIPE)
    assert all(s["decided"] == 7 for s in summary.values()), summary
    assert failed(catalog, "language_mixing") == {"Find positive x with x^2 + 3x ", rows()[6]["problem"][:30]}
    assert failed(catalog, "code_blocks") == {"Solve x^2+3x=10, x positive, w"}
    assert failed(catalog, "long_paragraphs") == {"Solve x^2 + 3x = 10 (wall of t"}
    assert failed(catalog, "decontamination") == {rows()[6]["problem"][:30]}
    # The first seen is kept; the same CoT again, and the same CoT with a code block or repeated, are dropped.
    assert failed(catalog, "dedup") == {"Solve x^2 + 3x = 10 for x > 0.", "Solve x^2+3x=10, x positive, w",
                                        "Solve x^2 + 3x = 10 (wall of t"}
    _, reasons = sql(catalog, "SELECT reason FROM filter_decisions WHERE filter = 'dedup' AND NOT passed")
    first = sql(catalog, "SELECT generation_id FROM generation_meta ORDER BY shard, shard_row LIMIT 1")[1][0][0]
    assert {r[0].split(" ")[0] for r in reasons} == {"exact_duplicate_of", "near_duplicate_of"}
    assert all(first in r[0] for r in reasons)
    # Rerun: nothing new. Change one threshold: only that filter decides again.
    assert all(s["decided"] == 0 for s in filter_catalog(catalog, RECIPE).values())
    looser = RECIPE.model_copy(update={"filters": [FilterStep(name="long_paragraphs", params={"max_chars": 100_000,
                                                                                              "max_words": 100_000}),
                                                   *RECIPE.filters[2:]]})
    again = filter_catalog(catalog, looser)
    assert again["long_paragraphs"]["decided"] == 7 and again["code_blocks"]["decided"] == 0
    assert again["long_paragraphs"]["passed"] == 7
    drops = {(r["filter"], r["reason"]): r["n"] for r in stats(catalog)["filter_reasons"]}
    assert drops[("language_mixing", "mixed_language")] == 2 and drops[("decontamination", "contaminated")] == 1


def test_bad_filter_recipes_and_empty_corpus(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(UnknownFilterError, match="unknown filter 'lang_mix'; known filters: .*language_mixing"):
        filter_catalog(catalog, FilterRecipe(filters=[FilterStep(name="lang_mix")]))
    with pytest.raises(ValidationError, match=r"params\.max_foreign_share\n.*less than or equal to 1"):
        FilterStep(name="language_mixing", params={"max_foreign_share": 1.5})  # checked as the step is made
    with pytest.raises(BenchmarkFormatError, match="unknown_format.csv"):
        bad = tmp_path / "unknown_format.csv"
        bad.write_text("a,b\n1,2\n")
        filter_catalog(catalog, FilterRecipe(filters=[FilterStep(name="decontamination",
                                                                 params={"benchmark_files": [str(bad)]})]))
    assert sql(catalog, "SELECT count(*) FROM filter_decisions")[1][0][0] == 0  # nothing half-done
    empty = Catalog(tmp_path / "empty")
    with pytest.raises(CatalogError, match="has no generations yet"):
        filter_catalog(empty, RECIPE)
    (tmp_path / "f.yaml").write_text("filters:\n  - name: hygiene\n    params: {min_answer_chars: -3}\n")
    proc = subprocess.run([sys.executable, "-m", "r1f", "filter", str(tmp_path / "f.yaml"),
                           "--catalog", str(catalog.root)], check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and (f"{tmp_path / 'f.yaml'}:3: filters[0].params.min_answer_chars: Input should "
                                     f"be greater than or equal to 0 (got -3); fix the value") in proc.stderr
    assert "Traceback" not in proc.stderr


def decisions_of(cat: Catalog) -> list[tuple]:
    return sql(cat, "SELECT generation_id, filter, passed, reason, value FROM filter_decisions ORDER BY ALL")[1]


def test_worker_processes_decide_as_one_process_does(tmp_path: Path) -> None:
    """Batches of 2 rows over 2 spawned workers (the pure filters and dedup's MinHash there, dedup's index here,
    in catalog order): the same decisions, reasons and values as everything in one process."""
    path = tmp_path / "gens.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows()))
    cats = []
    for tag in ("one", "pool"):
        cat = Catalog(tmp_path / tag)
        ingest(cat, path, IngestOptions(source="t", generations=True, model="m", domain="math"))
        cats.append(cat)
    one = filter_catalog(cats[0], RECIPE.model_copy(update={"workers": 1, "batch_rows": 2, "flush_rows": 3}))
    pool = filter_catalog(cats[1], RECIPE.model_copy(update={"workers": 2, "batch_rows": 2, "flush_rows": 3}))
    assert one == pool and all(s["decided"] == 7 for s in pool.values())
    assert decisions_of(cats[0]) == decisions_of(cats[1])
    assert failed(cats[1], "dedup") == {"Solve x^2 + 3x = 10 for x > 0.", "Solve x^2+3x=10, x positive, w",
                                        "Solve x^2 + 3x = 10 (wall of t"}


def test_a_filter_selecting_on_decisions_runs_after_they_are_written(catalog: Catalog) -> None:
    """A step whose `where` reads filter_decisions starts a second pass: it sees the first pass's decisions."""
    second = FilterStep(name="long_paragraphs", where="generation_id IN (SELECT generation_id FROM filter_decisions "
                                                      "WHERE filter = 'code_blocks' AND NOT passed)")
    summary = filter_catalog(catalog, FilterRecipe(filters=[FilterStep(name="code_blocks"), second]))
    assert summary["code_blocks"]["decided"] == 7 and summary["long_paragraphs"]["decided"] == 1


def test_a_rerun_with_nothing_new_reads_no_text(catalog: Catalog) -> None:
    """Stateful filters see every row only while some row is new to them; a rerun streams nothing."""
    filter_catalog(catalog, RECIPE)
    seen: list[tuple[str, int, int]] = []
    filter_catalog(catalog, RECIPE, progress=lambda name, done, total: seen.append((name, done, total)))
    assert {total for _, _, total in seen} == {0}
