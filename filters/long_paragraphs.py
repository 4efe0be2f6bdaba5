"""long_paragraphs: no paragraph of the CoT may be a wall of text.

A paragraph is what lies between blank lines. Measured value: the longest paragraph in characters.
A paragraph over `max_chars` characters or over `max_words` words fails the row. All of it is
polars expressions over the whole batch (split, list lengths), no per-row Python.
"""
from __future__ import annotations

import polars as pl
from pydantic import Field

from filters.base import FilterParams, batch_filter, decisions

VERSION = "1"
NAME = "long_paragraphs"
PARAGRAPH_SEP = "\u0001"


class LongParagraphsParams(FilterParams):
    max_chars: int = Field(3000, ge=1, le=10_000_000, description="longest allowed paragraph, in characters")
    max_words: int = Field(600, ge=1, le=10_000_000,
                           description="longest allowed paragraph, in words (whitespace-separated; "
                                       "a Han/kana character counts as a word)")
    field: str = Field("reasoning", pattern="^(reasoning|answer|text)$", description="which part to check")


WORD_RE = r"[\p{Han}\p{Hiragana}\p{Katakana}]|[^\s\p{Han}\p{Hiragana}\p{Katakana}]+"


@batch_filter(NAME, VERSION, LongParagraphsParams)
def long_paragraphs(batch: pl.DataFrame, params: LongParagraphsParams) -> pl.DataFrame:
    """Drop CoTs with a paragraph longer than max_chars characters or max_words words."""
    paras = (pl.col(params.field).str.replace_all(r"\n[ \t\r]*\n\s*", PARAGRAPH_SEP)
             .str.strip_chars().str.split(PARAGRAPH_SEP))
    m = batch.select(
        paras.list.eval(pl.element().str.len_chars()).alias("chars"),
        paras.list.eval(pl.element().str.count_matches(WORD_RE)).alias("words"),
    ).select(
        pl.col("chars").list.max().fill_null(0).alias("max_chars"),
        (pl.col("chars").list.arg_max().fill_null(0) + 1).alias("at_chars"),
        pl.col("words").list.max().fill_null(0).alias("max_words"),
        (pl.col("words").list.arg_max().fill_null(0) + 1).alias("at_words"),
        pl.col("chars").list.len().alias("n_paragraphs"),
    )
    too_many_chars = pl.col("max_chars") > params.max_chars
    too_many_words = pl.col("max_words") > params.max_words
    reason = (
        pl.when(too_many_chars).then(pl.format("long_paragraph: {} chars > {} (paragraph {} of {})",
                                               "max_chars", pl.lit(params.max_chars), "at_chars", "n_paragraphs"))
        .when(too_many_words).then(pl.format("long_paragraph: {} words > {} (paragraph {} of {})",
                                             "max_words", pl.lit(params.max_words), "at_words", "n_paragraphs"))
        .otherwise(pl.lit("ok"))
    )
    return decisions(pl.col("generation_id"), NAME, VERSION, ~(too_many_chars | too_many_words), reason,
                     pl.col("max_chars"), m.with_columns(batch["generation_id"]))
