"""decontamination: no prompt may share an n-gram with a benchmark item.

The benchmark n-grams are built once (`BenchmarkIndex.from_files(paths, n)`), from the files `r1f ingest`
reads (JSONL, a JSON array, Parquet; catalogs/ingest.py reads them) whose items have a `problem`,
`question` or `prompt` field. Words are normalised as in dedup (lowercase,
letters and digits; each Han/kana character a word); n = 8 by default, as open-r1 and s1 use (the
R1 paper reports 10). A benchmark item shorter than n words is matched whole.

A flagged row names the benchmark (file stem) and item — its `id`/`idx`/`task_id` field when it has
one, else its 0-based row index: `contaminated: math500#17 (8-gram overlap, 23 shared)`. The value is
the number of n-grams the prompt shares with that item (the item with most shared n-grams is named).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field

from catalogs.errors import UserError
from filters._ngrams import word_ngram_hashes
from filters.base import (
    FilterParams,
    FilterSpec,
    apply_with_input_errors,
    decisions,
    prepare_batch,
    validate_params,
)

VERSION = "1"
NAME = "decontamination"
TEXT_FIELDS = ("problem", "question", "prompt")
ID_FIELDS = ("id", "idx", "task_id", "problem_id", "question_id")
FORMATS = ".jsonl, .jsonl.gz, .json (an array) or .parquet"


class DecontaminationParams(FilterParams):
    benchmark_files: list[str] = Field(default_factory=list,
                                       description="benchmark files (JSONL/JSON/Parquet with a problem, "
                                                   "question or prompt field)")
    n: int = Field(8, ge=1, le=64, description="word n-gram size")
    min_shared: int = Field(1, ge=1, le=10_000, description="shared n-grams needed to flag a prompt")
    field: Literal["problem", "text", "reasoning", "answer"] = Field("problem", description="what to check")


class BenchmarkFormatError(UserError, ValueError):
    pass


@dataclass
class BenchmarkItem:
    benchmark: str
    item: str


def _read_records(path: Path) -> list[Any]:
    """Every item of a benchmark file, read by the reader `r1f ingest` uses, with its errors: a file ingest
    refuses (one JSON object wrapping a list, say) is refused here too, the same way."""
    from catalogs.errors import CatalogError
    from catalogs.ingest import IngestOptions, RecordError, detect_format, read_records

    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist; check decontamination.benchmark_files")
    try:
        fmt = detect_format(path)
    except CatalogError:
        raise BenchmarkFormatError(f"benchmark file {path}: unknown format {path.suffix!r}; give {FORMATS} files "
                                   f"whose items have one of the fields {list(TEXT_FIELDS)}") from None
    # A `question` column is a benchmark's text too (TEXT_FIELDS): ingest's schema check reads it as the problem.
    opts = IngestOptions(source=benchmark_name(path), rename={"question": "problem"})
    try:
        records = [rec for _, rec, _ in read_records(path, opts, fmt)]
    except CatalogError as e:
        raise BenchmarkFormatError(f"benchmark file {e}") from None
    bad = next((rec for rec in records if isinstance(rec, RecordError)), None)
    if bad is not None:
        raise BenchmarkFormatError(f"benchmark file {path}, {bad}")
    return records


def load_benchmark(path: str | PathLike[str]) -> tuple[list[str], list[str]]:
    """(item ids, item texts) of one benchmark file; a clear error when the format or fields are wrong."""
    p = Path(path)
    records = _read_records(p)
    if not records:
        raise BenchmarkFormatError(f"benchmark file {p} holds no items")
    if not all(isinstance(r, dict) for r in records):
        raise BenchmarkFormatError(f"benchmark file {p}: items must be JSON objects with one of the fields "
                                   f"{list(TEXT_FIELDS)}")
    field = next((f for f in TEXT_FIELDS if any(isinstance(r.get(f), str) for r in records)), None)
    if field is None:
        raise BenchmarkFormatError(f"benchmark file {p}: no item has a text field named one of {list(TEXT_FIELDS)}; "
                                   f"its fields are {sorted(records[0])}. Rename the question field to 'problem'.")
    id_field = next((f for f in ID_FIELDS if all(f in r and r[f] is not None for r in records)), None)
    ids = [str(r[id_field]) if id_field else str(i) for i, r in enumerate(records)]
    texts = [t if isinstance(t := r.get(field), str) else "" for r in records]
    return ids, texts


def benchmark_name(path: str | PathLike[str]) -> str:
    name = Path(path).name
    for suf in (".jsonl.gz", ".jsonl", ".ndjson", ".json", ".parquet"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return Path(path).stem


class BenchmarkIndex:
    """The word n-grams of every benchmark item, as a sorted uint64 array for vectorised lookups."""

    def __init__(self, names: list[str], n: int, keys: np.ndarray, owners: np.ndarray, labels: list[str]) -> None:
        self.names = names
        self.n = n
        self.keys = keys  # sorted n-gram hashes
        self.owners = owners  # item number for each key
        self.labels = labels  # item number -> "benchmark#id"

    @classmethod
    def from_texts(cls, items: Iterable[tuple[str, str, str]], n: int = 8) -> BenchmarkIndex:
        """From (benchmark, item id, text) triples."""
        labels, texts, names = [], [], []
        for bench, item, text in items:
            labels.append(f"{bench}#{item}")
            texts.append(text)
            if bench not in names:
                names.append(bench)
        doc, h, _ = word_ngram_hashes(pl.Series(texts, dtype=pl.String), n, short_as_one=True)
        # one entry per (key, item)
        pairs = pl.DataFrame({"k": h, "o": doc}).unique(maintain_order=True).sort("k", "o")
        return cls(names, n, pairs["k"].to_numpy(), pairs["o"].to_numpy(), labels)

    @classmethod
    def from_files(cls, paths: Sequence[str | PathLike[str]], n: int = 8) -> BenchmarkIndex:
        """Read each benchmark file once; see the module doc for the accepted formats."""
        if isinstance(paths, (str, PathLike)):
            paths = [paths]
        triples: list[tuple[str, str, str]] = []
        for path in paths:
            ids, texts = load_benchmark(path)
            bench = benchmark_name(path)
            triples.extend((bench, i, t) for i, t in zip(ids, texts))
        return cls.from_texts(triples, n)

    def __len__(self) -> int:
        return len(self.labels)

    def match(self, texts: pl.Series, min_shared: int = 1) -> tuple[list[str | None], np.ndarray]:
        """Per text: the benchmark item sharing most n-grams (None if < min_shared), and that count."""
        n_rows = len(texts)
        best: list[str | None] = [None] * n_rows
        shared = np.zeros(n_rows, dtype=np.int64)
        if len(self.keys) == 0 or n_rows == 0:
            return best, shared
        doc, h, nw = word_ngram_hashes(texts, self.n, short_as_one=False)
        # a text shorter than n words can still equal a short benchmark item whole
        short = np.flatnonzero((nw > 0) & (nw < self.n))
        if len(short):
            d2, h2, _ = word_ngram_hashes(texts.gather(short), self.n, short_as_one=True)
            doc = np.concatenate([doc, short[d2]])
            h = np.concatenate([h, h2])
        lo = np.searchsorted(self.keys, h, side="left")
        hi = np.searchsorted(self.keys, h, side="right")
        hit = hi > lo
        if not hit.any():
            return best, shared
        d, lo, hi, hk = doc[hit], lo[hit], hi[hit], h[hit]
        cnt = hi - lo
        rows = np.repeat(d, cnt)
        pos = np.repeat(lo - np.cumsum(np.r_[0, cnt[:-1]]), cnt) + np.arange(cnt.sum())
        owners = self.owners[pos]
        keys = np.repeat(hk, cnt)
        agg = (pl.DataFrame({"row": rows, "o": owners, "k": keys}).unique()
               .group_by("row", "o").agg(pl.len().alias("c"))
               .sort(["row", "c", "o"], descending=[False, True, False])
               .group_by("row", maintain_order=True).first())
        for r, o, c in zip(agg["row"].to_list(), agg["o"].to_list(), agg["c"].to_list()):
            if c >= min_shared:
                best[r] = self.labels[o]
                shared[r] = c
        return best, shared


class Decontaminator:
    """The decontamination filter: `Decontaminator(params)(batch) -> decisions`.

    Give it an already built `index` to share one BenchmarkIndex between runs; otherwise it is built
    from `params.benchmark_files`.
    """

    def __init__(self, params: DecontaminationParams | dict[str, Any] | None = None,
                 index: BenchmarkIndex | None = None) -> None:
        self.params: DecontaminationParams = validate_params(NAME, DecontaminationParams, params)
        if index is None:
            if not self.params.benchmark_files:
                raise ValueError("decontamination needs benchmark files: set decontamination.benchmark_files "
                                 "in the recipe (JSONL/JSON/Parquet with a problem, question or prompt field)")
            index = BenchmarkIndex.from_files(self.params.benchmark_files, self.params.n)
        if index.n != self.params.n:
            raise ValueError(f"the benchmark index uses {index.n}-grams but params.n is {self.params.n}; "
                             f"build it with BenchmarkIndex.from_files(paths, n={self.params.n})")
        self.index = index

    def __call__(self, batch: Any) -> pl.DataFrame:
        df = prepare_batch(batch)
        return apply_with_input_errors(df, NAME, VERSION, self._apply)

    apply = __call__

    def _apply(self, df: pl.DataFrame) -> pl.DataFrame:
        p = self.params
        best, shared = self.index.match(df[p.field], p.min_shared)
        passed = [b is None for b in best]
        reasons = ["ok" if b is None else f"contaminated: {b} ({p.n}-gram overlap, {c} shared)"
                   for b, c in zip(best, shared.tolist())]
        return decisions(df["generation_id"], NAME, VERSION, pl.Series(passed, dtype=pl.Boolean),
                         pl.Series(reasons, dtype=pl.String), pl.Series(shared.astype(np.float64)))


def decontamination(batch: Any, params: DecontaminationParams | dict[str, Any], index: BenchmarkIndex | None = None
                    ) -> pl.DataFrame:
    """One-shot form: build (or reuse) the index and decide one batch."""
    return Decontaminator(params, index)(batch)


FILTER = FilterSpec(NAME, VERSION, "stateful", DecontaminationParams, factory=Decontaminator,
                    path_params=("benchmark_files",))
