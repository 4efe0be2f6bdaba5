"""Catalogs outlive versions: a catalog written by the previous schema opens, migrated forward in one
transaction, with every record kept."""
from __future__ import annotations

import duckdb
from catalogs import schema
from tests.catalogs.helpers import DATA, r1f


def _downgrade(db: str) -> None:
    """Make a schema-1 catalog the way the first release wrote it: its tables only, version 1."""
    con = duckdb.connect(db)
    first = {line.split("(")[0].split()[-1] for line in schema.TABLES.split(";") if "CREATE TABLE" in line}
    for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
        if name not in first:
            con.execute(f"DROP TABLE {name}")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()


def test_previous_schema_opens_and_migrates_forward(tmp_path) -> None:
    cat_dir = tmp_path / "cat"
    r1f("ingest", str(DATA / "gsm8k_30.jsonl"), "--source", "gsm8k", "--rename", "question=problem",
        "--catalog", str(cat_dir))
    _downgrade(str(cat_dir / "catalog.duckdb"))
    out = r1f("sql", "SELECT count(*) AS n FROM prompts", "--json", "--catalog", str(cat_dir))
    assert '"n": 30' in out.stdout
    con = duckdb.connect(str(cat_dir / "catalog.duckdb"), read_only=True)
    version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    con.close()
    assert int(version) == schema.SCHEMA_VERSION


def test_schema_4_catalog_gains_calibration_and_usage(tmp_path) -> None:
    """A catalog written before calibration and yield accounting (schema 4) opens; both start empty."""
    cat_dir = tmp_path / "cat"
    r1f("ingest", str(DATA / "gsm8k_30.jsonl"), "--source", "gsm8k", "--rename", "question=problem",
        "--catalog", str(cat_dir))
    con = duckdb.connect(str(cat_dir / "catalog.duckdb"))
    con.execute("DROP TABLE calibration_draws")
    con.execute("DROP TABLE run_usage")
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.close()
    assert '"usage": []' in r1f("stats", "--cost", "--json", "--catalog", str(cat_dir)).stdout
    assert "r1f review --calibrate JUDGE" in r1f("calibration", "--catalog", str(cat_dir)).stdout
    con = duckdb.connect(str(cat_dir / "catalog.duckdb"), read_only=True)
    assert int(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) == \
        schema.SCHEMA_VERSION
    assert con.execute("SELECT count(*) FROM run_usage").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM prompts").fetchone()[0] == 30
    con.close()
