"""The decisions of recipes/filters_r1.yaml's six filters on a fixed real-trace-shaped corpus equal the stored ones.

The corpus is tests/filters/trace_corpus.py's (seeded; its texts' digest is stored with the decisions, so a
change of the generator shows as such, not as a changed verdict). The stored decisions were made by the code
before the filter kernels were sped up: speed never changes a verdict. Rewrite them only with a filter's
VERSION bump, on purpose:

    PYTHONPATH=$PWD .venv/bin/python -m tests.filters.test_golden_decisions --write
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from filters.registry import make_filter
from tests.filters.trace_corpus import make_traces

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "filters_r1.yaml"
GOLDEN = Path(__file__).parent / "data" / "golden_decisions.jsonl"
N, SEED, CHARS, BATCH = 400, 7, (1500, 7000), 100
COLUMNS = ["generation_id", "prompt_id", "problem", "text", "finish_reason", "domain", "language", "kind"]


def corpus() -> pl.DataFrame:
    return pl.DataFrame(make_traces(N, SEED, CHARS)).select(COLUMNS)


def digest(df: pl.DataFrame) -> str:
    h = hashlib.sha256()
    for gid, text in zip(df["generation_id"], df["text"]):
        h.update(f"{gid}\0{text}\0".encode())
    return h.hexdigest()


def run_recipe(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Every filter of the recipe over the corpus in batches of BATCH rows, in order (dedup's index spans them)."""
    steps = yaml.safe_load(RECIPE.read_text())["filters"]
    out: list[dict[str, Any]] = []
    for step in steps:
        params = dict(step.get("params", {}))
        if "benchmark_files" in params:  # relative to the recipe, as `r1f filter` reads them
            params["benchmark_files"] = [str((RECIPE.parent / p).resolve()) for p in params["benchmark_files"]]
        run = make_filter(step["name"], params)
        for start in range(0, df.height, BATCH):
            d = run(df.slice(start, BATCH))
            for r in d.iter_rows(named=True):
                v = r["value"]
                out.append({"generation_id": r["generation_id"], "filter": r["filter"], "passed": r["passed"],
                            "reason": r["reason"], "value": None if v is None else round(v, 9)})
    return out


def test_decisions_equal_the_stored_ones() -> None:
    df = corpus()
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    meta = json.loads(lines[0])
    assert meta["corpus_sha256"] == digest(df), (
        "the golden corpus changed (tests/filters/trace_corpus.py or its data): the stored decisions are for "
        "another corpus; restore the generator, or rewrite the decisions from code whose verdicts you trust")
    stored = [json.loads(x) for x in lines[1:]]
    got = run_recipe(df)
    assert len(got) == len(stored)
    diffs = [(s, g) for s, g in zip(stored, got) if s != g]
    assert not diffs, f"{len(diffs)} decisions changed, e.g.:\n" + "\n".join(f"stored {s}\ngot    {g}"
                                                                            for s, g in diffs[:5])


def test_golden_corpus_is_varied() -> None:
    """Every planted defect is present, and every filter fails some rows and passes others."""
    rows = make_traces(N, SEED, CHARS)
    from tests.filters.trace_corpus import RATES

    assert {r["planted"] for r in rows} == set(RATES) | {"clean"}
    stored = [json.loads(x) for x in GOLDEN.read_text(encoding="utf-8").splitlines()[1:]]
    for name in ("hygiene", "language_mixing", "long_paragraphs", "code_blocks", "dedup", "decontamination"):
        verdicts = {d["passed"] for d in stored if d["filter"] == name}
        assert verdicts == {True, False}, name


def write() -> None:
    df = corpus()
    rows = run_recipe(df)
    with GOLDEN.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"corpus_sha256": digest(df), "rows": df.height, "seed": SEED}) + "\n")
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} decisions to {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    write()
