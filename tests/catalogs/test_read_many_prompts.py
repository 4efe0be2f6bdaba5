"""A stage's read of many prompts: each chunk of generations gets its prompts' fields by key, right and in order."""
from __future__ import annotations

import json
from pathlib import Path

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest


def test_a_chunk_of_thousands_of_prompts_gets_each_its_own_fields(tmp_path: Path) -> None:
    """3,000 selected generations with a prompt each, spread over three shards with unselected rows between them:
    one chunk asks for more prompts than DuckDB looks up by key unless told to (2,048). Every row carries its
    own prompt's fields, in catalog order, and the process' DuckDB setting is put back."""
    cat = Catalog(tmp_path / "cat")
    expected: list[tuple[str, str]] = []
    for part in range(3):
        rows = []
        for i in range(part * 2000, (part + 1) * 2000):
            kind = "reasoning" if i % 2 == 0 else "non_reasoning"
            rows.append({"problem": f"Problem {i}: what is {i} + 1?", "answer": str(i + 1), "kind": kind,
                         "response": f"<think>I add one to {i}.</think>The answer is {i + 1}."})
            if kind == "reasoning":
                expected.append((f"Problem {i}: what is {i} + 1?", str(i + 1)))
        path = tmp_path / f"gens_{part}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        ingest(cat, path, IngestOptions(source="many", generations=True, model="m"))

    seen = [(r["problem"], r["reference"], r["answer"], r["kind"])
            for batch in cat.iter_samples(where="kind = 'reasoning'", batch_rows=3000)
            for r in batch.iter_rows(named=True)]
    assert [(p, ref) for p, ref, _, _ in seen] == expected  # every prompt's own fields, in catalog order
    assert all(ans == f"The answer is {ref}." and kind == "reasoning" for _, ref, ans, kind in seen)
    with cat.reader() as con:
        assert con.execute("SELECT current_setting('index_scan_max_count')").fetchall() == [(2048,)]
