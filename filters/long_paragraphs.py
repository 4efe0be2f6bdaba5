"""long_paragraphs: no paragraph of the CoT may be a wall of text.

A paragraph is what lies between blank lines. Measured value: the longest paragraph in characters.
A paragraph over `max_chars` characters or over `max_words` words fails the row. All of it is
polars expressions over the whole batch (split, list lengths), no per-row Python.
"""
from __future__ import annotations

import polars as pl
from pydantic import Field

from catalogs.scripts import PARAGRAPH_RE, PARAGRAPH_SEP, SPACED_WORD
from filters.base import FilterParams, FilterSpec, batch_filter, decisions

VERSION = "2"
NAME = "long_paragraphs"


class LongParagraphsParams(FilterParams):
    max_chars: int = Field(3000, ge=1, le=10_000_000, description="longest allowed paragraph, in characters")
    max_words: int = Field(600, ge=1, le=10_000_000,
                           description="longest allowed paragraph, in words (whitespace-separated; "
                                       "a Han/kana character counts as a word)")
    field: str = Field("reasoning", pattern="^(reasoning|answer|text)$", description="which part to check")


WORD_RE = SPACED_WORD  # a Han/kana character, or a run of other non-space characters (catalogs/scripts.py)


@batch_filter(NAME, VERSION, LongParagraphsParams)
def long_paragraphs(batch: pl.DataFrame, params: LongParagraphsParams) -> pl.DataFrame:
    """Drop CoTs with a paragraph longer than max_chars characters or max_words words."""
    paras = (pl.col(params.field).str.replace_all(PARAGRAPH_RE, PARAGRAPH_SEP)
             .str.strip_chars().str.split(PARAGRAPH_SEP))
    p = (batch.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), paras.alias("p")).explode("p")
         .with_columns((pl.int_range(pl.len()).over("row") + 1).alias("k"), pl.col("p").str.len_chars().alias("c")))
    by_chars = p.group_by("row").agg(pl.col("c").max().alias("max_chars"),
                                     pl.col("k").get(pl.col("c").arg_max()).alias("at_chars"),
                                     pl.len().alias("n_paragraphs"))
    # a paragraph has at most as many words as characters: count words only where that bound is over
    long = p.filter(pl.col("c") > params.max_words).with_columns(pl.col("p").str.count_matches(WORD_RE).alias("w"))
    by_words = long.group_by("row").agg(pl.col("w").max().alias("max_words"),
                                        pl.col("k").get(pl.col("w").arg_max()).alias("at_words"))
    m = (pl.DataFrame({"row": pl.Series(range(batch.height), dtype=pl.UInt32)})
         .join(by_chars, on="row", how="left").join(by_words, on="row", how="left")
         .sort("row").with_columns(pl.col("max_chars", "max_words", "at_chars", "at_words").fill_null(0)))
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


FILTER = FilterSpec(NAME, VERSION, "rule", LongParagraphsParams, fn=long_paragraphs)
