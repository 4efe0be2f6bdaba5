"""A stage's read of many prompts: each chunk of generations gets its prompts' fields, right and in order."""
from __future__ import annotations

import json
from pathlib import Path

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest


def test_each_generation_gets_its_own_prompts_fields_by_scan_and_by_key(tmp_path: Path) -> None:
    """36,000 generations with a prompt each, over three shards. The 33,882 non-reasoning ones come in chunks of
    4,096 whose prompts are read by scanning the table; the 2,118 reasoning ones (every 17th row) are one chunk
    whose prompts are looked up by key (the table has more than SCAN_ROWS_PER_PROMPT rows per prompt wanted), more
    keys than DuckDB looks up unless told to (2,048). Either way every row carries its own prompt's fields, in
    catalog order, and the lookup puts back the DuckDB setting it changes for the whole process."""
    cat = Catalog(tmp_path / "cat")
    expected: dict[str, list[tuple[str, str]]] = {"reasoning": [], "non_reasoning": []}
    for part in range(3):
        rows = []
        for i in range(part * 12_000, (part + 1) * 12_000):
            kind = "reasoning" if i % 17 == 0 else "non_reasoning"
            rows.append({"problem": f"Problem {i}: what is {i} + 1?", "answer": str(i + 1), "kind": kind,
                         "response": f"<think>I add one to {i}.</think>The answer is {i + 1}."})
            expected[kind].append((f"Problem {i}: what is {i} + 1?", str(i + 1)))
        path = tmp_path / f"gens_{part}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        ingest(cat, path, IngestOptions(source="many", generations=True, model="m"))
    assert len(expected["reasoning"]) == 2118

    for kind, want in expected.items():
        seen = [(r["problem"], r["reference"], r["answer"], r["kind"])
                for batch in cat.iter_samples(where=f"kind = '{kind}'", batch_rows=4096)
                for r in batch.iter_rows(named=True)]
        assert [(p, ref) for p, ref, _, _ in seen] == want  # every prompt's own fields, in catalog order
        assert all(ans == f"The answer is {ref}." and k == kind for _, ref, ans, k in seen)
        with cat.reader() as con:
            assert con.execute("SELECT current_setting('index_scan_max_count')").fetchall() == [(2048,)]
