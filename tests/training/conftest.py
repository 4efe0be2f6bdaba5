"""A small catalog with one release of correct addition traces, built once per test run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8)]


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


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
