"""A catalog written before review existed (schema 2: no parent link) opens, gains the link, and takes an edit."""
from __future__ import annotations

import json

import duckdb

from catalogs import schema
from tests.catalogs.helpers import r1f, write_generations


def test_catalog_without_parent_link_migrates_and_takes_an_edit(tmp_path) -> None:
    data = tmp_path / "traces.jsonl"
    write_generations(data, n_prompts=1, per_prompt=1)
    cat = tmp_path / "cat"
    r1f("ingest", str(data), "--generations", "--model", "deepseek-r1", "--source", "toy", catalog=cat)
    con = duckdb.connect(str(cat / "catalog.duckdb"))
    for column in ("parent_id", "edited_by", "edited_at"):
        con.execute(f"ALTER TABLE generation_meta DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()

    gid = json.loads(r1f("sql", "SELECT generation_id AS g FROM generation_meta", "--json", catalog=cat).stdout)[0]["g"]
    decisions = tmp_path / "d.jsonl"
    decisions.write_text(json.dumps({"generation_id": gid, "reviewer": "alice", "decision": "edit",
                                     "time": "2026-02-01T09:00:00Z",
                                     "edit": {"reasoning": "Short and right.", "answer": "0"}}) + "\n")
    r1f("review", "--import", str(decisions), catalog=cat)
    shown = json.loads(r1f("show", gid, "--json", catalog=cat).stdout)
    assert [e["edited_by"] for e in shown["edits"]] == ["alice"]
    con = duckdb.connect(str(cat / "catalog.duckdb"), read_only=True)
    assert int(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) == schema.SCHEMA_VERSION
    con.close()
