"""A small catalog with one release of correct addition traces, built once per test run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8)]


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


def judged_planted_run(root: Path, rows: list[dict]) -> tuple[Any, dict]:
    """(catalog, scores): rows of problem, answer and response imported as one model's generations
    ("planted-model"), judged by math_accuracy and scored by `compare_runs`."""
    from catalogs.ingest import IngestOptions, ingest
    from catalogs.store import Catalog
    from judges.run import JudgeRecipe, JudgeStep, judge_catalog
    from training.evaluate import compare_runs

    src = root / "planted.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    catalog = Catalog(root / "planted-catalog")
    ingest(catalog, src, IngestOptions(source="planted", generations=True, model="planted-model"))
    judge_catalog(catalog, JudgeRecipe(judges=[JudgeStep(name="math_accuracy")]))
    [row] = compare_runs(catalog, ["planted-model"])
    return catalog, row


@pytest.fixture(scope="session")
def toy_catalog(tmp_path_factory: pytest.TempPathFactory):
    """(catalog, release name): four prompt/trace pairs imported as generations and frozen as `toy-v1`."""
    from catalogs.ingest import IngestOptions, ingest
    from releases.release import create_release
    from catalogs.store import Catalog

    root = tmp_path_factory.mktemp("toy-catalog")
    rows = [{"problem": f"What is {a} + {b}?", "answer": str(a + b),
             "response": f"<think>\n{a} + {b} = {a + b}\n</think>\n\nThe answer is \\boxed{{{a + b}}}."}
            for a, b in PAIRS]
    src = root / "traces.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    catalog = Catalog(root / "catalog")
    ingest(catalog, src, IngestOptions(source="toy", generations=True, model="teacher"))
    create_release(catalog, "toy-v1", where="true")
    return catalog, "toy-v1"
