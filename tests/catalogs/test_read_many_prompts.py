"""A stage's read of many prompts: each chunk of generations gets its prompts' fields by key, right and in order."""
from __future__ import annotations

import json
from pathlib import Path

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest


def test_each_generation_gets_its_own_prompts_fields_by_scan_and_by_key(tmp_path: Path) -> None:
    """6,000 generations with a prompt each, over three shards. A selection of 3,000 (unselected rows between them)
    reads its chunk's prompts by scanning the table; a selection of 5 looks its prompts up by key (the table has
    more than SCAN_ROWS_PER_PROMPT rows per prompt wanted). Either way every row carries its own prompt's fields, in
    catalog order, and the lookup puts back the DuckDB setting it changes for the whole process."""
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
    few = [(r["problem"], r["reference"]) for batch in cat.iter_samples(where="problem LIKE 'Problem 1_:%'")
           for r in batch.iter_rows(named=True)]
    assert few == [(f"Problem {i}: what is {i} + 1?", str(i + 1)) for i in range(10, 20)]
    with cat.reader() as con:
        assert con.execute("SELECT current_setting('index_scan_max_count')").fetchall() == [(2048,)]
