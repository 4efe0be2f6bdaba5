"""The catalog's core: one folder holding a DuckDB file (records) and append-only Parquet shards (bulk text).

DuckDB takes a file lock: while one process has the file open for writing, no other process can open
it, not even read-only. So no process holds it for long. A writer opens, commits one batch in one
transaction, and closes; a reader opens read-only, queries, and closes. Both retry on the lock for
up to `lock_timeout` seconds. A long run therefore never blocks `r1f show/sql/stats` for more than
one commit, and readers see exactly what has been committed.

Text is staged in Parquet files outside the lock, then moved into `shards/` inside the committing
transaction; a shard is visible only once the `shards` table names it, so a crash between the move
and the commit leaves an unreferenced file, never a half-visible batch.

Starting a DuckDB costs 15-100 ms (more on a loaded machine); attaching a file to a running one, 2 ms. So each
process keeps one in-memory DuckDB (its host) and attaches the catalog file to it for one call at a time. The
file is opened and closed, and its lock taken and given back, exactly as with a DuckDB of its own per call
(DETACH closes the file; see tests/catalogs/test_concurrency.py), but a command that makes a dozen catalog calls
starts DuckDB once.

This module holds what every part of the store shares: the layout, connections (with the lock retry),
migrations, transactions and the reader. Each concern's methods live in a module of their own
(`store_prompts`, `store_verdicts`, `store_leases`, `store_trainings`); `store.Catalog` composes them.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from . import schema
from .errors import CatalogError
from .retry import retry_call

if TYPE_CHECKING:
    import polars as pl

T = TypeVar("T")

DB_FILE = "catalog.duckdb"
SHARD_DIR = "shards"
STAGING_DIR = "staging"
SHARD_ROW_GROUP = 256  # small row groups keep `r1f show` fast: it reads one group for one text

PROMPT_COLUMNS = ["prompt_id", "source_id", "source", "ingest_id", "source_uri", "source_row", "messages",
                  "problem", "answer", "tests", "kind", "domain", "language", "metadata"]


# pyarrow loads only where it is used (writing and streaming), so `r1f show`/`sql` start faster.
@functools.cache
def text_schema() -> Any:  # pyarrow.Schema
    import pyarrow as pa

    return pa.schema([("generation_id", pa.string()), ("text", pa.string()), ("r_start", pa.int32()),
                      ("r_end", pa.int32()), ("a_start", pa.int32())])


@functools.cache
def gen_meta_schema() -> Any:  # pyarrow.Schema
    import pyarrow as pa

    return pa.schema([
        ("generation_id", pa.string()), ("prompt_id", pa.string()), ("run_id", pa.string()),
        ("sample_index", pa.int64()), ("seed", pa.int64()), ("shard_row", pa.int64()),
        ("finish_reason", pa.string()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
        ("text_chars", pa.int64()), ("reasoning_chars", pa.int64()), ("answer_chars", pa.int64()),
        ("latency_s", pa.float64()), ("ingest_id", pa.string()), ("source_row", pa.int64()),
        ("published_id", pa.string())])


@functools.cache
def prompt_schema() -> Any:  # pyarrow.Schema
    import pyarrow as pa

    return pa.schema([(c, pa.int64() if c == "source_row" else pa.string()) for c in PROMPT_COLUMNS])


@functools.cache  # reading the installed package's metadata costs 2-3 ms; it does not change under a running process
def code_version() -> str:
    try:
        from importlib.metadata import version

        return version("r1-factory")
    except Exception:  # running from a source tree that is not installed
        return "0+unknown"


def text_spans(text: str, reasoning: str | None, answer: str | None) -> tuple[str, int, int, int]:
    """Store one copy of the text plus offsets of its reasoning and answer parts.

    When the reasoning came back separately from the server (DeepSeek's `reasoning_content`) it is not
    inside `text`; we then store the text the model actually emitted, `<think>\\n{reasoning}\\n</think>\\n\\n{answer}`.
    """
    reasoning = reasoning or ""
    answer = text if answer is None and not reasoning else (answer or "")
    if not reasoning:
        a = text.rfind(answer) if answer else len(text)
        return (text, 0, 0, a) if a >= 0 else (text + answer, 0, 0, len(text))
    r = text.find(reasoning)
    if r >= 0:
        a = text.find(answer, r + len(reasoning)) if answer else len(text)
        if a >= 0:
            return text, r, r + len(reasoning), a
    head = "<think>\n"
    composed = f"{head}{reasoning}\n</think>\n\n{answer}"
    return composed, len(head), len(head) + len(reasoning), len(composed) - len(answer)


def _locked(exc: BaseException) -> bool:
    """DuckDB's error for a file another process holds open, or another thread of this one (DuckDB attaches a
    file once per process: "Unique file handle conflict")."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and ("lock" in text or "unique file handle conflict" in text)


@dataclass
class _Host:
    """An in-memory DuckDB that attaches catalog files, one call at a time (`free` is held for the call)."""

    con: duckdb.DuckDBPyConnection
    free: threading.Lock
    temp_dir: str = ""


@functools.cache
def _host_of(pid: int) -> _Host:
    """This process's host. Keyed by pid: a forked child must not use its parent's DuckDB."""
    return _Host(duckdb.connect(":memory:"), threading.Lock())


@contextlib.contextmanager
def _host() -> Iterator[_Host]:
    """This process's host, for the block alone; when another call holds it (one this block is nested in, or
    another thread's), a DuckDB of the block's own, closed after it, as every call had before the host."""
    shared = _host_of(os.getpid())
    if shared.free.acquire(blocking=False):
        try:
            yield shared
        finally:
            shared.free.release()
        return
    own = _Host(duckdb.connect(":memory:"), threading.Lock())
    try:
        yield own
    finally:
        own.con.close()


def _run_or_drop(host: _Host, sql: str) -> None:
    """Run `sql` that puts the host back in order after a call (a DETACH, which closes the file and gives back
    its lock). Should it fail (a Ctrl-C inside it), the host is closed, which closes every file it holds, and
    forgotten: no lock outlives the call, and the next call starts a new host."""
    try:
        host.con.execute(sql)
    except BaseException:
        host.con.close()
        _host_of.cache_clear()
        raise


# A reader's views are made in the host's default database; after the call it is swapped for an empty one, which
# drops them and whatever an `r1f sql` query made there.
_FRESH_MEMORY = ("ATTACH ':memory:' AS r1f_swap; USE r1f_swap; DETACH memory; ATTACH ':memory:' AS memory; "
                 "USE memory; DETACH r1f_swap")


# The wait between tries for the file lock: a bound doubling from 10 ms up to half a second (catalogs.retry).
LOCK_FIRST_S = 0.01
LOCK_MAX_S = 0.5


class CatalogCore:
    """The catalog folder, its connections and its schema version; the rest of `Catalog` stands on these."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, lock_timeout: float = 60.0):
        self.root = Path(path).expanduser().resolve()
        self.db_path = self.root / DB_FILE
        self.lock_timeout = lock_timeout
        self._version_ok = False
        self._held: tuple[int, _Host] | None = None  # (thread, host) of a `held` block
        self._mine = threading.local()  # `mode`: how this thread's call has the file attached ("read", "write")
        if not self.db_path.exists():
            if not create:
                raise CatalogError(f"no catalog at {self.root} (no {DB_FILE} there). Create one with "
                                   f"`r1f ingest FILE --source NAME --catalog {self.root}`, or point "
                                   f"--catalog / R1F_CATALOG at an existing catalog.")
            if self.root.exists() and not self.root.is_dir():
                raise CatalogError(f"--catalog {self.root} is a file, not a folder; give a folder path.")
            self.root.mkdir(parents=True, exist_ok=True)
            self._version_ok = True  # we are writing this version's schema
            with self.transaction() as con:
                con.execute(schema.TABLES)
                for version in sorted(schema.MIGRATIONS):
                    con.execute(schema.MIGRATIONS[version])
                con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('created_by', ?)",
                            [str(schema.SCHEMA_VERSION), code_version()])
            (self.root / SHARD_DIR).mkdir(exist_ok=True)
        if create and not self._version_ok:  # writers check up front; readers on their first connection
            with self.connect():
                pass

    def __getstate__(self) -> dict[str, Any]:
        """A copy for another process: the folder and settings, never this process's attachments."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_held", "_mine")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._held, self._mine = None, threading.local()

    # ---------------------------------------------------------------- connections
    def _open(self, open_db: Callable[[], T]) -> T:
        """`open_db()`, retried while another process holds the file's lock (up to `lock_timeout` seconds)."""
        return retry_call(open_db, when=_locked, within_s=self.lock_timeout, first_s=LOCK_FIRST_S,
                          max_s=LOCK_MAX_S)

    @contextlib.contextmanager
    def _attached(self, host: _Host, alias: str, write: bool, error: Callable[[duckdb.Error], CatalogError],
                  ) -> Iterator[None]:
        """The catalog file attached to `host` as `alias` for the block (retrying while another process holds its
        lock), detached after it; `error` words a failure to attach."""
        mine = getattr(self._mine, "mode", None)
        if mine is not None and (write or mine == "write"):
            # The file is attached by this very thread's outer call: waiting for it would wait for ourselves.
            raise CatalogError(f"catalog {self.db_path}: a {'write' if write else 'read'} call inside a {mine} "
                               f"call of the same thread; DuckDB attaches a file once per process. Make the inner "
                               f"call after the outer one, or wrap both in `catalog.held()`.")
        temp_dir = f"{self.db_path}.tmp"  # where DuckDB spills, as for a DuckDB opened on the file itself
        if host.temp_dir != temp_dir:
            host.con.execute(f"SET temp_directory = '{self._sql_path(Path(temp_dir))}'")
            host.temp_dir = temp_dir
        mode = "" if write else " (READ_ONLY)"
        try:
            self._open(lambda: host.con.execute(f"ATTACH '{self._sql_path(self.db_path)}' AS {alias}{mode}"))
        except duckdb.Error as exc:
            raise error(exc) from None
        self._mine.mode = "write" if write else "read"
        try:
            yield
        finally:
            self._mine.mode = mine
            # IF EXISTS: a `released` block whose attach again failed has detached it already.
            _run_or_drop(host, f"DETACH DATABASE IF EXISTS {alias}")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Keep the catalog attached, for writing, across the calls this thread makes in the block: they share one
        attach and one detach (the detach's checkpoint is the disk sync a call pays most for), each call still its
        own transaction, committed as it ends. For a run of quick calls with no long wait between them: other
        processes wait for the file until the block ends. Calls from other threads open the file as usual.
        Nested blocks are one block."""
        me = threading.get_ident()
        if self._held is not None and self._held[0] == me:
            yield
            return
        if not self._version_ok:
            with self.connect():  # the version check (and a migration) as any first call makes it
                pass
        with _host() as host, self._attached(host, "catalog", True, self._open_error):
            self._held = (me, host)
            try:
                yield
            finally:
                self._held = None

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Inside a `held` block of this thread: the file given back for this block (a model call, a model load, any
        long wait), so other threads and processes can use it meanwhile; calls made in the block open it as usual.
        Attached again, for the rest of the `held` block, when the block ends. Outside a `held` block: nothing."""
        host = self._held_host()
        if host is None:
            yield
            return
        held, mode = self._held, getattr(self._mine, "mode", None)
        # Given back without a checkpoint (a disk sync or two, the dearest part of a detach): every commit is in the
        # write-ahead log already, which DuckDB replays for whoever attaches the file next; the `held` block's own
        # detach at its end checkpoints.
        _run_or_drop(host, "SET checkpoint_on_detach = 'DISABLED'; DETACH catalog; RESET checkpoint_on_detach")
        self._held, self._mine.mode = None, None
        try:
            yield
        finally:
            try:
                self._open(lambda: host.con.execute(f"ATTACH '{self._sql_path(self.db_path)}' AS catalog"))
            except duckdb.Error as exc:
                raise self._open_error(exc) from None
            self._held, self._mine.mode = held, mode

    def _held_host(self) -> _Host | None:
        """The host a `held` block of this thread keeps the catalog attached to, if any."""
        held = self._held
        return held[1] if held is not None and held[0] == threading.get_ident() else None

    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the DuckDB file briefly, retrying while another process holds its lock."""
        held = self._held_host()
        if held is not None:
            con = held.con.cursor()
            try:
                con.execute("USE catalog")
                with _ctrl_c_stays_ctrl_c():
                    yield con
            finally:
                con.close()
            return
        with _host() as host:
            for _ in range(2):  # a second time after migrating an older catalog
                # The name DuckDB gives a database opened on the file itself: its stem.
                with self._attached(host, "catalog", write, self._open_error):
                    con = host.con.cursor()
                    try:
                        con.execute("USE catalog")
                        if self._version_ok or self._check_version(con, "main") >= schema.SCHEMA_VERSION:
                            with _ctrl_c_stays_ctrl_c():
                                yield con
                            return
                    finally:
                        con.close()
                self._migrate()

    def _open_error(self, exc: duckdb.Error) -> CatalogError:
        if _locked(exc):
            return CatalogError(f"catalog {self.db_path} stayed locked by another process for "
                                f"{self.lock_timeout:.0f}s; wait for it, or raise --lock-timeout.")
        return CatalogError(f"cannot open catalog {self.db_path}: it is corrupted or not a DuckDB "
                            f"catalog ({str(exc).splitlines()[0]}). r1f never rewrites it: restore it from "
                            f"a backup or point --catalog elsewhere.")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside one transaction: committed when the block ends, rolled back when it raises."""
        with self.connect(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _check_version(self, con: duckdb.DuckDBPyConnection, db: str) -> int:
        """The catalog's schema version; an error for a newer catalog or a file that is not one."""
        try:
            rows = con.execute(f"SELECT value FROM {db}.meta WHERE key = 'schema_version'").fetchall()
            row = rows[0] if rows else None
        except duckdb.Error:
            row = None
        if row is None:
            raise CatalogError(f"{self.db_path} is a DuckDB file but not an r1-factory catalog (no schema "
                               f"version); point --catalog at a catalog folder.")
        found = int(row[0])
        if found > schema.SCHEMA_VERSION:
            raise CatalogError(f"catalog {self.root} has schema version {found}, newer than this r1-factory "
                               f"({code_version()}, schema {schema.SCHEMA_VERSION}); upgrade r1-factory "
                               f"(pip install -U r1-factory). The catalog was not changed.")
        self._version_ok = found == schema.SCHEMA_VERSION
        return found

    def _migrate(self) -> None:
        """Bring an older catalog forward: every missing migration, in one transaction (all or nothing)."""
        try:
            con = self._open(lambda: duckdb.connect(str(self.db_path)))
        except duckdb.Error as exc:
            raise CatalogError(f"catalog {self.root} has an older schema and could not be opened to "
                               f"migrate it ({str(exc).splitlines()[0]}); retry when no other process "
                               f"holds it.") from None
        try:
            con.execute("BEGIN TRANSACTION")
            found = self._check_version(con, "main")  # another process may have migrated meanwhile
            for version in range(found + 1, schema.SCHEMA_VERSION + 1):
                con.execute(schema.MIGRATIONS[version])
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(schema.SCHEMA_VERSION)])
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        self._version_ok = True

    @contextlib.contextmanager
    def reader(self, first: Callable[[duckdb.DuckDBPyConnection], object] | None = None, *,
               views: Sequence[str] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB with the catalog attached read-only and the documented views defined. `first` runs
        on it before the catalog is attached (`r1f sql` parses its query there: a typo fails at once, and no
        second DuckDB starts for it). `views`: define only these (a call that knows what it reads; eighteen
        views cost 5-35 ms), else all."""
        def error(exc: duckdb.Error) -> CatalogError:
            return CatalogError(f"cannot read catalog {self.db_path}: {str(exc).splitlines()[0]}")

        held = self._held_host()
        if held is not None:
            con = held.con.cursor()
            try:
                con.execute("USE memory")
                if first is not None:
                    first(con)
                self._make_views(con, views, db="catalog")
                with _ctrl_c_stays_ctrl_c():
                    yield con
            finally:
                con.close()
                _run_or_drop(held, _FRESH_MEMORY)
            return
        with _host() as host:
            con = host.con.cursor()
            try:
                con.execute("USE memory")  # the reader's scratch, whatever the host's default database is now
                if first is not None:
                    first(con)
                for _ in range(2):  # a second time after migrating an older catalog
                    with self._attached(host, "cat", False, error):
                        try:
                            if self._version_ok or self._check_version(con, "cat") >= schema.SCHEMA_VERSION:
                                self._make_views(con, views)
                                with _ctrl_c_stays_ctrl_c():
                                    yield con
                                return
                        finally:
                            con.close()  # before the file is detached: nothing of the call outlives it
                    con = host.con.cursor()
                    con.execute("USE memory")
                    self._migrate()
            finally:
                con.close()
                _run_or_drop(host, _FRESH_MEMORY)

    def _make_views(self, con: duckdb.DuckDBPyConnection, only: Sequence[str] | None = None, db: str = "cat"
                    ) -> None:
        """The reader's documented views over the attached catalog `db` (`only` these, if given)."""
        unknown = sorted(set(only or ()) - set(schema.PLAIN_VIEWS) - {"generations", "generation_texts"})
        if unknown:
            raise ValueError(f"no reader view named {', '.join(unknown)}; the views are in catalogs/schema.py")
        plain = [v for v in schema.PLAIN_VIEWS if only is None or v in only]
        if plain:  # one statement: one round trip into DuckDB
            con.execute("; ".join(f"CREATE VIEW {view} AS SELECT * FROM {db}.main.{view}" for view in plain))
        if only is not None and not {"generations", "generation_texts"} & set(only):
            return
        shards = self.shard_files(s for (s,) in con.execute(f"SELECT shard FROM {db}.main.shards ORDER BY shard"
                                                            ).fetchall())
        con.execute(f"CREATE VIEW generation_texts AS {schema.texts_sql([self._sql_path(p) for p in shards])}")
        con.execute(f"CREATE VIEW generations AS {schema.generations_view_sql(f'{db}.main')}")

    def shard_files(self, names: Iterable[str]) -> list[Path]:
        """The files of these shards (names as `shards` and `generation_meta` hold them); a CatalogError where one is
        missing: the catalog is damaged."""
        shards = [self.root / SHARD_DIR / name for name in names]
        missing = [p.name for p in shards if not p.exists()]
        if missing:
            raise CatalogError(f"catalog {self.root} is damaged: shard {missing[0]} is missing from "
                               f"{self.root / SHARD_DIR} ({len(missing)} missing in all). Restore the shards "
                               f"folder from a backup.")
        return shards

    @staticmethod
    def _sql_path(p: Path) -> str:
        return str(p).replace("'", "''")

    def _insert_new(self, table_name: str, table: Any, key: list[str]) -> int:
        """Insert the rows of an Arrow `table` whose `key` is new to `table_name`; returns how many were new."""
        if table.num_rows == 0:
            return 0
        with self.connect(write=True) as con:
            return insert_new(con, table_name, table, key)


def insert_new(con: duckdb.DuckDBPyConnection, table_name: str, table: Any, key: list[str]) -> int:
    """`CatalogCore._insert_new` on a write connection the caller holds (one transaction with other writes)."""
    if table.num_rows == 0:
        return 0
    cols = ", ".join(table.column_names)
    keys = ", ".join(key)
    con.register("incoming", table)
    # A key twice in the batch is inserted once (the window). A small batch is checked here instead, which costs
    # tenths of a millisecond where the window costs 2-3 ms: a batch of distinct keys (every batch the factory
    # writes) needs none. A large one keeps the window: the check would cost more than it saves.
    once = "" if distinct_keys(table, key) else f" QUALIFY row_number() OVER (PARTITION BY {keys}) = 1"
    # DuckDB answers an INSERT with the rows it inserted, those ignored on a key conflict not counted. fetchall, not
    # fetchone: the connection may go on to other work, which DuckDB refuses while a result is open.
    ((added,),) = con.execute(f"INSERT OR IGNORE INTO {table_name} ({cols}) SELECT {cols} FROM incoming{once}"
                              ).fetchall()
    return int(added)


DISTINCT_CHECK_ROWS = 8192  # the largest batch whose keys `insert_new` checks in Python


def distinct_keys(table: Any, key: list[str]) -> bool:
    """Whether no two rows of a small Arrow `table` share `key` (False for a large one: not checked)."""
    if table.num_rows > DISTINCT_CHECK_ROWS:
        return False
    return bool(table.select(key).group_by(key).aggregate([]).num_rows == table.num_rows)


# How DuckDB reports a Ctrl-C that landed inside one of its calls: a running query ends with `RuntimeError: Query
# interrupted`; a Python object it was reading (a registered Arrow table) fails with the KeyboardInterrupt's text.
_INTERRUPTED = ("Query interrupted", "KeyboardInterrupt")


@contextlib.contextmanager
def _ctrl_c_stays_ctrl_c() -> Iterator[None]:
    """A Ctrl-C that lands inside a DuckDB call comes out of DuckDB as another error, which no caller's
    `except KeyboardInterrupt` would stop cleanly on. Give it back its meaning; DuckDB has rolled the open
    transaction back, so nothing is half-written."""
    try:
        yield
    except (RuntimeError, duckdb.Error) as exc:
        if any(sign in str(exc) for sign in _INTERRUPTED):
            raise KeyboardInterrupt("interrupted during a catalog call (rolled back)") from exc
        raise


def sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def query_frame(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return con.sql(sql).pl()


def one_row(cur: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The row of a query that always returns one: an aggregate, or a key known to exist."""
    row = cur.fetchone()
    assert row is not None, "the query returned no row"
    return row
