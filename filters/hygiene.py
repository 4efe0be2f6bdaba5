"""hygiene: the generation is whole, answers once, and does not loop.

Checks, in this order (the reason lists every failed check; the value is the first failed check's
measure, or the repeated-window share when all pass):
- truncated: finish_reason == "length", or more `<think>` than `</think>` tags;
- short_answer: the answer (after `</think>`) has fewer than `min_answer_chars` non-space characters;
- multiple_boxed: more than `max_distinct_boxed` different `\\boxed{...}` answers (spaces ignored; the
  boxes are read by catalogs/boxed.py, the extractor math_accuracy uses: any nesting depth, `\\fbox`);
- repetition: the share of word n-gram windows (n = `ngram_n`) that repeat an earlier window of the
  same text is over `max_duplicate_ngram_share`, or one line of 20+ characters is repeated more than
  `max_line_repeats` times.
Everything is vectorised: polars for the regex checks, numpy over the whole batch for the n-grams.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from catalogs.boxed import all_boxed
from filters._ngrams import word_ngram_hashes
from filters.base import FilterParams, FilterSpec, batch_filter, decisions

VERSION = "2"
NAME = "hygiene"

class HygieneParams(FilterParams):
    check_truncated: bool = Field(True, description="drop generations cut by the length limit")
    min_answer_chars: int = Field(1, ge=0, le=1_000_000,
                                  description="minimum non-space characters after </think>; 0 disables")
    max_distinct_boxed: int = Field(1, ge=0, le=1000, description="most different \\boxed answers allowed; "
                                                                  "0 disables")
    boxed_field: str = Field("answer", pattern="^(reasoning|answer|text)$",
                             description="where to count \\boxed answers")
    ngram_n: int = Field(10, ge=2, le=100, description="word n-gram size of the repetition check")
    max_duplicate_ngram_share: float = Field(0.3, ge=0.0, le=1.0,
                                             description="share of repeated n-gram windows allowed")
    max_line_repeats: int = Field(10, ge=1, le=1_000_000,
                                  description="most times one line (20+ chars) may repeat")
    repetition_field: str = Field("text", pattern="^(reasoning|answer|text)$",
                                  description="where to look for repetition loops")


def duplicate_ngram_share(texts: pl.Series, n: int) -> np.ndarray:
    """Per text: share of its word n-gram windows equal to an earlier window of the same text."""
    doc, h, _ = word_ngram_hashes(texts, n)
    out = np.zeros(len(texts), dtype=np.float64)
    if len(h) == 0:
        return out
    stats = (pl.DataFrame({"doc": doc, "h": h}).group_by("doc")
             .agg(pl.len().alias("n"), pl.col("h").n_unique().alias("u")))
    d = stats["doc"].to_numpy()
    nn = stats["n"].to_numpy().astype(np.float64)
    out[d] = (nn - stats["u"].to_numpy()) / nn
    return out


def distinct_boxed(texts: pl.Series) -> np.ndarray:
    """Per text: how many different boxed answers it holds (whitespace ignored).

    Only texts with a box tag reach the Python extractor; a regex cannot balance braces at any depth.
    """
    out = np.zeros(len(texts), dtype=np.int64)
    has = texts.fill_null("").str.contains(r"\\(?:boxed|fbox)")
    if has.any():
        idx = has.arg_true()
        for i, t in zip(idx.to_list(), texts.gather(idx).to_list()):
            out[i] = len({"".join(c.split()) for c in all_boxed(t)})
    return out


@batch_filter(NAME, VERSION, HygieneParams)
def hygiene(batch: pl.DataFrame, params: HygieneParams) -> pl.DataFrame:
    """Drop truncated, answerless, multi-answer and looping generations."""
    text = pl.col("text")
    lines = pl.col(params.repetition_field).str.split("\n").list.eval(
        pl.element().str.strip_chars().filter(pl.element().str.len_chars() >= 20))
    m = batch.select(
        ((pl.col("finish_reason") == "length").fill_null(False)).alias("length"),
        (text.str.count_matches("<think>", literal=True) > text.str.count_matches("</think>", literal=True))
        .alias("unclosed"),
        pl.col("answer").str.replace_all(r"\s+", "").str.len_chars().alias("answer_chars"),
        lines.list.eval(pl.element().unique_counts().max()).list.first().fill_null(0).alias("line_repeats"),
    )
    dup = duplicate_ngram_share(batch[params.repetition_field], params.ngram_n)
    m = m.with_columns(pl.Series("dup", dup), pl.Series("boxed", distinct_boxed(batch[params.boxed_field])))
    checks: list[tuple[pl.Expr, pl.Expr, pl.Expr]] = []  # (failed, reason, value)
    if params.check_truncated:
        checks.append((pl.col("length") | pl.col("unclosed"),
                       pl.when(pl.col("length")).then(pl.lit("truncated: finish_reason length"))
                       .otherwise(pl.lit("truncated: unclosed <think>")), pl.lit(None)))
    if params.min_answer_chars > 0:
        checks.append((pl.col("answer_chars") < params.min_answer_chars,
                       pl.format("short_answer: {} chars < {}", "answer_chars", pl.lit(params.min_answer_chars)),
                       pl.col("answer_chars")))
    if params.max_distinct_boxed > 0:
        checks.append((pl.col("boxed") > params.max_distinct_boxed,
                       pl.format("multiple_boxed: {} different \\boxed answers > {}", "boxed",
                                 pl.lit(params.max_distinct_boxed)), pl.col("boxed")))
    checks.append((pl.col("dup") > params.max_duplicate_ngram_share,
                   pl.format("repetition: {} of {}-gram windows repeated > {}", pl.col("dup").round(2),
                             pl.lit(params.ngram_n), pl.lit(params.max_duplicate_ngram_share)), pl.col("dup")))
    checks.append((pl.col("line_repeats") > params.max_line_repeats,
                   pl.format("repetition: a line repeated {} times > {}", "line_repeats",
                             pl.lit(params.max_line_repeats)), pl.col("line_repeats")))
    failed = pl.any_horizontal([c[0] for c in checks])
    reason = pl.concat_str([pl.when(c[0]).then(c[1]) for c in checks], separator="; ", ignore_nulls=True)
    value: pl.Expr = pl.lit(None, dtype=pl.Float64)
    for f, _, v in reversed(checks):
        value = pl.when(f).then(v.cast(pl.Float64)).otherwise(value)
    value = pl.when(failed).then(value).otherwise(pl.col("dup"))
    return decisions(pl.col("generation_id"), NAME, VERSION, ~failed,
                     pl.when(failed).then(reason).otherwise(pl.lit("ok")), value,
                     m.with_columns(batch["generation_id"]))


FILTER = FilterSpec(NAME, VERSION, "rule", HygieneParams, fn=hygiene)
