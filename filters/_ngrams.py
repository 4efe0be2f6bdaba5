"""Word n-gram hashing over a whole batch at once (numpy), shared by hygiene, dedup and decontamination.

Normalisation: lowercase; a "word" is a run of letters/digits, except that each Han/kana character
is a word of its own (Chinese and Japanese do not put spaces between words).
"""
from __future__ import annotations

import numpy as np
import polars as pl

TOKEN_RE = r"[\p{Han}\p{Hiragana}\p{Katakana}]|[^\W\p{Han}\p{Hiragana}\p{Katakana}]+"
_SEED = 0x5EED
_PRIME = np.uint64(0x100000001B3)  # odd multiplier of the rolling polynomial hash


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads the polynomial hash over all 64 bits (in place)."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def tokens(texts: pl.Series) -> pl.Series:
    """List of normalised words per text."""
    return texts.fill_null("").str.to_lowercase().str.extract_all(TOKEN_RE).alias("tok")


def word_ngram_hashes(texts: pl.Series, n: int, short_as_one: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of every word n-gram window of every text.

    Returns (doc, hash, n_words): doc[i] is the row of window i, hash[i] its uint64 hash, n_words the
    word count per row. With `short_as_one`, a text with 1..n-1 words gets one hash of all its words,
    so short texts can still be compared.
    """
    tok = tokens(texts)
    n_words = tok.list.len().fill_null(0).to_numpy().astype(np.int64)
    th = tok.explode(empty_as_null=False, keep_nulls=False).hash(seed=_SEED).to_numpy()
    assert len(th) == n_words.sum()
    doc_of_tok = np.repeat(np.arange(len(n_words), dtype=np.int64), n_words)
    m = len(th) - n + 1
    if m > 0:
        h = th[: m].copy()
        with np.errstate(over="ignore"):
            for k in range(1, n):
                h *= _PRIME
                h += th[k: k + m]
        same_doc = doc_of_tok[: m] == doc_of_tok[n - 1:]
        doc = doc_of_tok[: m][same_doc]
        h = _mix(h[same_doc])
    else:
        doc = np.zeros(0, dtype=np.int64)
        h = np.zeros(0, dtype=np.uint64)
    if short_as_one:
        short = np.flatnonzero((n_words > 0) & (n_words < n))
        if len(short):
            sh = tok.gather(short).list.join(" ").hash(seed=_SEED + 1).to_numpy()
            doc = np.concatenate([doc, short])
            h = np.concatenate([h, sh])
            order = np.argsort(doc, kind="stable")
            doc, h = doc[order], h[order]
    return doc, h, n_words
