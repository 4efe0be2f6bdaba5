"""filters.base.split_think (polars, whole batches) is catalogs.split.split_reasoning with <think> markers."""
from __future__ import annotations

import random

import polars as pl

from catalogs.split import THINK, split_reasoning
from filters.base import prepare_batch

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
