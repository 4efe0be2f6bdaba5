"""Word n-gram hashing over a whole batch at once (numpy), shared by hygiene, dedup and decontamination.

Normalisation: lowercase; a "word" is a run of characters between whitespace or ASCII punctuation
(underscore is a word character), except that each Han/kana character is a word of its own (Chinese and Japanese do not
put spaces between words). Splitting on whitespace in polars runs about twice as fast as a regex
word tokeniser, and the regex runs only on the rows that hold Han/kana.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import polars as pl
import pyarrow as pa

from catalogs.scripts import CJK_CHAR, HAN_RANGES, KANA_RANGES
from filters._bytes import buffer, code_points, in_ranges, map_bytes

CJK_RE = CJK_CHAR  # the one script table: catalogs/scripts.py
CJK_RANGES = HAN_RANGES + KANA_RANGES  # what CJK_CHAR matches
# Whitespace and ASCII punctuation (not the underscore) separate words: "x^2+3x" is the words x 2 3x.
_SEP_TABLE = np.arange(256, dtype=np.uint8)
for _c in b" \t\n\r\x0b\x0c!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~":
    _SEP_TABLE[_c] = ord(" ")
_WORD_BYTE = _SEP_TABLE != ord(" ")
_WORD_BYTES = _WORD_BYTE.astype(np.uint8).tobytes()  # 1 for a word byte, 0 for a separator: a bool array's bytes
_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_SEPARATORS = bytes(np.flatnonzero(~_WORD_BYTE).astype(np.uint8))
_SEED = 0x5EED
_PRIME = np.uint64(0x100000001B3)  # odd multiplier of the rolling polynomial hash


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads the polynomial hash over all 64 bits (in place; one scratch array for the
    shifts instead of a fresh temporary per step: each costs page faults at batch size)."""
    t = np.empty_like(h)
    np.right_shift(h, np.uint64(30), out=t)
    h ^= t
    h *= np.uint64(0xBF58476D1CE4E5B9)
    np.right_shift(h, np.uint64(27), out=t)
    h ^= t
    h *= np.uint64(0x94D049BB133111EB)
    np.right_shift(h, np.uint64(31), out=t)
    h ^= t
    return h


def _lowered(texts: pl.Series) -> pl.Series:
    """Lower-cased, with a space on each side of every Han/kana character (each is a word)."""
    low = texts.fill_null("").str.to_lowercase()
    cjk = low.str.contains(CJK_RE)
    if cjk.any():
        idx = cjk.arg_true()
        low = low.scatter(idx, low.gather(idx).str.replace_all(CJK_RE, " $0 "))
    return low


def _spaced(texts: pl.Series) -> pl.Series:
    return _ascii_separators_to_space(_lowered(texts))


def _ascii_separators_to_space(texts: pl.Series) -> pl.Series:
    """Map ASCII whitespace and punctuation to spaces; multi-byte UTF-8 sequences are untouched."""
    return map_bytes(texts, _SEP_TABLE)


_CACHE: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()


def token_hashes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(hash of every word of every text, in order; word count per text).

    Memoised on the texts' content (a 128-bit digest of the per-row hashes, which costs about a
    twentieth of the tokenising): hygiene and dedup both tokenise the same batch's `text`.
    """
    texts = texts.fill_null("")
    key = hashlib.blake2b(texts.hash(seed=_SEED).to_numpy().tobytes(), digest_size=16).digest()
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    out = _token_hashes(texts)
    for a in out:
        a.setflags(write=False)  # shared between callers
    with _CACHE_LOCK:
        _CACHE[key] = out
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out


def _sigma_rows_lowered(texts: pl.Series) -> pl.Series:
    """The rows holding a capital sigma lower-cased whole, the others as they are (`_token_hashes` lower-cases
    them word by word): Σ is the one character whose lower case depends on its neighbours (final ς), and they
    may lie across a separator (`AΣ.b` gives σ, `AΣ` alone ς)."""
    texts = texts.fill_null("")
    sigma = texts.str.contains("\u03a3", literal=True)
    if sigma.any():
        idx = sigma.arg_true()
        texts = texts.scatter(idx, texts.gather(idx).str.to_lowercase())
    return texts


def _cjk_chars(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first byte, last byte) of every Han/kana character in a UTF-8 buffer (all take 3 or 4 bytes)."""
    pos, cp, length = code_points(data, min_lead=0xE0)
    cjk = in_ranges(cp, CJK_RANGES)
    return pos[cjk], pos[cjk] + length[cjk] - 1


def _token_hashes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The words are the maximal runs of non-separator bytes inside each text (what splitting on the
    separators and dropping the empty pieces gives), each Han/kana character a word of its own. They are
    found in the byte buffer with numpy and packed end to end into one string column for polars' hash:
    splitting into lists of pieces, most of them empty between punctuation, then exploding and filtering
    them, cost twice as much; spacing the Han/kana characters with a regex, a tenth of this function.

    The words are lower-cased while they are packed, not the texts before: ASCII letters by the same
    `bytes.translate` that drops the separators, and only words holding a character beyond ASCII by polars'
    `to_lowercase` (a few percent of them; lower-casing whole texts cost a third of this function). The
    same words: a character's lower case is a separator, or Han/kana, exactly where the character is
    (checked over every code point in tests/filters/test_kernels.py), and apart from Σ (see
    `_sigma_rows_lowered`) it does not depend on its neighbours. A word's hash does not depend on the other
    words in the column, so the words that change are hashed on their own."""
    n = len(texts)
    off, data = buffer(_sigma_rows_lowered(texts))
    if len(data) == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(n, dtype=np.int64)
    raw = data.tobytes()
    # separators are ASCII: they never sit inside a UTF-8 sequence
    word = np.frombuffer(raw.translate(_WORD_BYTES), dtype=bool)
    nonempty = off[:-1] < off[1:]
    first, last = off[:-1][nonempty], off[1:][nonempty] - 1  # each text's first and last byte
    # a word starts at a word byte after a separator (or a text's start) and ends before one; for booleans
    # a > b is a and not b (in place: every temporary of a 16 MB batch costs page faults)
    start = np.empty_like(word)
    start[0] = word[0]
    np.greater(word[1:], word[:-1], out=start[1:])
    start[first] = word[first]
    end = np.empty_like(word)
    end[-1] = word[-1]
    np.greater(word[:-1], word[1:], out=end[:-1])
    end[last] = word[last]
    c_first, c_last = _cjk_chars(data)
    if len(c_first):  # a Han/kana character is a word: it starts and ends one, and ends the one before it
        start[c_first] = True
        end[c_last] = True
        before, after = c_first[c_first > 0] - 1, c_last[c_last + 1 < len(word)] + 1
        end[before] = word[before]  # (end implies word, so this only adds ends)
        start[after] = word[after]
    starts = np.flatnonzero(start)
    del start
    lengths = np.flatnonzero(end)
    del end, word
    lengths += 1
    lengths -= starts
    packed_off = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=packed_off[1:])
    chars = raw.translate(_ASCII_LOWER, _SEPARATORS)  # the words end to end, ASCII lower-cased
    packed = pl.Series(pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(packed_off), pa.py_buffer(chars)))
    th = packed.hash(seed=_SEED).to_numpy()
    ids = np.searchsorted(packed_off, np.flatnonzero(np.frombuffer(chars, dtype=np.uint8) >= 0xC0), side="right") - 1
    if len(ids):  # the words holding a character beyond ASCII (a lead byte), each once
        ids = ids[np.concatenate(([True], ids[1:] != ids[:-1]))]
        words = packed.gather(ids)
        low = words.str.to_lowercase()
        changed = (words != low).to_numpy()
        if changed.any():
            th = th.copy()
            th[ids[changed]] = low.filter(pl.Series(changed)).hash(seed=_SEED).to_numpy()
    n_words = np.diff(np.searchsorted(starts, off)).astype(np.int64)
    return th, n_words


def tokens(texts: pl.Series) -> pl.Series:
    """List of normalised words per text (what token_hashes hashes)."""
    return _spaced(texts).str.split(" ").list.eval(
        pl.element().filter(pl.element() != "")).alias("tok")


def sequence_hashes(th: np.ndarray, n_words: np.ndarray, salt: int = 0) -> np.ndarray:
    """One order-sensitive uint64 hash of each text's whole word sequence (0 for a text with no words)."""
    out = np.zeros(len(n_words), dtype=np.uint64)
    if len(th) == 0:
        return out
    starts = np.concatenate([[0], np.cumsum(n_words)[:-1]])
    v = np.arange(len(th), dtype=np.uint64)  # (position in its text + salt + 1) * C + th, in place
    v -= np.repeat(starts.astype(np.uint64), n_words)
    with np.errstate(over="ignore"):
        v += np.uint64(salt + 1)
        v *= np.uint64(0x9E3779B97F4A7C15)
        v += th
        _mix(v)
    has = n_words > 0
    out[has] = np.add.reduceat(v, starts[has])
    return out


# Powers of _PRIME and of its inverse modulo 2**64 (_PRIME is odd, so it has one), grown on demand.
_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]
_PRIME_INV = np.uint64(pow(int(_PRIME), -1, 1 << 64))


def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(P**t, P**-t) for t < length, modulo 2**64; built by doubling (numpy's multiply.accumulate is a
    slow scalar loop) and kept for the next batch."""
    with _CACHE_LOCK:
        p, q = _POWERS
        with np.errstate(over="ignore"):
            while len(p) < length:  # P**(k..2k-1) = P**(0..k-1) * P**k
                p = np.concatenate([p, p * (p[-1] * _PRIME)])
                q = np.concatenate([q, q * (q[-1] * _PRIME_INV)])
        _POWERS[:] = [p, q]
    return p[:length], q[:length]


def window_hashes(th: np.ndarray, n: int) -> np.ndarray:
    """h[i] = sum_k th[i+k] * P**(n-1-k) mod 2**64 for every window of n consecutive hashes (before mixing).

    The same values as Horner's rule (h = h*P + th[i+k], k = 0..n-1), from one prefix sum: with
    S[j] = sum_{t<j} th[t] * P**-t, h[i] = (S[i+n] - S[i]) * P**(i+n-1). Four passes instead of 2n.
    """
    length = len(th)
    m = length - n + 1
    p, q = _powers(length)
    s = np.empty(length + 1, dtype=np.uint64)
    s[0] = 0
    with np.errstate(over="ignore"):
        t = np.multiply(th, q)
        np.cumsum(t, out=s[1:])
        h = np.subtract(s[n:], s[:m], out=t[:m])  # (the scratch array reused: no fresh temporary)
        h *= p[n - 1:]
    return h


def word_ngram_hashes(texts: pl.Series | tuple[np.ndarray, np.ndarray], n: int, short_as_one: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of every word n-gram window of every text.

    `texts` is the texts, or their `token_hashes` already computed. Returns (doc, hash, n_words): doc[i]
    is the row of window i (ascending), hash[i] its uint64 hash, n_words the word count per row. With
    `short_as_one`, a text with 1..n-1 words gets one hash of all its words, so short texts can still
    be compared.
    """
    th, n_words = token_hashes(texts) if isinstance(texts, pl.Series) else texts
    m = len(th) - n + 1
    if m > 0:
        h = window_hashes(th, n)
        # A window starting at one of the n-1 positions before a text's end runs into the next text.
        same_doc = np.ones(m, dtype=bool)
        cross = (np.cumsum(n_words)[:, None] - np.arange(1, n, dtype=np.int64)).ravel()
        same_doc[cross[(cross >= 0) & (cross < m)]] = False
        doc = np.repeat(np.arange(len(n_words), dtype=np.int64), np.maximum(n_words - n + 1, 0))
        h = _mix(h[same_doc])
    else:
        doc = np.zeros(0, dtype=np.int64)
        h = np.zeros(0, dtype=np.uint64)
    if short_as_one:
        short = np.flatnonzero((n_words > 0) & (n_words < n))
        if len(short):
            sh = sequence_hashes(th, n_words, salt=n)[short]
            doc = np.concatenate([doc, short])
            h = np.concatenate([h, sh])
            order = np.argsort(doc, kind="stable")
            doc, h = doc[order], h[order]
    return doc, h, n_words
