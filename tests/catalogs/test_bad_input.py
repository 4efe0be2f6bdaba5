"""Every bad input: a clear error naming the file and line (or row/column), and the catalog unchanged."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalogs import Catalog, CatalogError
from catalogs.ingest import IngestOptions, ingest

from .helpers import DATA, fingerprint, r1f

GOOD = {"problem": "What is 2+2?", "answer": "4"}


def jsonl(path: Path, lines: list[str | bytes]) -> Path:
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else line.encode())
            f.write(b"\n")
    return path


CASES = {
    "malformed_json": ([json.dumps(GOOD), '{"problem": "x", "answer": '], "line 2: malformed JSON"),
    "missing_field": ([json.dumps(GOOD), json.dumps({"answer": "4"})], "line 2: no prompt"),
    "wrong_type_answer": ([json.dumps({"problem": "p", "answer": [1, 2]})], "line 1: field `answer` must be"),
    "wrong_type_kind": ([json.dumps({"problem": "p", "kind": "chat"})], "line 1: field `kind` is 'chat'"),
    "wrong_type_messages": ([json.dumps({"messages": [{"role": "user"}]})], "line 1: `messages[0]` must be"),
    "bad_role": ([json.dumps({"messages": [{"role": "robot", "content": "hi"}]})], "line 1: `messages[0].role`"),
    "not_utf8": ([json.dumps(GOOD), b'{"problem": "caf\xe9"}'], "line 2: not valid UTF-8"),
    "empty_prompt": ([json.dumps(GOOD), json.dumps({"problem": "   "})], "line 2: field `problem` is empty"),
    "not_an_object": ([json.dumps(GOOD), "[1, 2]"], "line 2: a record must be a JSON object"),
    "bad_tests": ([json.dumps({"problem": "p", "tests": "not json"})],
                  "line 1: field `tests` is a string but neither JSON nor a Python literal"),
}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "cat")
    ingest(cat, DATA / "gsm8k_30.jsonl", IngestOptions(source="gsm8k", rename={"question": "problem"}))
    return cat


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_jsonl_leaves_catalog_unchanged(case: str, catalog: Catalog, tmp_path: Path) -> None:
    lines, message = CASES[case]
    # Good rows first, so a non-atomic ingest would have written something.
    path = jsonl(tmp_path / f"{case}.jsonl", [json.dumps({"problem": f"good {i}"}) for i in range(5)] + lines)
    before = fingerprint(catalog.root)
    with pytest.raises(CatalogError) as exc:
        ingest(catalog, path, IngestOptions(source="bad"))
    text = str(exc.value)
    assert str(path) in text
    expected_line = 5 + int(message.split()[1].rstrip(":"))
    assert f"line {expected_line}:" in text and message.split(": ", 1)[1] in text, text
    assert "catalog is unchanged" in text
    assert fingerprint(catalog.root) == before
    staging = catalog.root / "staging"  # made by the first ingest that stages a batch (a small file stages none)
    assert not staging.exists() or not any(staging.iterdir())


def test_50mb_line(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with open(path, "w") as f:
        f.write(json.dumps(GOOD) + "\n")
        f.write(json.dumps({"problem": "x" * (50 << 20)}) + "\n")
        f.write(json.dumps({"problem": "after"}) + "\n")
    before = fingerprint(catalog.root)
    with pytest.raises(CatalogError, match=r"line 2: record is 50\.0 MiB, over the limit of 16 MiB \(raise it with "
                                           r"--max-record-mb\)"):
        ingest(catalog, path, IngestOptions(source="huge"))
    assert fingerprint(catalog.root) == before
    # Raising the limit lets it in.
    rep = ingest(catalog, path, IngestOptions(source="huge", max_record_bytes=64 << 20))
    assert rep.prompts_added == 3


def test_parquet_wrong_schema(catalog: Catalog, tmp_path: Path) -> None:
    before = fingerprint(catalog.root)
    no_prompt = tmp_path / "no_prompt.parquet"
    pq.write_table(pa.table({"question_text": ["a"], "answer": ["1"]}), no_prompt)
    with pytest.raises(CatalogError, match=r"no_prompt.parquet: wrong schema: no `problem`, `prompt` or `messages` "
                                           r"column \(found: question_text, answer\)"):
        ingest(catalog, no_prompt, IngestOptions(source="pq"))
    wrong_type = tmp_path / "wrong_type.parquet"
    pq.write_table(pa.table({"problem": ["a", "b"], "answer": [[1], [2]]}), wrong_type)
    with pytest.raises(CatalogError, match=r"wrong_type.parquet: wrong schema: column `answer` has type "
                                           r"list<\w+: int64>, expected string or number"):
        ingest(catalog, wrong_type, IngestOptions(source="pq"))
    empty_row = tmp_path / "empty_row.parquet"
    pq.write_table(pa.table({"problem": ["fine", ""]}), empty_row)
    with pytest.raises(CatalogError, match=r"row 1: field `problem` is empty"):
        ingest(catalog, empty_row, IngestOptions(source="pq"))
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(CatalogError, match="garbage.parquet: not a readable Parquet file"):
        ingest(catalog, garbage, IngestOptions(source="pq"))
    assert fingerprint(catalog.root) == before


def test_good_parquet_json_and_hf_folder(tmp_path: Path) -> None:
    import datasets

    cat = Catalog(tmp_path / "cat")
    rows = [json.loads(line) for line in (DATA / "math_40.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    assert ingest(cat, tmp_path / "m.parquet", IngestOptions(source="math")).prompts_added == 40
    zh = ingest(cat, DATA / "alpaca_zh_20.json", IngestOptions(source="alpaca_zh", rename={"instruction": "problem"},
                                                                kind="non_reasoning"))
    assert zh.prompts_added == 20
    langs = cat.prompts(where="source = 'alpaca_zh'")["language"].unique().to_list()
    assert langs == ["zh"]
    meta = json.loads(cat.prompts(where="source = 'alpaca_zh'")["metadata"][0])
    assert set(meta) == {"input", "output"}  # extra columns kept as metadata
    datasets.Dataset.from_list(rows[:10]).save_to_disk(str(tmp_path / "hf"))
    assert ingest(cat, tmp_path / "hf", IngestOptions(source="hf")).prompts_added == 10
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3])}).save_to_disk(str(tmp_path / "hfd"))
    with pytest.raises(CatalogError, match=r"holds several splits \(train\); choose one with --split"):
        ingest(cat, tmp_path / "hfd", IngestOptions(source="hfd"))
    assert ingest(cat, tmp_path / "hfd", IngestOptions(source="hfd", split="train")).prompts_added == 3


def test_generations_need_a_model_and_a_response(catalog: Catalog, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "g.jsonl", [json.dumps({"problem": "p", "response": "r"}),
                                        json.dumps({"problem": "q"})])
    with pytest.raises(CatalogError, match="--generations needs --model"):
        ingest(catalog, path, IngestOptions(source="g", generations=True))
    before = fingerprint(catalog.root)
    with pytest.raises(CatalogError, match="line 2: no response"):
        ingest(catalog, path, IngestOptions(source="g", generations=True, model="m"))
    assert fingerprint(catalog.root) == before  # not even the run was recorded


def test_cli_bad_input_exit_code_and_message(catalog: Catalog, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "bad.jsonl", [json.dumps(GOOD), "{oops"])
    before = fingerprint(catalog.root)
    proc = r1f("ingest", str(path), catalog=catalog.root, check=False)
    assert proc.returncode == 2
    assert "bad.jsonl" in proc.stderr and "line 2: malformed JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert fingerprint(catalog.root) == before
    # A failed first ingest into a new catalog leaves no catalog behind.
    fresh = tmp_path / "fresh"
    assert r1f("ingest", str(path), catalog=fresh, check=False).returncode == 2
    assert not fresh.exists()
    # ... and in a folder that already held other files, it removes only its own.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert r1f("ingest", str(path), catalog=tmp_path / "mine", check=False).returncode == 2
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    unknown = r1f("ingest", str(tmp_path / "x.csv"), catalog=catalog.root, check=False)
    assert unknown.returncode == 2 and "no such file" in unknown.stderr


def test_newer_schema_and_corrupted_catalog(catalog: Catalog, tmp_path: Path) -> None:
    with duckdb.connect(str(catalog.db_path)) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    before = fingerprint(catalog.root)
    with pytest.raises(CatalogError, match="schema version 99, newer than this r1-factory"):
        Catalog(catalog.root)
    proc = r1f("stats", catalog=catalog.root, check=False)
    assert proc.returncode == 2 and "upgrade r1-factory" in proc.stderr
    assert fingerprint(catalog.root) == before

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "catalog.duckdb").write_bytes(b"this is not a database" * 1000)
    data = (broken / "catalog.duckdb").read_bytes()
    with pytest.raises(CatalogError, match="corrupted or not a DuckDB catalog.*never rewrites it"):
        Catalog(broken)
    assert (broken / "catalog.duckdb").read_bytes() == data
    with pytest.raises(CatalogError, match="no catalog at"):
        Catalog(tmp_path / "missing", create=False)
    assert r1f("show", "g_1", catalog=tmp_path / "missing", check=False).returncode == 2


def test_missing_shard_is_reported(catalog: Catalog, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "g.jsonl", [json.dumps({"problem": "p", "response": "<think>a</think>b"})])
    ingest(catalog, path, IngestOptions(source="g", generations=True, model="m"))
    gid = catalog.generations()["generation_id"][0]
    for shard in (catalog.root / "shards").glob("*.parquet"):
        shard.unlink()
    with pytest.raises(CatalogError, match="is damaged: shard .* is missing"):
        from catalogs.query import show

        show(catalog, gid)
