"""filters.base.split_think (polars, whole batches) is catalogs.split.split_reasoning with <think> markers."""
from __future__ import annotations

import random

import polars as pl

from catalogs.split import THINK, split_reasoning
from filters.base import PY_WHITESPACE, prepare_batch

PIECES = ["<think>", "</think>", "<think", "think>", "</think", "<answer>", "|special_token|", " ", "  ", "\n",
          "\n\n", "\t", "\r\n", "\x1c", "\x1f", "\u3000", "\xa0", "\u2028", "\x85", "a", "reason", "答案",
          "x = 1", "$", "\\boxed{2}", ".", "<", ">", "/", "é"]


def _texts(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return ["".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 12))) for _ in range(n)]


def test_split_think_equals_split_reasoning_on_generated_texts() -> None:
    texts = _texts(5000, seed=3) + [
        "<think>\nr\n</think>\n\nanswer", "r only</think>a", "<think>cut off", "no markers at all",
        "<think>a</think>b</think>c", "x<think>a<think>b</think>c", "</think>", "<think>", "",
        "\x1c<think> r \x1c</think>\x1f a \x1f",
    ]
    df = prepare_batch(pl.DataFrame({"generation_id": [str(i) for i in range(len(texts))], "text": texts}))
    got = list(zip(df["reasoning"].to_list(), df["answer"].to_list()))
    want = []
    for t in texts:
        r, a = split_reasoning(t, THINK)
        want.append((r or "", a))
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    assert not bad, bad[:5]


def test_py_whitespace_is_every_character_str_strip_strips() -> None:
    """PY_WHITESPACE scans only the code points below U+3001: no whitespace lies beyond."""
    assert PY_WHITESPACE == "".join(c for c in map(chr, range(0x110000)) if c.isspace())


def test_empty_text_is_what_strip_chars_leaves_empty() -> None:
    """prepare_batch's all-whitespace check (a regex `\\s`) agrees with polars' strip_chars() on every code point."""
    chars = [chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000] + ["", " \n\t\u3000", " a "]
    df = pl.DataFrame({"generation_id": [str(i) for i in range(len(chars))], "text": chars})
    got = prepare_batch(df)["_input_error"].eq_missing("empty_text")
    assert got.to_list() == (df["text"].str.strip_chars() == "").to_list()
