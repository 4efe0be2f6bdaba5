"""dedup: exact and near-duplicate removal over prompts or responses, across batches.

`DedupIndex(params)` is fed batch after batch; it remembers what it kept. The rule, stated once:

    **the first seen is kept** — rows are taken in the order given (batch after batch, and row after
    row inside a batch); a row is dropped when it duplicates a row already kept, and its reason names
    that kept row's generation_id. Feed the corpus sorted by generation_id to keep the earliest id.

The outcome does not depend on where the batch boundaries fall.

- exact: the word sequence, lowercased, with whitespace and ASCII punctuation ignored, hashed (64-bit).
- near: MinHash over word 5-gram shingles (`ngram`), `num_perm` values; LSH with `bands` x `rows`
  finds candidates, and a candidate is a duplicate when the signatures' estimated Jaccard similarity
  is at least `threshold`. The MinHash is numpy over the whole batch: one 64-bit hash per shingle,
  then one-permutation hashing with densification (see `minhash`), one pass over the shingles.
- field "problem" deduplicates prompts: the unit is the prompt_id, so the generations of a kept prompt
  all pass, and those of a duplicate prompt all fail, naming the kept prompt's first generation.
  Other fields ("answer", "reasoning", "text") deduplicate responses, one generation each.

Memory: per kept unit, `num_perm` 16-bit signature values (the low bits of each minimum; the
Jaccard estimate stays unbiased to 1/65536), `bands` 64-bit LSH keys and one exact key, held in
sorted numpy runs (no per-document Python objects except the kept generation_id). The runs and the
signature blocks grow without copying the whole (MAX_RUN, SIG_BLOCK_ROWS): the peak stays near the size.

Why our own MinHash/LSH rather than rensa or datasketch (benchmarks/bench_dedup.py, 20k synthetic
CoTs of ~3 kB, planted pairs, one run): rensa's documented path (RMinHash.from_token_sets +
RMinHashDeduplicator) ran at 0.28x our docs/s with 1.7x our peak memory, datasketch (MinHash.bulk +
MinHashLSH) at 0.08x, both at the same recall (our estimator: mean 0.8007, SD 0.032 on pairs of true
Jaccard 0.8; rensa 0.7999, 0.032). Neither deduplicator names the kept document a duplicate matches,
nor its similarity, which our reasons need, so both needed a query per dropped document on top.
rensa's prehashed signature kernel alone is faster than our numpy one, but its digest matrix has no
buffer protocol: copying it out through Python lists (`to_rows`) ate the gain, and DedupIndex fed
rensa signatures ran at 0.96x (0.92x in a second run) with more memory. Revisit if rensa exposes
its matrix as a buffer.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from filters._ngrams import _mix, sequence_hashes, token_hashes, word_ngram_hashes
from filters.base import (
    INPUT_ERROR,
    FilterParams,
    FilterSpec,
    apply_with_input_errors,
    decisions,
    prepare_batch,
    validate_params,
)

VERSION = "1"
NAME = "dedup"


class DedupParams(FilterParams):
    field: Literal["problem", "answer", "reasoning", "text"] = Field(
        "text", description="problem: deduplicate prompts; answer/reasoning/text: deduplicate responses")
    exact: bool = Field(True, description="drop exact duplicates (lowercased, whitespace collapsed)")
    near: bool = Field(True, description="drop near-duplicates (MinHash LSH)")
    threshold: float = Field(0.8, ge=0.0, le=1.0, description="estimated Jaccard similarity for a near-duplicate")
    ngram: int = Field(5, ge=1, le=50, description="word shingle size")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash values per signature (bands * rows of "
                                                           "them feed LSH, all of them the Jaccard estimate)")
    bands: int = Field(20, ge=1, le=1024, description="LSH bands")
    rows: int = Field(5, ge=1, le=64, description="LSH rows per band")
    seed: int = Field(1, ge=0, le=2**31, description="seed of the MinHash permutations")

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupParams:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}; "
                             f"raise num_perm or lower bands/rows")
        return self


# Entries in one merged run of a _KeyStore (64 MB of keys and values): a merge never holds more than about twice
# that at once, so the index's peak stays near its size, while a lookup searches a run more per 4M entries.
MAX_RUN = 1 << 22
# Signatures are kept in blocks of this many rows (2 MB at 128 values): the store grows a block at a time and is
# never copied, where doubling one array held both copies at once.
SIG_BLOCK_ROWS = 1 << 13


class _KeyStore:
    """uint64 key -> int64 value, append-only, as sorted runs merged geometrically (an LSM tree) up to `max_run`
    entries a run.

    `lookup` returns the value of the earliest added entry with that key, or -1.
    """

    def __init__(self, max_run: int = MAX_RUN) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []
        self.max_run = max_run

    def __len__(self) -> int:
        return sum(len(k) for k, _ in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.runs)

    def add(self, keys: np.ndarray, vals: np.ndarray) -> None:
        if len(keys) == 0:
            return
        o = np.argsort(keys, kind="stable")
        self.runs.append((keys[o], vals[o]))
        while len(self.runs) >= 2 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]) and \
                len(self.runs[-2][0]) + len(self.runs[-1][0]) <= self.max_run:
            (k1, v1), (k2, v2) = self.runs[-2], self.runs[-1]
            self.runs[-2:] = [_merge(k1, v1, k2, v2)]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        out = np.full(len(keys), -1, dtype=np.int64)
        for k, v in self.runs:  # oldest run first
            todo = np.flatnonzero(out < 0)
            if len(todo) == 0:
                break
            q = keys[todo]
            pos = np.searchsorted(k, q)
            pos_c = np.minimum(pos, len(k) - 1)
            hit = (pos < len(k)) & (k[pos_c] == q)
            out[todo[hit]] = v[pos_c[hit]]
        return out


def _merge(k1: np.ndarray, v1: np.ndarray, k2: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs as one, the older run's (k1's) entries first among equal keys: each newer entry goes after
    the older keys up to its own, in its order. No sort, and no index array the size of the whole."""
    at = np.searchsorted(k1, k2, side="right") + np.arange(len(k2))
    older = np.ones(len(k1) + len(k2), dtype=bool)
    older[at] = False
    k, v = np.empty(len(older), dtype=k1.dtype), np.empty(len(older), dtype=v1.dtype)
    k[at], v[at] = k2, v2
    k[older], v[older] = k1, v1
    return k, v


class _SigStore:
    """Signature rows by kept index, in blocks of `block_rows` (see SIG_BLOCK_ROWS)."""

    def __init__(self, width: int, block_rows: int = SIG_BLOCK_ROWS) -> None:
        self.width, self.block_rows = width, block_rows
        self.blocks: list[np.ndarray] = []

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks)

    def put(self, start: int, rows: np.ndarray) -> None:
        """Rows start, start + 1, ... (each row once, in order of kept index)."""
        done = 0
        while done < len(rows):
            b, o = divmod(start + done, self.block_rows)
            while len(self.blocks) <= b:
                self.blocks.append(np.zeros((self.block_rows, self.width), dtype=np.uint16))
            n = min(len(rows) - done, self.block_rows - o)
            self.blocks[b][o:o + n] = rows[done:done + n]
            done += n

    def get(self, ids: Sequence[int]) -> np.ndarray:
        return np.stack([self.blocks[i // self.block_rows][i % self.block_rows] for i in ids])


def minhash(texts: pl.Series | tuple[np.ndarray, np.ndarray], num_perm: int, ngram: int, seed: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint32 [n, num_perm], has_shingles bool [n]) of word-`ngram` shingle sets.

    One-permutation hashing with optimal densification (Shrivastava, ICML 2017): each shingle's
    64-bit hash picks one of `num_perm` bins (high bits) and competes for that bin's minimum (low
    bits); an empty bin borrows the value of the bin a fixed pseudo-random probe sequence points
    to. P(two signatures agree in a bin) is the Jaccard similarity, as with `num_perm` independent
    permutations, at the cost of one pass over the shingles instead of `num_perm`.
    """
    doc, h, n_words = word_ngram_hashes(texts, ngram, short_as_one=True)
    n, k = len(n_words), num_perm
    empty_val = np.uint32(0xFFFFFFFF)
    present = np.zeros(n, dtype=bool)
    if len(h) == 0:
        return np.full((n, k), empty_val, dtype=np.uint32), present
    present[doc] = True
    # in place where it can be (h and doc are fresh arrays): each temporary of a batch costs page faults
    with np.errstate(over="ignore"):
        h ^= np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        _mix(h)
        if k & (k - 1) == 0:  # ((h >> 32) * k) >> 32 is h >> (64 - log2 k) for a power of two
            bins = h >> np.uint64(64 - k.bit_length() + 1)
        else:
            bins = ((h >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32)
        key = doc.view(np.uint64) if doc.dtype == np.int64 else doc.astype(np.uint64)
        key *= np.uint64(k)
        key += bins
        key = key.view(np.int64)
    h &= np.uint64(0xFFFFFFFE)
    val = h.astype(np.uint32)  # never equal to the empty marker
    flat = np.full(n * k, empty_val, dtype=np.uint32)
    np.minimum.at(flat, key, val)
    sig = flat.reshape(n, k)
    empty0 = sig == empty_val
    empty0[~present] = False  # documents without shingles stay all-empty
    if empty0.any():
        sig0 = sig.copy()
        todo = empty0.copy()
        probes = np.random.default_rng(seed ^ 0xD3E5).integers(0, k, size=(_MAX_PROBES, k))
        for a in range(_MAX_PROBES):
            r, c = np.nonzero(todo)
            if len(r) == 0:
                break
            src = probes[a, c]
            ok = ~empty0[r, src] & present[r]
            sig[r[ok], c[ok]] = sig0[r[ok], src[ok]]
            todo[r[ok], c[ok]] = False
    return sig, present


_MAX_PROBES = 256


def dedup_features(texts: pl.Series, params: DedupParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(exact key uint64 [n], MinHash signatures uint32 [n, num_perm], has_shingles [n]); pure, so
    callers may compute it for several batches in parallel and feed `DedupIndex.apply(..., features)`.

    The exact key hashes the normalised word sequence: lowercase, whitespace and ASCII punctuation
    ignored (see filters._ngrams); a text with no words gets a key of its raw text.
    """
    th, n_words = token_hashes(texts)
    exact = sequence_hashes(th, n_words)
    none = n_words == 0
    if none.any():
        exact[none] = texts.filter(pl.Series(none)).fill_null("").hash(seed=0x0D0D).to_numpy()
    if params.near:
        sig, present = minhash((th, n_words), params.num_perm, params.ngram, params.seed)
    else:
        sig, present = np.zeros((len(texts), 0), dtype=np.uint32), np.zeros(len(texts), dtype=bool)
    return exact, sig, present


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 LSH key per (doc, band): a hash of the band's `rows` values and the band number."""
    n = sig.shape[0]
    keys = np.empty((n, bands), dtype=np.uint64)
    s = sig.astype(np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            k = np.full(n, np.uint64(b + 1) * np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
            for r in range(rows):
                k = _mix(k ^ s[:, b * rows + r])
            keys[:, b] = k
    return keys


class DedupIndex:
    """Exact + near-duplicate index, fed batches in order; keeps the first seen (see module doc).

    Call it (or `.apply`) with each batch; it returns the decisions for that batch.
    """

    def __init__(self, params: DedupParams | dict[str, Any] | None = None) -> None:
        self.params: DedupParams = validate_params(NAME, DedupParams, params)
        p = self.params
        self.exact = _KeyStore()
        self.bands = _KeyStore()
        self._sigs = _SigStore(p.num_perm)  # [kept, num_perm]
        self.kept_ids: list[str] = []  # representative index -> its generation_id
        self.kept_units: list[str] = []  # representative index -> its prompt_id (field "problem" only)
        self.unit_decision: dict[str, tuple[int, str, float | None]] = {}  # prompt_id -> (rep, kind, jaccard)

    def __call__(self, batch: Any, features: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                 ) -> pl.DataFrame:
        return self.apply(batch, features)

    @property
    def n_kept(self) -> int:
        return len(self.kept_ids)

    @property
    def nbytes(self) -> int:
        return self.exact.nbytes + self.bands.nbytes + self._sigs.nbytes

    def apply(self, batch: Any, features: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
              ) -> pl.DataFrame:
        """Decide one batch. `features` is `dedup_features(prepared_batch[field], params)` computed
        elsewhere (e.g. in a worker process), for rows with valid text; None computes it here."""
        df = prepare_batch(batch)
        if features is not None:
            good = df[INPUT_ERROR].is_null().to_numpy()
            if len(features[0]) == len(df) and not good.all():
                features = tuple(f[good] for f in features)
        return apply_with_input_errors(df, NAME, VERSION, lambda d: self._apply(d, features))

    def _apply(self, df: pl.DataFrame, features: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> pl.DataFrame:
        p = self.params
        by_prompt = p.field == "problem"
        if by_prompt:
            units = df["prompt_id"].fill_null(df["generation_id"])
        else:
            units = df["generation_id"]
        # One entry per unit not decided before, in first-seen order.
        first = (pl.DataFrame({"u": units, "i": np.arange(df.height)})
                 .group_by("u", maintain_order=True).agg(pl.col("i").first()))
        if by_prompt:  # prompts decided in an earlier batch keep that decision
            first = first.filter(pl.Series([u not in self.unit_decision for u in first["u"].to_list()],
                                           dtype=pl.Boolean))
        rows = first["i"].to_numpy()
        unit_list = units.to_list()
        texts = df[p.field].gather(rows)
        gids = df["generation_id"].gather(rows).to_list()
        m = len(rows)
        rep = np.full(m, -1, dtype=np.int64)  # kept representative each new unit duplicates, -1: kept
        kind = np.full(m, "", dtype=object)
        jac = np.full(m, np.nan)
        if features is None:
            ek, sig, present = dedup_features(texts, p)
        else:
            if len(features[0]) != df.height:
                raise ValueError(f"dedup features cover {len(features[0])} rows, the batch has {df.height}")
            ek, sig, present = (f[rows] for f in features)
        if p.exact:
            hit = self.exact.lookup(ek)
            rep[hit >= 0] = hit[hit >= 0]
            kind[hit >= 0] = "exact"
        if p.near:
            sig16 = sig.astype(np.uint16)
            keys = band_keys(sig, p.bands, p.rows)
        # resolve in order: against the index, and against earlier kept rows of this batch
        new_rep_of_row = np.full(m, -1, dtype=np.int64)
        batch_exact: dict[int, int] = {}
        batch_bands: dict[int, list[int]] = {}
        if p.near:
            flat = keys.ravel()
            found = self.bands.lookup(flat).reshape(keys.shape)
            # One bool per row; asarray, as numpy types any(axis=...) as a bool or an array.
            has_found = np.asarray((found >= 0).any(axis=1))
            # within-batch candidates: rows sharing a band key with an earlier row
            kf = pl.DataFrame({"k": flat, "r": np.repeat(np.arange(m), p.bands)})
            shared = kf.filter(pl.col("k").is_duplicated())
            for k, r in zip(shared["k"].to_list(), shared["r"].to_list()):
                batch_bands.setdefault(k, []).append(r)
            rows_with_batch_cands = set()
            for lst in batch_bands.values():
                rows_with_batch_cands.update(lst[1:])
        base = len(self.kept_ids)
        kept_local: list[int] = []
        for j in range(m):
            if rep[j] >= 0:
                continue
            if p.exact:
                ejk = int(ek[j])
                if ejk in batch_exact:
                    rep[j] = batch_exact[ejk]
                    kind[j] = "exact"
                    continue
            if p.near and present[j]:
                best, best_j = -1, -1.0
                if has_found[j]:
                    cl = sorted({int(c) for c in found[j] if c >= 0})
                    # count / num_perm: the float np.mean gives (a sum of ones is exact), at a third of its cost
                    est = np.count_nonzero(self._sigs.get(cl) == sig16[j], axis=1) / p.num_perm
                    for c, e in zip(cl, est):
                        if e >= p.threshold and e > best_j:
                            best, best_j = c, float(e)
                if j in rows_with_batch_cands:
                    local = set()
                    for k in keys[j]:
                        for r in batch_bands.get(int(k), ()):
                            if r < j and new_rep_of_row[r] >= 0:
                                local.add(r)
                    for r in sorted(local):
                        e = np.count_nonzero(sig16[r] == sig16[j]) / p.num_perm
                        if e >= p.threshold and e > best_j:
                            best, best_j = int(new_rep_of_row[r]), e
                if best >= 0:
                    rep[j], kind[j], jac[j] = best, "near", best_j
                    continue
            # kept
            new_rep_of_row[j] = base + len(kept_local)
            kept_local.append(j)
            if p.exact:
                batch_exact[int(ek[j])] = int(new_rep_of_row[j])
        kl = np.array(kept_local, dtype=np.int64)
        ids = base + np.arange(len(kl), dtype=np.int64)
        if p.exact:
            self.exact.add(ek[kl], ids)
        if p.near and len(kl):
            kp = kl[present[kl]]
            kids = base + np.searchsorted(kl, kp)
            self.bands.add(keys[kp].ravel(), np.repeat(kids, p.bands))
            self._sigs.put(base, sig16[kl])
        self.kept_ids.extend(gids[j] for j in kept_local)
        if by_prompt:
            self.kept_units.extend(unit_list[int(rows[j])] for j in kept_local)
        # decisions per unit, then per row
        unit_reason: dict[str, tuple[bool, str, float | None]] = {}
        val: float | None  # a duplicate's jaccard (1.0 when exact); None for a row kept
        for j in range(m):
            u = unit_list[int(rows[j])]
            if rep[j] < 0:
                unit_reason[u] = (True, "ok", None)
                if by_prompt:
                    self.unit_decision[u] = (-1, "", None)
                continue
            r = int(rep[j])
            if kind[j] == "exact":
                msg = f"exact_duplicate_of {self.kept_ids[r]}"
                val = 1.0
            else:
                msg = f"near_duplicate_of {self.kept_ids[r]} (jaccard {jac[j]:.2f})"
                val = float(jac[j])
            if by_prompt:
                msg += f" (prompt {self.kept_units[r]})"
                self.unit_decision[u] = (r, msg, val)
            unit_reason[u] = (False, msg, val)
        passed, reasons, values = [], [], []
        for u in unit_list:
            if u in unit_reason:
                ok, msg, val = unit_reason[u]
            else:  # a prompt decided in an earlier batch
                r, msg, val = self.unit_decision[u]
                ok = r < 0
                msg = "ok" if ok else msg
            passed.append(ok)
            reasons.append(msg)
            values.append(val)
        return decisions(df["generation_id"], NAME, VERSION, pl.Series(passed, dtype=pl.Boolean),
                         pl.Series(reasons, dtype=pl.String), pl.Series(values, dtype=pl.Float64))


def first_pass(params: DedupParams) -> Callable[[pl.DataFrame], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """dedup's pure part, run in the worker processes: a batch's MinHash features, for `DedupIndex.apply`."""

    def features(batch: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return dedup_features(prepare_batch(batch)[params.field].fill_null(""), params)

    return features


FILTER = FilterSpec(NAME, VERSION, "stateful", DedupParams, factory=DedupIndex, first_pass=first_pass)
