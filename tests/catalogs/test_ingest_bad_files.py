"""Bad files through the real `r1f ingest` command: exit 2, the file, the place (line/item/row) and the fix
in the message, no traceback, and the catalog folder byte-identical afterwards."""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalogs import Catalog

from .helpers import DATA, r1f

BIG = 20 << 20  # over the default --max-record-mb of 16


def folder_hash(root: Path) -> str:
    """Every file under the catalog folder, by relative path and bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cat") / "cat"
    r1f("ingest", str(DATA / "gsm8k_30.jsonl"), "--rename", "question=problem", catalog=root)
    return root


def refused(catalog: Path, path: Path, *args: str) -> str:
    """Run a bad ingest; check exit 2, no traceback, the file named, the catalog untouched. The message."""
    before = folder_hash(catalog)
    proc = r1f("ingest", str(path), *args, catalog=catalog, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Aborted" not in proc.stderr, proc.stderr
    assert str(path) in proc.stderr or path.name in proc.stderr
    assert "nothing was ingested, the catalog is unchanged" in proc.stderr
    assert folder_hash(catalog) == before
    return proc.stderr


def rows(n: int, width: int = 200) -> list[dict]:
    return [{"problem": f"What is {i} + {i}? " + "x" * width, "answer": str(2 * i)} for i in range(n)]


def test_truncated_jsonl_gz(catalog: Path, tmp_path: Path) -> None:
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in rows(2000)).encode())
    cut = data[: len(data) // 2]
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(cut)
    whole_lines = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut).count(b"\n")
    msg = refused(catalog, path)
    m = re.search(r"line (\d+): the gzip data ends early: the file is cut off", msg)
    assert m, msg
    assert whole_lines <= int(m.group(1)) <= whole_lines + 1  # the first line that could not be read whole
    assert "gzip -t FILE" in msg and "Fetch or compress the file again" in msg


def test_jsonl_gz_that_is_not_gzip(catalog: Path, tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl.gz"
    path.write_text(json.dumps(rows(1)[0]) + "\n")
    msg = refused(catalog, path)
    assert "line 1: not gzip data, though the name ends in .gz" in msg
    assert "rename it to plain.jsonl" in msg


def test_truncated_and_fake_json_gz(catalog: Path, tmp_path: Path) -> None:
    data = gzip.compress(json.dumps(rows(2000), indent=1).encode())
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(data[: len(data) // 2])
    msg = refused(catalog, cut)
    assert re.search(r"item \d+: the gzip data ends early", msg), msg
    fake = tmp_path / "fake.json.gz"
    fake.write_text(json.dumps(rows(2)))
    assert "line 1: not gzip data" in refused(catalog, fake)


def test_max_record_mb_holds_for_json_arrays(catalog: Path, tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"problem": "small"}, {"problem": "x" * BIG}, {"problem": "after"}]))
    msg = refused(catalog, path)
    assert re.search(r"item 1: record is more than [\d.]+ MiB, over the limit of 16 MiB \(raise it with "
                     r"--max-record-mb\)", msg), msg
    # Raised limit: it goes in (a separate catalog, so the shared one stays as it was).
    other = tmp_path / "other"
    ok = r1f("ingest", str(path), "--max-record-mb", "32", catalog=other)
    assert "3 prompts added" in " ".join(ok.stdout.split())


def test_max_record_mb_holds_for_parquet(catalog: Path, tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"problem": ["small", "x" * BIG, "after"]}), path)
    msg = refused(catalog, path)
    assert "row 1: record is 20.0 MiB, over the limit of 16 MiB (raise it with --max-record-mb)" in msg
    other = tmp_path / "other"
    ok = r1f("ingest", str(path), "--max-record-mb", "32", catalog=other)
    assert "3 prompts added" in " ".join(ok.stdout.split())


def test_max_record_mb_holds_for_saved_datasets(catalog: Path, tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "hf"
    datasets.Dataset.from_list([{"problem": "small"}, {"problem": "y" * BIG}]).save_to_disk(str(folder))
    msg = refused(catalog, folder)
    assert "row 1: record is 20.0 MiB, over the limit of 16 MiB" in msg


def test_json_object_instead_of_array(catalog: Path, tmp_path: Path) -> None:
    wrapped = {"version": "1.0", "data": rows(3), "meta": {"license": "cc-by"}}
    pretty = tmp_path / "wrapped.json"
    pretty.write_text(json.dumps(wrapped, indent=2))
    msg = refused(catalog, pretty)
    assert "line 1: the file holds one JSON object, not a list of records" in msg
    assert "`version` (a string), `data` (a list of objects), `meta` (an object)" in msg
    assert "a .json file must hold an array of records" in msg
    assert f"jq -c '.data[]' {pretty} > wrapped.data.jsonl" in msg
    assert msg.count("malformed JSON") == 0  # not one complaint per line, as before
    one_line = tmp_path / "oneline.json"
    one_line.write_text(json.dumps(wrapped))
    msg = refused(catalog, one_line)
    assert "line 1: the file holds one JSON object" in msg and "jq -c '.data[]'" in msg
    # The hint's command works: the extracted list ingests.
    extracted = tmp_path / "wrapped.data.jsonl"
    extracted.write_text("".join(json.dumps(r) + "\n" for r in wrapped["data"]))
    assert "3 prompts added" in " ".join(r1f("ingest", str(extracted), catalog=tmp_path / "other").stdout.split())


def test_malformed_json_array_names_the_item(catalog: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"problem": "fine"}, {problem: "unquoted key"}]')
    msg = refused(catalog, path)
    assert re.search(r"item 1: malformed JSON \(.+\), about byte \d+", msg), msg
    assert "python -m json.tool" in msg


def test_python_literal_tests_are_stored_as_json(tmp_path: Path) -> None:
    """The literal format some public code datasets use: accepted by ingest, as by the code judge."""
    from judges.code import parse_tests

    literal = "[{'input': '1 2\\n', 'output': '3'}, {'input': '5 5\\n', 'output': '10'}]"
    path = tmp_path / "code.jsonl"
    path.write_text(json.dumps({"problem": "Add two numbers.", "tests": literal}) + "\n")
    cat = tmp_path / "cat"
    r1f("ingest", str(path), catalog=cat)
    stored = Catalog(cat).prompts()["tests"].to_list()
    assert stored == [json.dumps([{"input": "1 2\n", "output": "3"}, {"input": "5 5\n", "output": "10"}],
                                 sort_keys=True, separators=(",", ":"), ensure_ascii=False)]
    assert parse_tests(stored[0])[0] == parse_tests(literal)[0] == "stdio"
    assert Catalog(cat).prompts()["domain"].to_list() == ["code"]


def test_tests_that_are_neither_json_nor_a_literal(catalog: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad_tests.jsonl"
    path.write_text(json.dumps({"problem": "ok"}) + "\n"
                    + json.dumps({"problem": "p", "tests": "[{'input': 1,"}) + "\n"
                    + json.dumps({"problem": "q", "tests": "[{'input': {1, 2}, 'output': '3'}]"}) + "\n")
    msg = refused(catalog, path)
    assert "line 2: field `tests` is a string but neither JSON nor a Python literal" in msg
    assert "line 3: field `tests` holds a value JSON cannot store" in msg
