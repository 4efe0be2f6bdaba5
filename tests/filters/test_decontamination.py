from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from filters.decontamination import BenchmarkFormatError, BenchmarkIndex, Decontaminator
from tests.filters.helpers import EN_COT, by_id, frame, row


def _items(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def index(data_dir: Path) -> BenchmarkIndex:
    return BenchmarkIndex.from_files([data_dir / "math500.jsonl", data_dir / "aime24.jsonl"])


def test_planted_benchmark_prompts_are_flagged_with_their_item(index: BenchmarkIndex, data_dir: Path) -> None:
    math = _items(data_dir / "math500.jsonl")
    aime = _items(data_dir / "aime24.jsonl")
    rows = [
        row("verbatim", EN_COT, problem=math[17]["problem"]),
        # rephrased start, a long verbatim middle: 8-gram overlap still finds it
        row("embedded", EN_COT, problem="Please solve: " + " ".join(aime[3]["problem"].split()[5:40]) + " Thanks!"),
        row("clean", EN_COT, problem="How many positive integers below 1000 are divisible by 7 but not by 11?"),
        row("zh", EN_COT, problem="求 2024 的正因数中，是完全平方数的有多少个？"),
    ]
    d = by_id(Decontaminator({"n": 8}, index=index)(frame(*rows)))
    assert not d["verbatim"]["passed"]
    assert d["verbatim"]["reason"].startswith("contaminated: math500#17 (8-gram overlap, ")
    assert not d["embedded"]["passed"] and d["embedded"]["reason"].startswith(f"contaminated: aime24#{aime[3]['id']} ")
    assert d["clean"]["passed"] and d["clean"]["value"] == 0
    assert d["zh"]["passed"]


def test_chinese_benchmark_items_match_character_ngrams(tmp_path: Path) -> None:
    bench = tmp_path / "gsm_zh.parquet"
    pl.DataFrame({"question": ["小明有 5 个苹果，又买了 3 个，他一共有多少个苹果？", "一辆车每小时行驶 60 千米，3 小时行驶多少千米？"],
                  "idx": [101, 102]}).write_parquet(bench)
    idx = BenchmarkIndex.from_files([bench])
    d = by_id(Decontaminator({}, index=idx)(frame(
        row("hit", EN_COT, problem="请回答：一辆车每小时行驶 60 千米，3 小时行驶多少千米？", language="zh"),
        row("miss", EN_COT, problem="一个正方形的边长是 4，面积是多少？", language="zh"))))
    assert not d["hit"]["passed"] and d["hit"]["reason"].startswith("contaminated: gsm_zh#102")
    assert d["miss"]["passed"]


def test_min_shared_and_n_are_params(index: BenchmarkIndex, data_dir: Path) -> None:
    p = _items(data_dir / "math500.jsonl")[2]["problem"]
    words = p.split()
    ten = " ".join(words[:10])  # three 8-grams of item 2
    assert not by_id(Decontaminator({}, index=index)(frame(row("g", EN_COT, problem=ten))))["g"]["passed"]
    assert by_id(Decontaminator({"min_shared": 50}, index=index)(frame(row("g", EN_COT, problem=ten))))["g"]["passed"]
    with pytest.raises(ValueError, match="n=13"):
        Decontaminator({"n": 13}, index=index)


def test_index_is_built_from_params_files(data_dir: Path) -> None:
    dec = Decontaminator({"benchmark_files": [str(data_dir / "aime24.jsonl")]})
    problem = _items(data_dir / "aime24.jsonl")[0]["problem"]
    assert not by_id(dec(frame(row("g", EN_COT, problem=problem))))["g"]["passed"]
    assert len(dec.index) == 10


def test_unknown_format_and_missing_fields_name_the_file(tmp_path: Path) -> None:
    csv = tmp_path / "bench.csv"
    csv.write_text("problem\n1+1\n")
    with pytest.raises(BenchmarkFormatError, match=r"bench\.csv.*unknown format '.csv'.*problem"):
        BenchmarkIndex.from_files([csv])
    nofield = tmp_path / "bench.jsonl"
    nofield.write_text(json.dumps({"input": "1+1", "target": "2"}) + "\n")
    with pytest.raises(BenchmarkFormatError, match=r"bench\.jsonl.*\['problem', 'question', 'prompt'\].*input"):
        BenchmarkIndex.from_files([nofield])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "ok"}\n{not json\n')
    with pytest.raises(BenchmarkFormatError, match=r"broken\.jsonl, line 2"):
        BenchmarkIndex.from_files([broken])
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        BenchmarkIndex.from_files([tmp_path / "missing.jsonl"])
    with pytest.raises(ValueError, match="benchmark_files"):
        Decontaminator({})


def test_benchmark_files_are_read_as_ingest_reads_them(tmp_path: Path) -> None:
    """One reader (catalogs/ingest.py): a JSON object wrapping the items is refused with ingest's own error,
    and a JSON array or a Parquet file with a `question` column is read."""
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"data": [{"problem": "What is 1+1?"}, {"problem": "What is 2+2?"}]}))
    with pytest.raises(BenchmarkFormatError, match=r"wrapped\.json, line 1: the file holds one JSON object, not a "
                                                    r"list of records .*jq -c '\.data\[\]'"):
        BenchmarkIndex.from_files([wrapped])
    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"problem": "What is 1+1?", "id": "a"}, {"problem": "What is 2+2?", "id": "b"}]))
    parquet = tmp_path / "quiz.parquet"
    pl.DataFrame({"question": ["Name the largest planet of the solar system."]}).write_parquet(parquet)
    index = BenchmarkIndex.from_files([array, parquet])
    assert index.labels == ["array#a", "array#b", "quiz#0"]
