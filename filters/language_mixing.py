"""language_mixing: the chain of thought must be in the prompt's language.

The rule is catalogs/scripts.py's (the language_consistency judge applies the same one, per sample):
maths, code, symbols, variables, units, numbers and single letters are no language; a word is a run of
2+ letters (3+ in Greek) or a Han/kana character weighing 2/3 of a word. Measured value: the share of
the CoT's words that are foreign. Below `min_words` word-equivalents nothing is decided (pass,
`too_short: ...`): a two-word answer with a gloss is not mixing.

Two passes, so that fastText runs only where it is needed:
1. By script, vectorised over the whole batch (polars regex counts): words in a script the target
   language does not write are foreign. For targets whose script one language owns (zh: Han, ko:
   Hangul, ...) that is the whole answer.
2. For targets whose script several languages share (Latin, Cyrillic, Arabic, Devanagari): each
   paragraph with enough words is either clearly the target language by its share of the target's
   function words (en, fr, de, es, pt, it have lists), or goes to fastText lid.176, in one batched
   `predict` over all such paragraphs of the batch. A paragraph fastText labels as another language
   (with probability >= min_confidence) makes its words foreign. This pass runs on every row above
   `min_words`, even one already over the threshold, so that the value equals 1 - the judge's score.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from catalogs.scripts import (
    DEFAULT_RULE,
    NORMALISE_STEPS,
    PARAGRAPH_RE,
    PARAGRAPH_SEP,
    SCRIPTS,
    STOPWORDS,
    TWELFTHS,
    base_language,
    lid_model_path,
    predict_languages,
    shared_script,
    stopword_pattern,
    target_scripts,
)
from filters._bytes import buffer, code_points, in_ranges, map_bytes
from filters.base import FilterParams, FilterSpec, batch_filter, decisions

__all__ = ["LanguageMixingParams", "language_mixing", "lid_model_path", "predict_languages"]

VERSION = "2"
NAME = "language_mixing"


class LanguageMixingParams(FilterParams):
    max_foreign_share: float = Field(DEFAULT_RULE.max_foreign_share, ge=0.0, le=1.0,
                                     description="drop when more than this share of CoT words is foreign")
    field: str = Field("reasoning", pattern="^(reasoning|answer|text)$", description="which part to check")
    min_words: float = Field(DEFAULT_RULE.min_words, ge=0.0, le=1_000_000,
                             description="texts with fewer words (a Han character is 2/3 of a word) are "
                                         "not decided: they pass as too_short")
    min_paragraph_words: int = Field(DEFAULT_RULE.min_paragraph_words, ge=1, le=10_000,
                                     description="paragraphs with fewer target-script words are not checked")
    min_stopword_share: float = Field(DEFAULT_RULE.min_stopword_share, ge=0.0, le=1.0,
                                      description="a paragraph with this share of the target's function words "
                                                  "is in the target language without asking fastText")
    min_confidence: float = Field(DEFAULT_RULE.min_confidence, ge=0.0, le=1.0,
                                  description="fastText probability needed to call a paragraph foreign")




def normalise_expr(col: pl.Expr) -> pl.Expr:
    """catalogs.scripts.normalise as a polars expression (the same regex steps, Rust's engine)."""
    for step in NORMALISE_STEPS:
        col = col.str.replace_all(step.pattern, step.polars_replacement)
    return col


def normalise(texts: pl.Series) -> pl.Series:
    """`normalise_expr` over a Series, the same strings, faster: a step repeated right after itself (the second
    pass of the notation step, for runs next to a replaced one) changes only the rows it still matches, and a
    regex replace costs mostly per match; finding the few rows (about one in fifteen of real-trace shape) costs
    two thirds of a pass over all of them."""
    prev = None
    for step in NORMALISE_STEPS:
        if step == prev:
            hit = texts.str.contains(step.pattern)
            if hit.any():
                idx = hit.arg_true()
                texts = texts.scatter(idx, texts.gather(idx).str.replace_all(step.pattern, step.polars_replacement))
        else:
            texts = texts.str.replace_all(step.pattern, step.polars_replacement)
        prev = step
    return texts


def _paragraphs(stripped: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """(one row per paragraph: (row, lang, p, lat) with lat its count of Latin-script words; units per script
    per row)."""
    separated = stripped["s"].str.replace_all(PARAGRAPH_RE, PARAGRAPH_SEP)
    lat, units = script_units(separated)
    paras = (stripped.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
                                   separated.str.split(PARAGRAPH_SEP).alias("p"))
             .select("row", "lang", "p").explode("p").with_columns(pl.Series("lat", lat)))
    row = paras["row"].to_numpy()  # ascending, every row at least once (a text is at least one paragraph)
    firsts = np.flatnonzero(np.diff(row, prepend=-1))
    units["latin"] = np.add.reduceat(lat, firsts) if len(lat) else np.zeros(stripped.height, dtype=np.int64)
    return paras, units


# 1 for an ASCII letter, 0 for every other byte; the Latin letters beyond ASCII are found by code point.
_ASCII_LETTER = bytes(1 if chr(b).isascii() and chr(b).isalpha() else 0 for b in range(256))
_WIDE_LATIN: tuple[tuple[int, int] | int, ...] = tuple(
    r for r in SCRIPTS["latin"].ranges if (r if isinstance(r, int) else r[0]) >= 0x80)
_SEP_BYTE = PARAGRAPH_SEP.encode()[0]


def script_units(separated: pl.Series) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(Latin words per paragraph, {script: units per text} for every other script) of texts whose paragraphs
    are split at PARAGRAPH_SEP, found in the byte buffer at a third of the regexes' cost.

    The counts the script table's regexes give: `separated.str.split(PARAGRAPH_SEP)`, exploded, then
    `.str.count_matches(SCRIPTS["latin"].unit_pattern)`; and per text `.str.count_matches(unit_pattern)` of
    each other script. A `run` unit is a maximal run of `min_letters`+ letters of its script (what a greedy
    leftmost match takes), a `char` unit one character. The other scripts' letters all lie beyond ASCII, so
    only the few characters beyond ASCII are decoded; a Latin run is counted at its first byte when the
    character after its first one is a Latin letter of the same text."""
    assert len(PARAGRAPH_SEP.encode()) == 1 and not PARAGRAPH_SEP.isalpha()
    off, data = buffer(separated)
    n = len(off) - 1
    sep = np.flatnonzero(data == _SEP_BYTE)
    ends = np.sort(np.concatenate([sep, off[1:]]))  # each paragraph's end (exclusive), in order
    units = {k: np.zeros(n, dtype=np.int64) for k in SCRIPTS if k != "latin"}
    if len(data) == 0:
        return np.zeros(len(ends), dtype=np.int64), units
    pos, cp, length = code_points(data)
    row = np.searchsorted(off, pos, side="right") - 1
    for k, script in SCRIPTS.items():
        mine = in_ranges(cp, script.ranges) if k != "latin" else None
        if mine is None or not mine.any():
            continue
        p, r, size = pos[mine], row[mine], length[mine]
        if script.unit == "char":
            units[k] = np.bincount(r, minlength=n).astype(np.int64)
            continue
        starts = np.flatnonzero(np.concatenate(([True], (p[:-1] + size[:-1] != p[1:]) | (r[:-1] != r[1:]))))
        long_enough = np.diff(starts, append=len(p)) >= script.min_letters
        units[k] = np.bincount(r[starts[long_enough]], minlength=n).astype(np.int64)

    letter = np.frombuffer(bytearray(data.tobytes().translate(_ASCII_LETTER)), dtype=bool)
    wide = in_ranges(cp, _WIDE_LATIN)
    pos, length = pos[wide], length[wide]
    for b in range(int(length.max(initial=1))):  # every byte of a Latin letter beyond ASCII
        letter[pos[length > b] + b] = True
    nonempty = off[:-1] < off[1:]
    first, last = off[:-1][nonempty], off[1:][nonempty] - 1  # each text's first and last byte
    start = np.empty_like(letter)  # a letter after a non-letter, or at a text's first byte
    start[0] = letter[0]
    np.greater(letter[1:], letter[:-1], out=start[1:])
    start[first] = letter[first]
    is_lead = start[pos]  # runs whose first letter is beyond ASCII: the next letter is past all its bytes
    lead, lead_length = pos[is_lead], length[is_lead]
    counted = start  # (in place) runs whose second byte is a letter of the same text
    counted[:-1] &= letter[1:]
    counted[-1] = False
    counted[last] = False
    if len(lead):
        nxt = lead + lead_length
        same_text = nxt < len(letter)
        same_text[same_text] &= ~np.isin(nxt[same_text], first)
        counted[lead] = False
        counted[lead[same_text]] = letter[nxt[same_text]]
    runs = np.flatnonzero(counted)
    return np.diff(np.searchsorted(runs, ends), prepend=0).astype(np.int64), units


@batch_filter(NAME, VERSION, LanguageMixingParams)
def language_mixing(batch: pl.DataFrame, params: LanguageMixingParams) -> pl.DataFrame:
    """Drop CoTs whose share of foreign-language words exceeds `max_foreign_share`."""
    n = batch.height
    stripped = pl.DataFrame({"s": normalise(batch[params.field]), "lang": batch["language"]})
    paras, units = _paragraphs(stripped)
    langs = [base_language(x) for x in stripped["lang"].to_list()]
    total = np.zeros(n, dtype=np.int64)  # in twelfths of a word, exact
    foreign: dict[str, np.ndarray] = {}  # label -> foreign words per row, in twelfths
    for k, sc in SCRIPTS.items():
        w = units[k] * sc.twelfths
        total += w
        f = np.where(np.array([k not in target_scripts(lg) for lg in langs], dtype=bool), w, 0)
        if f.any():
            foreign[sc.label] = foreign.get(sc.label, 0) + f
    too_short = total < params.min_words * TWELFTHS
    look = np.flatnonzero(np.array([shared_script(lg) for lg in langs], dtype=bool) & ~too_short)
    if len(look):
        for label, words in _paragraph_foreign(paras, n, look, langs, params).items():
            foreign[label] = foreign.get(label, np.zeros(n, dtype=np.int64)) + words * TWELFTHS
    total_foreign = sum(foreign.values()) if foreign else np.zeros(n, dtype=np.int64)
    share = np.where(total > 0, total_foreign / np.maximum(total, 1), 0.0)
    passed = too_short | (share <= params.max_foreign_share)
    reasons = np.full(n, "ok", dtype=object)
    for i in np.flatnonzero(too_short):
        reasons[i] = f"too_short: {total[i] / TWELFTHS:.1f} words < {params.min_words:g}, not decided"
    labels = list(foreign)
    if labels and (~passed).any():
        mat = np.stack([foreign[lb] for lb in labels], axis=1) / np.maximum(total, 1)[:, None]
        for i in np.flatnonzero(~passed):
            order = np.argsort(-mat[i], kind="stable")
            parts = [f"{labels[j]} {mat[i, j]:.2f}" for j in order[:2] if mat[i, j] >= 0.005]
            lg = langs[i]
            article = "an" if lg[:1] in "aeiou" else "a"
            reasons[i] = (f"mixed_language: {' + '.join(parts)} of words in {article} {lg} prompt "
                          f"(foreign share {share[i]:.2f} > {params.max_foreign_share})")
    return decisions(batch["generation_id"], NAME, VERSION, pl.Series(passed), pl.Series(reasons.tolist(),
                     dtype=pl.String), pl.Series(share.round(4)))


# ASCII letters lower-cased, digits and `_` kept (the word characters of an ASCII `\b`), every other byte a space.
_ASCII_WORD_TABLE = np.full(256, ord(" "), dtype=np.uint8)
for _c in b"abcdefghijklmnopqrstuvwxyz0123456789_":
    _ASCII_WORD_TABLE[_c] = _c
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _ASCII_WORD_TABLE[_c] = _c + 32
# The only characters outside ASCII whose lower case holds ASCII letters (İ -> i + U+0307, the Kelvin sign -> k).
_LOWER_TO_ASCII = "[\u0130\u212a]"


def stopword_counts(texts: pl.Series, language: str) -> pl.Series:
    """Per text, the function words of `language`: `str.to_lowercase().str.count_matches(stopword_pattern(
    language))`, the same counts, faster.

    A word of the pattern is bounded by ASCII `\b` on both sides, so (for lists of ASCII letters only) it
    matches exactly where a maximal run of ASCII word characters of the lower-cased text equals it. With
    every other byte made a space and a space at both ends, those runs are the occurrences of " word ",
    which one Aho-Corasick pass (polars `find_many`, overlapping: neighbours share their space) finds for
    all words at once, at about a third of the regex's cost. Lists with other letters (de, pt, it) take the
    regex.
    """
    pattern = stopword_pattern(language)
    words = STOPWORDS.get(base_language(language), ())
    if pattern is None:
        return pl.Series(texts.name, [0] * len(texts), dtype=pl.UInt32)
    if not all(w.isascii() and w.isalpha() and w.islower() for w in words):
        return texts.str.to_lowercase().str.count_matches(pattern).cast(pl.UInt32)
    special = texts.str.contains(_LOWER_TO_ASCII)
    if special.any():
        idx = special.arg_true()
        texts = texts.scatter(idx, texts.gather(idx).str.to_lowercase())
    spaced = (" " + map_bytes(texts, _ASCII_WORD_TABLE) + " ")
    return spaced.str.find_many([f" {w} " for w in words], overlapping=True).list.len().cast(pl.UInt32)


def _paragraph_foreign(paras: pl.DataFrame, n: int, rows: np.ndarray, langs: list[str],
                       params: LanguageMixingParams) -> dict[str, np.ndarray]:
    """Foreign words per row (whole words) found paragraph by paragraph in shared-script targets."""
    keep = np.zeros(n, dtype=bool)
    keep[rows] = True
    paras = paras.filter(pl.Series(keep[paras["row"].to_numpy()]))
    paras = paras.with_columns(pl.Series("lang", np.array(langs, dtype=object)[paras["row"].to_numpy()].tolist(),
                                         dtype=pl.String))
    parts = []
    for lg in sorted({langs[i] for i in rows}):
        script = target_scripts(lg)[0]
        part = paras.filter(pl.col("lang") == lg).with_columns(
            (pl.col("lat") if script == "latin" else
             pl.col("p").str.count_matches(SCRIPTS[script].unit_pattern).cast(pl.Int64)).alias("w"))
        part = part.filter(pl.col("w") >= params.min_paragraph_words)
        if stopword_pattern(lg) is not None:  # catalogs.scripts.stopword_count, in polars
            part = part.filter(stopword_counts(part["p"], lg) / part["w"] < params.min_stopword_share)
        parts.append(part.select("row", "lang", "p", "w"))
    todo = pl.concat(parts) if parts else pl.DataFrame()
    out: dict[str, np.ndarray] = {}
    if todo.height == 0:
        return out
    pred, prob = predict_languages(todo["p"].to_list())
    todo = todo.with_columns(pl.Series("pred", pred, dtype=pl.String), pl.Series("prob", prob, dtype=pl.Float64))
    bad = todo.filter((pl.col("pred") != pl.col("lang")) & (pl.col("prob") >= params.min_confidence))
    if bad.height == 0:
        return out
    agg = bad.group_by("pred", "row").agg(pl.col("w").sum())
    for (label,), g in agg.group_by("pred"):
        arr = np.zeros(n, dtype=np.int64)
        arr[g["row"].to_numpy()] = g["w"].to_numpy()
        out[str(label)] = arr
    return out


FILTER = FilterSpec(NAME, VERSION, "rule", LanguageMixingParams, fn=language_mixing)
