"""Text kernels over the UTF-8 bytes of a whole batch (numpy), shared by the n-gram hashing and the language rule.

Why by hand: polars and pyarrow have no kernel that maps bytes through a table, or that finds the runs of a
character class with their positions; their regexes do it at two to five times the cost (per match) on 16 KB
chains of thought. Every function here is checked against the regex or polars expression it replaces in
tests/filters/test_kernels.py.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

Ranges = tuple[tuple[int, int] | int, ...]


def large_strings(texts: pl.Series) -> pa.LargeStringArray:
    """The texts as one Arrow large-string array (64-bit offsets into one data buffer)."""
    arr = texts.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.cast(arr, pa.large_string())


def buffer(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64 [n + 1] from 0, data uint8): text i is data[offsets[i]:offsets[i + 1]]; nulls are empty."""
    arr = large_strings(texts.fill_null(""))
    n = len(arr)
    off = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + n + 1]
    data_buf = arr.buffers()[2]
    if n == 0 or data_buf is None or off[-1] == off[0]:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    return off - off[0], np.frombuffer(data_buf, dtype=np.uint8)[off[0]: off[-1]]


def map_bytes(texts: pl.Series, table: np.ndarray | bytes) -> pl.Series:
    """Every byte of every text through `table` (256 bytes, or 256 uint8), by `bytes.translate`: a regex replace
    costs ten times more, numpy's fancy indexing (`table[buf]`) three. The table must keep the result valid UTF-8:
    map bytes >= 0x80 to themselves, or all of them to ASCII."""
    arr = large_strings(texts)
    _, offsets, data = arr.buffers()
    if data is None or len(arr) == 0:
        return texts
    mapped = data.to_pybytes().translate(table_bytes(table))
    out = pa.LargeStringArray.from_buffers(len(arr), offsets, pa.py_buffer(mapped), arr.buffers()[0],
                                           arr.null_count, arr.offset)
    return pl.Series(texts.name, out)


def table_bytes(table: np.ndarray | bytes) -> bytes:
    out = table if isinstance(table, bytes) else np.asarray(table, dtype=np.uint8).tobytes()
    if len(out) != 256:
        raise ValueError(f"a byte table has 256 entries, not {len(out)}")
    return out


def code_points(data: np.ndarray, min_lead: int = 0xC2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, code point, length in bytes) of every character of a valid UTF-8 buffer whose first byte is
    `min_lead` or more (0xC2: every character beyond ASCII; 0xE0: those of 3 and 4 bytes)."""
    lead = np.flatnonzero(data >= max(min_lead, 0xC2))
    size = len(data)
    b0 = data[lead].astype(np.int64)
    length = np.where(b0 >= 0xF0, 4, np.where(b0 >= 0xE0, 3, 2))
    ok = lead + length <= size  # a valid buffer holds every continuation byte; kept in bounds for numpy
    lead, b0, length = lead[ok], b0[ok], length[ok]

    def cont(k: int) -> np.ndarray:  # the k-th continuation byte's 6 bits (0 past the character's end)
        return np.where(length > k, data[np.minimum(lead + k, size - 1)].astype(np.int64) & 0x3F, 0)

    c1, c2, c3 = cont(1), cont(2), cont(3)
    cp = np.where(length == 2, ((b0 & 0x1F) << 6) | c1,
                  np.where(length == 3, ((b0 & 0x0F) << 12) | (c1 << 6) | c2,
                           ((b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3))
    return lead, cp, length


def in_ranges(cp: np.ndarray, ranges: Ranges) -> np.ndarray:
    """cp in any of `ranges` ((first, last) pairs or single code points, as catalogs/scripts.py writes them)."""
    out = np.zeros(len(cp), dtype=bool)
    for r in ranges:
        lo, hi = (r, r) if isinstance(r, int) else r
        out |= (cp >= lo) & (cp <= hi)
    return out
