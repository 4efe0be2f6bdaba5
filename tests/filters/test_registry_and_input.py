from __future__ import annotations

import importlib

import polars as pl
import pyarrow as pa
import pytest

from filters import FILTERS, get_filter, make_filter, params_hash
from filters.base import DECISION_SCHEMA
from filters.hygiene import hygiene
from filters.registry import MODULES
from tests.filters.helpers import EN_COT, ZH_COT, by_id, row

PURE = [name for name, spec in FILTERS.items() if spec.kind == "rule"]


def test_registry_lists_every_filter_with_a_version_and_params() -> None:
    declared = [importlib.import_module(module).FILTER for module in MODULES]
    assert set(FILTERS) == {spec.name for spec in declared} and len(FILTERS) == len(MODULES)
    for name, spec in FILTERS.items():
        assert spec.name == name and spec.version and (spec.fn is None) == spec.stateful
        spec.params()  # defaults are valid


def test_unknown_filter_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=f"unknown filter 'languge_mixing'; known filters: {', '.join(sorted(FILTERS))}"):
        get_filter("languge_mixing")
    with pytest.raises(KeyError, match="unknown filter"):
        make_filter("nope")


def test_threshold_out_of_range_and_unknown_keys_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"'language_mixing'.*max_foreign_share.*less than or equal to 1"):
        make_filter("language_mixing", {"max_foreign_share": 1.5})
    with pytest.raises(ValueError, match=r"'long_paragraphs'.*max_chars.*greater than or equal to 1"):
        make_filter("long_paragraphs", {"max_chars": 0})
    with pytest.raises(ValueError, match=r"'hygiene'.*max_boxed.*Extra inputs are not permitted"):
        hygiene(pl.DataFrame([row("g", EN_COT)]), {"max_boxed": 2})


def test_params_hash_changes_only_with_that_filters_params_or_version() -> None:
    assert params_hash("hygiene") == params_hash("hygiene", {}) == params_hash("hygiene", {"ngram_n": 10})
    assert params_hash("hygiene", {"ngram_n": 12}) != params_hash("hygiene")
    assert params_hash("code_blocks") != params_hash("long_paragraphs")
    assert params_hash("long_paragraphs", {"max_chars": 2000}) == params_hash("long_paragraphs", {"max_chars": 2000})
    assert len(params_hash("dedup")) == 16


@pytest.mark.parametrize("name", PURE + ["dedup"])
def test_empty_and_invalid_utf8_text_are_dropped_with_that_reason(name: str) -> None:
    good = row("good", EN_COT)
    empty = row("empty", "", text="   ")
    surrogate = row("surrogate", "x", text="bad \ud800 text")  # a lone surrogate cannot be UTF-8
    out = make_filter(name)([good, empty, surrogate])
    assert out.schema == pl.Schema(DECISION_SCHEMA)
    d = by_id(out)
    assert out["generation_id"].to_list() == ["good", "empty", "surrogate"]
    assert d["empty"]["reason"] == "empty_text" and not d["empty"]["passed"]
    assert d["surrogate"]["reason"] == "invalid_utf8: text" and not d["surrogate"]["passed"]
    assert d["good"]["passed"]


def test_invalid_utf8_bytes_in_a_binary_column() -> None:
    table = pa.table({"generation_id": ["a", "b", "c"],
                      "text": pa.array([EN_COT.encode(), b"\xff\xfe not utf8", ZH_COT.encode()], pa.binary())})
    d = by_id(make_filter("long_paragraphs")(table))
    assert d["a"]["passed"] and d["c"]["passed"]
    assert d["b"]["reason"] == "invalid_utf8: text" and not d["b"]["passed"]


def test_missing_required_column_names_it() -> None:
    with pytest.raises(ValueError, match=r"missing column\(s\) \['text'\]"):
        make_filter("hygiene")(pl.DataFrame({"generation_id": ["a"]}))


def test_reasoning_and_answer_are_split_from_text_when_absent() -> None:
    text = "<think>\n" + EN_COT + "\n</think>\n\nSo $\\boxed{2}$ and $\\boxed{3}$."
    d = by_id(hygiene(pl.DataFrame({"generation_id": ["g"], "text": [text]}), {}))["g"]
    assert d["reason"] == "multiple_boxed: 2 different \\boxed answers > 1"


def test_an_empty_batch_gives_an_empty_decision_frame() -> None:
    out = make_filter("code_blocks")(pl.DataFrame(schema={"generation_id": pl.String, "text": pl.String}))
    assert out.height == 0 and out.schema == pl.Schema(DECISION_SCHEMA)
