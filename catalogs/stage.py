"""The one driver of the stages that decide on stored generations: `r1f judge` and `r1f filter`.

A stage is a list of steps. Each step selects generations (SQL over generation and prompt columns), skips
those that already carry its output (its cache key: name, version, params hash), decides on the rest batch
by batch, and hands its rows to the catalog. What the stages share is written here once:

- Steps share a pass over the texts: each text is read from its shard once for all of them. A step whose
  selection reads the stages' outputs (a second opinion on the generations another judge failed) starts a
  new pass, after everything before it is written.
- A step's pure part (`work`) may run in worker processes, batches out of order; its ordered part
  (`finish`, e.g. a dedup index that keeps the first seen) runs here, batch after batch in catalog order.
- Output rows are written in few large transactions: at most every `flush_rows` rows or `flush_s` seconds,
  and at the end; the catalog is locked once per flush. Outputs are keyed, so a crash loses at most the
  rows since the last flush, and the next run redoes exactly those.
- progress(name, done, total) after each batch; counts per step.

This module knows no judge and no filter: steps bring their own callables.
"""
from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .split import with_text_parts

if TYPE_CHECKING:
    import polars as pl

    from .store import Catalog

# Tables the stages write: a selection that reads them depends on the steps before it.
OUTPUT_TABLES = re.compile(r"\b(verdicts|filter_decisions)\b", re.IGNORECASE)


class StageStore(Protocol):
    """What the driver needs of a catalog: a stream of stored generations with their prompts, each batch marked
    by the steps that select it (`Catalog.iter_samples`). A stage's own store Protocol (the judges', the
    filters') extends this one with what the stage writes."""

    def iter_samples(self, *, where: str | Sequence[str | None] | None = None,
                     without: tuple[str, ...] | None = None,
                     batch_rows: int = 2000, on_total: Callable[[int], None] | None = None,
                     marks: Sequence[tuple[str | Sequence[str | None] | None, tuple[str, ...] | None, bool]]
                     | None = None,
                     on_marks: Callable[[list[tuple[int, int]]], None] | None = None,
                     text_parts: bool = True) -> Iterator[pl.DataFrame]: ...


@dataclass(frozen=True)
class Work:
    """A step's pure part: `make(*args)` builds a function `batch -> result`, once per process.

    It is a top-level function and picklable args, so that a worker process can build its own copy (a
    benchmark index, a loaded model) and reuse it for every batch it gets."""

    make: Callable[..., Callable[[Any], Any]]
    args: tuple[Any, ...] = ()


class Finish(Protocol):
    """A step's ordered part: `(batch, work_result) -> rows`, one output row per batch row, in order
    (a polars DataFrame or a list of dicts, each with a `passed` field)."""

    def __call__(self, batch: Any, result: Any, /) -> Any: ...


@dataclass
class Step:
    name: str
    where: Sequence[str | None]  # SQL predicates, all of which must hold
    # The cache key, as Catalog.iter_samples' `without`: rows with this output are done.
    done: tuple[str, ...] | None
    finish: Finish
    work: Work | None = None  # None: finish gets result None and does everything
    # Stateful steps see every selected row, done or not (their state must hold them all), but only rows
    # not done yet are written.
    see_done: bool = False
    close: Callable[[], None] | None = None

    def reads_outputs(self) -> bool:
        return any(w and OUTPUT_TABLES.search(w) for w in self.where)


@dataclass
class _Count:
    done: int = 0
    passed: int = 0
    total: int = 0


@dataclass
class _Writer:
    write: Callable[[list[Any]], Any]
    flush_rows: int
    flush_s: float
    pending: list[Any] = field(default_factory=list)
    rows: int = 0
    since: float = field(default_factory=time.monotonic)

    def add(self, rows: Any, n: int) -> None:
        if n:
            self.pending.append(rows)
            self.rows += n
        if self.rows >= self.flush_rows or (self.rows and time.monotonic() - self.since >= self.flush_s):
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.write(self.pending)
        self.pending, self.rows, self.since = [], 0, time.monotonic()


def run_steps(catalog: StageStore, steps: Sequence[Step], *, write: Callable[[list[Any]], Any], batch_rows: int,
              progress: Callable[[str, int, int], None] | None = None, workers: int = 1,
              flush_rows: int = 1, flush_s: float = 30.0,
              executor: Executor | None = None) -> dict[str, dict[str, int]]:
    """Run the steps over the catalog; `write(list of step outputs)` stores rows. Returns, per step, the rows
    it decided now (`done`, `passed`) and how many it was given (`total`).

    `executor` (a Ray cluster's, say) runs the pure parts instead of local worker processes, with `workers`
    batches in flight; its owner shuts it down."""
    counts = {s.name: _Count() for s in steps}
    writer = _Writer(write, flush_rows, flush_s)
    pool: Executor | None = executor
    try:
        for group in _passes(steps):
            pool = _run_pass(catalog, group, counts, writer, batch_rows, progress, workers, pool)
            writer.flush()  # the next pass may select on what this one wrote
    finally:
        if pool is not None and pool is not executor:
            pool.shutdown(wait=True, cancel_futures=True)
        for s in steps:
            if s.close is not None:
                s.close()
    return {name: {"done": c.done, "passed": c.passed, "total": c.total} for name, c in counts.items()}


def _passes(steps: Sequence[Step]) -> Iterator[list[Step]]:
    group: list[Step] = []
    for s in steps:
        if group and s.reads_outputs():
            yield group
            group = []
        group.append(s)
    if group:
        yield group


def _run_pass(catalog: StageStore, steps: list[Step], counts: dict[str, _Count], writer: _Writer, batch_rows: int,
              progress: Callable[[str, int, int], None] | None, workers: int,
              pool: Executor | None) -> Executor | None:
    import polars as pl

    totals: dict[str, int] = {}

    def on_marks(per_mark: list[tuple[int, int]]) -> None:
        for s, (selected, _) in zip(steps, per_mark):
            totals[s.name] = selected
            counts[s.name].total += selected
            if progress:
                progress(s.name, 0, selected)

    works = [(i, s.work) for i, s in enumerate(steps) if s.work is not None]
    # Batches that may go to other processes come with their texts once (reasoning and answer as offsets into
    # them); each side cuts the parts it needs (catalogs.split.with_text_parts).
    batches = catalog.iter_samples(marks=[(s.where, s.done, s.see_done) for s in steps], batch_rows=batch_rows,
                                   on_marks=on_marks, text_parts=not works or (workers == 1 and pool is None))
    first = next(batches, None)
    if first is None:
        return pool
    # Worker processes pay their start (imports, a model load) once; worth it beyond one batch only.
    if pool is None and workers > 1 and works and max(totals.values(), default=0) > batch_rows:
        import multiprocessing as mp

        # spawn, not fork: the parent holds polars' and DuckDB's threads
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=keep_freed_memory)

    def submit(batch: pl.DataFrame) -> Future[list[Any]] | list[Any]:
        jobs = [(w, f"_in_{i}") for i, w in works]
        if pool is None or not jobs:  # nothing pure to hand out: the ordered parts run here anyway
            return _do_work(batch, jobs)
        with main_not_rerun():  # a worker process starts inside the first submits
            return pool.submit(_do_work, batch, jobs)

    def finish(batch: pl.DataFrame, results: list[Any]) -> None:
        batch = with_text_parts(batch)
        by_step = dict(zip((i for i, _ in works), results))
        for i, s in enumerate(steps):
            sub = batch.filter(pl.col(f"_in_{i}"))
            if sub.height == 0:
                continue
            rows = s.finish(sub, by_step.get(i))
            new = sub[f"_new_{i}"]
            if not s.see_done or new.all():
                kept = rows
            elif isinstance(rows, pl.DataFrame):
                kept = rows.filter(new)
            else:
                kept = [r for r, keep in zip(rows, new.to_list()) if keep]
            n = len(kept)
            c = counts[s.name]
            c.done += n
            c.passed += int(kept["passed"].sum()) if isinstance(kept, pl.DataFrame) else sum(
                bool(r["passed"]) for r in kept)
            writer.add(kept, n)
            if progress:
                progress(s.name, c.done, totals.get(s.name, 0))

    # At most workers + 1 batches in flight: memory stays flat in corpus size.
    in_flight: list[tuple[pl.DataFrame, Future[list[Any]] | list[Any]]] = []
    limit = workers + 1 if pool is not None else 1
    for batch in _chain(first, batches):
        in_flight.append((batch, submit(batch)))
        while len(in_flight) >= limit:
            b, r = in_flight.pop(0)
            finish(b, r.result() if isinstance(r, Future) else r)
    for b, r in in_flight:
        finish(b, r.result() if isinstance(r, Future) else r)
    return pool


@contextlib.contextmanager
def main_not_rerun() -> Iterator[None]:
    """Hide `__main__` from the spawn start method while a worker starts.

    A spawned worker imports the parent's main script again; a user's script that calls a stage without the
    `if __name__ == "__main__"` guard would then run once more in every worker. The workers need only
    importable modules (a Work's function and this one), so they are better off without it."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


# glibc's mallopt parameters (malloc.h), and polars' jemalloc options: the values bench_filter_path.py measured best.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_TUNING = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 256 << 20), (_M_TOP_PAD, 64 << 20))
_JEMALLOC_CONF = "_RJEM_MALLOC_CONF"  # polars prepends its own defaults to it as it loads; the last option wins
_POLARS_JEMALLOC_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"  # what polars 2.1 leaves in the environment
_JEMALLOC_KEEP = "dirty_decay_ms:5000,muzzy_decay_ms:5000"


def keep_freed_memory() -> None:
    """Let this process keep the memory a batch freed for the next batch, instead of faulting it in again.

    A batch of 1000 chains of thought allocates and frees arrays of 1-30 MB many times over. By default glibc
    serves blocks of that size from fresh mappings (its mmap threshold rises to a block's size only after such a
    block is freed) and hands a freed heap top back to the kernel beyond 128 KB, and polars' jemalloc hands
    freed pages back within a fraction of a second: each new array then faults its pages in again, zeroed, and
    the kernel's share was a third of the workers' CPU time in hygiene. A fixed mmap threshold of 32 MB (glibc's
    largest), a heap that keeps up to 256 MB free at its top, and jemalloc pages kept 5 s reuse them; the peak
    stays that of one batch (bench_filter_path.py prints it for both codes). jemalloc reads its options as
    polars loads, so they apply in a worker process that calls this first (its initializer); options the user
    set win. Elsewhere than glibc the mallopt part does nothing."""
    import ctypes
    import ctypes.util
    import os

    # In a fresh process, before polars loads. Polars' default, once or more (inherited from parents that imported
    # polars), is not the user's choice; anything else is, and stays.
    inherited = os.environ.get(_JEMALLOC_CONF, "")
    if "polars" not in sys.modules and set(inherited.split(",")) <= {"", *_POLARS_JEMALLOC_DEFAULT.split(",")}:
        os.environ[_JEMALLOC_CONF] = _JEMALLOC_KEEP
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for param, value in _MALLOC_TUNING:
        mallopt(param, value)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


_BUILT: dict[tuple[Any, ...], Callable[[Any], Any]] = {}


def _do_work(batch: Any, jobs: list[tuple[Work, str]]) -> list[Any]:
    """Run each step's pure part on its rows of the batch (in a worker process, or here)."""
    import polars as pl

    batch = with_text_parts(batch)
    out = []
    for work, col in jobs:
        key = (work.make, _freeze(work.args))
        fn = _BUILT.get(key)
        if fn is None:
            fn = _BUILT[key] = work.make(*work.args)
        sub = batch.filter(pl.col(col))
        out.append(fn(sub) if sub.height else None)
    return out


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


if TYPE_CHECKING:
    def _catalog_is_a_stage_store(catalog: Catalog) -> StageStore:
        return catalog  # the type checker holds `Catalog` to the Protocol
