"""The fast kernels compute exactly what the plain versions they replaced compute (seeded random inputs)."""
from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from catalogs.scripts import NON_LATIN_LETTER, SCRIPTS, STOPWORDS, stopword_pattern
from filters._ngrams import _PRIME, _mix, window_hashes, word_ngram_hashes
from filters.language_mixing import stopword_counts


def _horner(th: np.ndarray, n: int) -> np.ndarray:
    m = len(th) - n + 1
    h = th[:m].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):
            h *= _PRIME
            h += th[k:k + m]
    return h


@pytest.mark.parametrize("n", [1, 2, 5, 10, 13])
def test_window_hashes_equal_horners_rule(n: int) -> None:
    rng = np.random.default_rng(n)
    for length in (n, n + 1, 1000, 70_000):
        th = rng.integers(0, 2**64 - 1, size=length, dtype=np.uint64)
        assert np.array_equal(window_hashes(th, n), _horner(th, n))


def test_word_ngram_windows_stay_inside_each_text() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n_words = rng.integers(0, 15, size=int(rng.integers(1, 20)))
        th = rng.integers(0, 2**63, size=int(n_words.sum()), dtype=np.uint64)
        for n in (1, 2, 5, 10):
            doc, h, _ = word_ngram_hashes((th, n_words), n)
            want_doc, want_h, start = [], [], 0
            for d, k in enumerate(n_words):
                if k >= n:
                    want_doc += [d] * int(k - n + 1)
                    want_h.append(_horner(th[start:start + k], n))
                start += k
            expect = _mix(np.concatenate(want_h)) if want_h else np.zeros(0, dtype=np.uint64)
            assert doc.tolist() == want_doc
            assert np.array_equal(h, expect)


def _random_texts(r: random.Random, words: list[str], count: int) -> list[str]:
    alphabet = list("abcdefghijklmnopqrstuvwxyzTHEOF0123456789_ .,'\n\t-éÉÄΣσλΔ漢字かカ한") + ["\u212a", "\u0130"]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(r.randrange(0, 30)):
            w = r.choice(words) if r.random() < 0.4 else "".join(r.choice(alphabet) for _ in range(r.randrange(1, 6)))
            if r.random() < 0.2:
                w = w.upper() if r.random() < 0.5 else w.capitalize()
            parts.append(w)
        texts.append(r.choice([" ", "", "'", "_", "é", "\u212a", "-", "λ"]).join(parts))
    return texts


@pytest.mark.parametrize("language", ["en", "fr", "es", "de", "pt", "it", "en-US", "ru", "zh"])
def test_stopword_counts_equal_the_regex(language: str) -> None:
    r = random.Random(language)
    words = list(STOPWORDS.get(language.split("-")[0], ("the", "of")))
    texts = pl.Series(_random_texts(r, words, 2000))
    pattern = stopword_pattern(language)
    want = (texts.str.to_lowercase().str.count_matches(pattern).cast(pl.UInt32).to_list() if pattern
            else [0] * len(texts))
    assert stopword_counts(texts, language).to_list() == want


def test_script_units_counted_in_the_runs_equal_counts_in_the_text() -> None:
    """language_mixing counts non-Latin units in the runs of non-Latin letters joined by spaces."""
    r = random.Random(1)
    texts = pl.Series(_random_texts(r, ["Δλ", "αβγ", "привет", "שלום", "नमस्ते", "สวัสดี", "漢字", "ひらがな"], 2000))
    runs = texts.str.extract_all(NON_LATIN_LETTER + "+").list.join(" ")
    for name, script in SCRIPTS.items():
        if name != "latin":
            assert (runs.str.count_matches(script.unit_pattern).to_list()
                    == texts.str.count_matches(script.unit_pattern).to_list()), name


def test_token_hashes_equal_the_hashes_of_the_split_words() -> None:
    """_token_hashes finds words in the byte buffer; they are what splitting on the separators gives."""
    from filters._ngrams import _SEED, _token_hashes, tokens

    r = random.Random(2)
    # capital sigma beside letters, separators and case-ignorable ones (its final form depends on them), a Han
    # character of four bytes, halfwidth kana, Hangul (no word of its own), capitals beyond ASCII
    alphabet = list("ab c.,!?\n\t_-xyZ漢字かλΔé ") + ["  ", "\u3000", "\u00a0", "\u212a", "Σ", "Σ", "ΑΣ", "'",
                                                     ":", "\U00020000", "\uff76", "한", "\u0130", "É", "Ω", "ẞ"]
    batches = [[], [""], [None], ["", "", "a"], ["a", ""], [" a "], ["...", "a.b"], [None, "x y", None],
               ["AΣ.b", "AΣ", "ΣA", "AΣ'b", "a漢b", "漢", "x\U00020000y", "ÉTÉ Ω"]]
    batches += [[None if r.random() < 0.05 else "".join(r.choice(alphabet) for _ in range(r.randrange(0, 40)))
                 for _ in range(r.randrange(1, 12))] for _ in range(300)]
    for batch in batches:
        texts = pl.Series(batch, dtype=pl.String)
        words = tokens(texts)
        th, n_words = _token_hashes(texts)
        flat = words.explode().drop_nulls()
        assert n_words.tolist() == words.list.len().to_list()
        assert th.tolist() == flat.hash(seed=_SEED).to_list()
    sliced = pl.Series(["a b", "c  d", "e"]).slice(1, 2)
    assert _token_hashes(sliced)[1].tolist() == [2, 1]


def test_normalise_equals_the_expression() -> None:
    """language_mixing's normalise (the repeated notation pass on the rows it still matches only) gives the
    strings normalise_expr gives, on texts dense in notation runs side by side."""
    from filters.language_mixing import normalise, normalise_expr

    r = random.Random(3)
    notation = ["sin", "cos", "NaCl", "mol", "kg", "Hz", "ABC", "getValue", "He", "x", "=", "+", "$x$", "λ", "the",
                "cat", "max_len", "H2O", "\\alpha", "`code`", "mole", "é", "Δ"]
    texts = pl.Series(_random_texts(r, notation, 3000) + ["sin cos tan", "NaCl-KCl mol kg", "", "a\n\nb"])
    want = pl.DataFrame({"t": texts}).select(normalise_expr(pl.col("t"))).to_series()
    assert normalise(texts).to_list() == want.to_list()


def test_lower_case_keeps_separators_and_han_kana_where_they_are() -> None:
    """What _token_hashes relies on to lower-case words after finding them: over every code point, a
    character's lower case holds a word separator, or a Han/kana character, exactly when the character is
    one (then it is itself), and lower-casing twice changes nothing."""
    from catalogs.scripts import CJK_CHAR
    from filters._ngrams import _WORD_BYTE

    chars = pl.Series([chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000])
    low = chars.str.to_lowercase()
    assert (low.str.to_lowercase() == low).all()
    separators = "".join(chr(b) for b in range(128) if not _WORD_BYTE[b])
    sep_class = "[" + "".join("\\" + c if c in "\\]^-[" else c for c in separators) + "]"
    for pattern in (sep_class, CJK_CHAR):
        is_it = chars.str.contains(pattern)
        assert (low.str.contains(pattern) == is_it).all(), pattern
        assert (low.filter(is_it) == chars.filter(is_it)).all(), pattern


def test_script_units_equal_the_regexes() -> None:
    """language_mixing counts Latin words per paragraph and the other scripts' units per text in the byte buffer:
    the counts of the script table's regexes (Latin after splitting at the paragraph separator), on texts dense
    in separators, letters beyond ASCII (two and three bytes) of every script, and empty texts and paragraphs."""
    from catalogs.scripts import PARAGRAPH_SEP
    from filters.language_mixing import script_units

    r = random.Random(4)
    pieces = ["a", "b", "ab", "é", "É", "ÿ", "ɏ", "ḁ", "ⱡ", "ꜣ", "ﬀ", "Ａ", "ｚ", "λ", "Δ", "αβγ", "я", "ик", "漢", "か", "한",
              "글", "ש", "ל", "ب", "ت", "न", "म", "ก", "\u0e40", "\U00020000", " ", "1", "_", "-", "\n", PARAGRAPH_SEP,
              PARAGRAPH_SEP, "\U0001f600", "\u00d7", "\u00f7", "\u3000"]
    batches = [[], [""], ["", ""], [PARAGRAPH_SEP], ["ab", "cd"], ["a", "b"], ["é", "a"], ["aé", "", "éa"],
               ["ab" + PARAGRAPH_SEP, PARAGRAPH_SEP + "ab"], ["αβ", "γδ"], ["αβγ", "", "δ"]]
    batches += [["".join(r.choice(pieces) for _ in range(r.randrange(0, 30))) for _ in range(r.randrange(1, 15))]
                for _ in range(400)]
    for batch in batches:
        texts = pl.Series(batch, dtype=pl.String)
        lat, units = script_units(texts)
        paragraphs = pl.DataFrame({"p": texts.str.split(PARAGRAPH_SEP)}).explode("p")["p"]
        assert lat.tolist() == paragraphs.str.count_matches(SCRIPTS["latin"].unit_pattern).to_list(), batch
        for name, script in SCRIPTS.items():
            if name != "latin":
                assert units[name].tolist() == texts.str.count_matches(script.unit_pattern).to_list(), (name, batch)
