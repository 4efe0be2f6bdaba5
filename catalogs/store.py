"""The catalog: one folder holding a DuckDB file (records) and append-only Parquet shards (bulk text).

DuckDB takes a file lock: while one process has the file open for writing, no other process can open
it, not even read-only. So no process holds it for long. A writer opens, commits one batch in one
transaction, and closes; a reader opens read-only, queries, and closes. Both retry on the lock for
up to `lock_timeout` seconds. A long run therefore never blocks `r1f show/sql/stats` for more than
one commit, and readers see exactly what has been committed.

Text is staged in Parquet files outside the lock, then moved into `shards/` inside the committing
transaction; a shard is visible only once the `shards` table names it, so a crash between the move
and the commit leaves an unreferenced file, never a half-visible batch.
"""
from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from . import schema
from .errors import CatalogError
from .ids import canonical_json
from .ids import run_id as make_run_id

if TYPE_CHECKING:
    import polars as pl

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
        ("latency_s", pa.float64()), ("ingest_id", pa.string()), ("source_row", pa.int64())])


@functools.cache
def prompt_schema() -> Any:  # pyarrow.Schema
    import pyarrow as pa

    return pa.schema([(c, pa.int64() if c == "source_row" else pa.string()) for c in PROMPT_COLUMNS])



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


# A lease outlives its renewals by this much. On this host a holder is alive exactly while its process is;
# the expiry only matters to a process on another host sharing the catalog folder.
LEASE_TTL_S = 3600.0


@dataclass(frozen=True)
class ProcessId:
    pid: int
    started: float  # the process's start time (epoch seconds), which tells a reused pid from the original
    host: str

    @property
    def started_cs(self) -> int:
        return round(self.started * 100)

    @property
    def host_tag(self) -> str:
        import hashlib

        return hashlib.sha256(self.host.encode()).hexdigest()[:8]

    @property
    def holder(self) -> str:
        return f"{self.host}:{self.pid}:{self.started_cs}"


def process_started(pid: int) -> float | None:
    """Start time of a running process, or None when no such process runs (a zombie counts as gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


@functools.cache
def _this_process(pid: int) -> ProcessId:
    import socket

    return ProcessId(pid, process_started(pid) or time.time(), socket.gethostname())


def this_process() -> ProcessId:
    return _this_process(os.getpid())  # keyed by pid: a forked child is a process of its own


def same_process_alive(pid: int, started: float | None) -> bool:
    """Whether `pid` still runs as the process that started at `started` (a second of slack for rounding)."""
    now_started = process_started(pid)
    if now_started is None:
        return False
    return started is None or abs(now_started - started) <= 1.0


def holder_alive(host: str | None, pid: int | None, started: float | None, expires_at: float | None,
                 now: float) -> bool:
    if host == this_process().host and pid is not None:
        return same_process_alive(int(pid), started)
    return expires_at is not None and expires_at > now


def describe_holder(host: str | None, pid: int | None, since: float | None) -> str:
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if since else "an unknown time"
    return f"pid {pid} on {host}, since {at}"


def remove_orphan_staging(base: Path) -> list[Path]:
    """Remove staging folders whose process is gone (killed with -9, say), and keep every other one.

    A folder is named `PID-START-HOST-RANDOM` (START in 1/100 s). It is an orphan when it was made on this host
    and no process with that pid runs, or one runs that started at another time (the pid was reused). Folders
    of the older `PID-RANDOM` form carry no start time: an orphan too when a running pid started after the
    folder last changed, since no process writes into a folder made before it started.
    """
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    me = this_process()
    for d in entries:
        parts = d.name.split("-")
        if not d.is_dir() or not parts[0].isdigit():
            continue
        pid = int(parts[0])
        if len(parts) == 4 and parts[1].isdigit():
            if parts[2] != me.host_tag:
                continue  # another host's process: its pid means nothing here
            orphan = not same_process_alive(pid, int(parts[1]) / 100)
        elif len(parts) == 2:
            started = process_started(pid)
            try:
                changed = d.stat().st_mtime
            except OSError:
                continue
            orphan = started is None or started > changed + 1.0
        else:
            continue
        if orphan and pid != me.pid:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


@dataclass
class PromptClaim:
    """What `Catalog.claim_prompts` got: the prompts now leased to this process, in the order asked; who holds
    each of the others (a description); and the number of generations stored per claimed prompt."""

    claimed: list[str]
    held: dict[str, str]
    stored: dict[str, int]


@dataclass
class StagedBatch:
    """Generations written to a staging shard (texts) and a metadata file beside it, waiting for one commit.

    Both live on disk, so a long ingest holds no per-row state in memory."""

    shard_path: Path
    meta_path: Path
    rows: int


class Catalog:
    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, lock_timeout: float = 60.0):
        self.root = Path(path).expanduser().resolve()
        self.db_path = self.root / DB_FILE
        self.lock_timeout = lock_timeout
        self._version_ok = False
        if not self.db_path.exists():
            if not create:
                raise CatalogError(f"no catalog at {self.root} (no {DB_FILE} there). Create one with "
                                   f"`r1f ingest FILE --source NAME --catalog {self.root}`, or point "
                                   f"--catalog / R1F_CATALOG at an existing catalog.")
            if self.root.exists() and not self.root.is_dir():
                raise CatalogError(f"--catalog {self.root} is a file, not a folder; give a folder path.")
            self.root.mkdir(parents=True, exist_ok=True)
            self._version_ok = True  # we are writing this version's schema
            with self.connect(write=True) as con:
                con.execute("BEGIN TRANSACTION")
                con.execute(schema.TABLES)
                for version in range(2, schema.SCHEMA_VERSION + 1):
                    con.execute(schema.MIGRATIONS[version])
                con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('created_by', ?)",
                            [str(schema.SCHEMA_VERSION), code_version()])
                con.execute("COMMIT")
            (self.root / SHARD_DIR).mkdir(exist_ok=True)
        if create and not self._version_ok:  # writers check up front; readers on their first connection
            with self.connect():
                pass

    # ---------------------------------------------------------------- connections
    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the DuckDB file briefly, retrying while another process holds its lock."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        con: duckdb.DuckDBPyConnection  # bound by the loop, which only breaks once connected
        while True:
            try:
                con = duckdb.connect(str(self.db_path), read_only=not write)
                break
            except duckdb.Error as exc:
                msg = str(exc)
                if "lock" in msg.lower() and time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.5)
                    continue
                if "lock" in msg.lower():
                    raise CatalogError(f"catalog {self.db_path} stayed locked by another process for "
                                       f"{self.lock_timeout:.0f}s; wait for it, or raise --lock-timeout.") from None
                raise CatalogError(f"cannot open catalog {self.db_path}: it is corrupted or not a DuckDB "
                                   f"catalog ({msg.splitlines()[0]}). r1f never rewrites it: restore it from "
                                   f"a backup or point --catalog elsewhere.") from None
        try:
            if not self._version_ok and self._check_version(con, "main") < schema.SCHEMA_VERSION:
                con.close()
                self._migrate()
                con = duckdb.connect(str(self.db_path), read_only=not write)
            with _ctrl_c_stays_ctrl_c():
                yield con
        finally:
            con.close()

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
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                con = duckdb.connect(str(self.db_path))
                break
            except duckdb.Error as exc:
                if "lock" in str(exc).lower() and time.monotonic() < deadline:
                    time.sleep(0.05 + 0.1 * random.random())
                    continue
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
    def reader(self, first: Callable[[duckdb.DuckDBPyConnection], object] | None = None,
               ) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB with the catalog attached read-only and the documented views defined. `first` runs
        on it before the catalog is attached (`r1f sql` parses its query there: a typo fails at once, and no
        second DuckDB starts for it)."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        con = duckdb.connect(":memory:")
        try:
            if first is not None:
                first(con)
            while True:
                try:
                    con.execute(f"ATTACH '{self._sql_path(self.db_path)}' AS cat (READ_ONLY)")
                    break
                except duckdb.Error as exc:
                    if "lock" in str(exc).lower() and time.monotonic() < deadline:
                        time.sleep(delay * (0.5 + random.random()))
                        delay = min(delay * 2, 0.5)
                        continue
                    raise CatalogError(f"cannot read catalog {self.db_path}: {str(exc).splitlines()[0]}") from None
            if not self._version_ok and self._check_version(con, "cat") < schema.SCHEMA_VERSION:
                con.execute("DETACH cat")
                self._migrate()
                con.execute(f"ATTACH '{self._sql_path(self.db_path)}' AS cat (READ_ONLY)")
            for view in schema.PLAIN_VIEWS:
                con.execute(f"CREATE VIEW {view} AS SELECT * FROM cat.main.{view}")
            shards = [self.root / SHARD_DIR / s for (s,) in
                      con.execute("SELECT shard FROM cat.main.shards ORDER BY shard").fetchall()]
            missing = [p.name for p in shards if not p.exists()]
            if missing:
                raise CatalogError(f"catalog {self.root} is damaged: shard {missing[0]} is missing from "
                                   f"{self.root / SHARD_DIR} ({len(missing)} missing in all). Restore the shards "
                                   f"folder from a backup.")
            con.execute(f"CREATE VIEW generation_texts AS {schema.texts_sql([self._sql_path(p) for p in shards])}")
            con.execute(f"CREATE VIEW generations AS {schema.generations_view_sql('cat.main')}")
            with _ctrl_c_stays_ctrl_c():
                yield con
        finally:
            con.close()

    @staticmethod
    def _sql_path(p: Path) -> str:
        return str(p).replace("'", "''")

    # ---------------------------------------------------------------- prompts and runs
    def prompts(self, where: str | None = None, limit: int | None = None) -> pl.DataFrame:
        sql = ("SELECT prompt_id, source, messages, problem, answer, tests, kind, domain, language, metadata "
               "FROM prompts")
        if where:
            sql += f" WHERE {where}"
        sql += " ORDER BY prompt_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.reader() as con:
            try:
                return _pl(con, sql)
            except duckdb.Error as exc:
                raise CatalogError(f"prompt selection `{where}` is not a valid SQL predicate over the prompts "
                                   f"view: {str(exc).splitlines()[0]}") from None

    def add_run(self, params: dict[str, Any]) -> str:
        rid = make_run_id(params)
        row = [rid, params.get("kind", "generate"), params.get("model"), params.get("backend"),
               params.get("template"), params.get("template_version"),
               canonical_json(params.get("sampling") or {}), canonical_json(params.get("recipe") or {}),
               params.get("code_version") or code_version(), params.get("source")]
        with self.connect(write=True) as con:
            con.execute("INSERT OR IGNORE INTO runs (run_id, kind, model, backend, template, template_version, "
                        "sampling, recipe, code_version, source) VALUES (?,?,?,?,?,?,?,?,?,?)", row)
        return rid

    # ---------------------------------------------------------------- generations
    def count_generations(self) -> int:
        with self.connect() as con:
            return int(con.execute("SELECT count(*) FROM generation_meta").fetchall()[0][0])

    def generation_ids(self, run_id: str) -> set[str]:
        with self.connect() as con:
            return {r[0] for r in con.execute(
                "SELECT generation_id FROM generation_meta WHERE run_id = ?", [run_id]).fetchall()}

    def stage_generations(self, rows: Sequence[dict[str, Any]], staging: Path | None = None,
                          ingest_id: str | None = None) -> StagedBatch:
        """Write one batch of generations to a staging shard (no lock held)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        staging = staging or self._staging_dir()
        shard_path = staging / f"gen-{uuid.uuid4().hex}.parquet"
        texts: dict[str, list[Any]] = {k: [] for k in text_schema().names}
        meta: dict[str, list[Any]] = {k: [] for k in gen_meta_schema().names}
        for i, row in enumerate(rows):
            text, r0, r1, a0 = text_spans(row.get("text") or "", row.get("reasoning"), row.get("answer"))
            for k, v in (("generation_id", row["generation_id"]), ("text", text), ("r_start", r0),
                         ("r_end", r1), ("a_start", a0)):
                texts[k].append(v)
            meta["generation_id"].append(row["generation_id"])
            meta["prompt_id"].append(row["prompt_id"])
            meta["run_id"].append(row["run_id"])
            meta["sample_index"].append(row.get("sample_index"))
            meta["seed"].append(row.get("seed"))
            meta["shard_row"].append(i)
            meta["finish_reason"].append(row.get("finish_reason"))
            meta["prompt_tokens"].append(row.get("prompt_tokens"))
            meta["completion_tokens"].append(row.get("completion_tokens"))
            meta["text_chars"].append(len(text))
            meta["reasoning_chars"].append(r1 - r0)
            meta["answer_chars"].append(len(text) - a0)
            meta["latency_s"].append(row.get("latency_s"))
            meta["ingest_id"].append(ingest_id)
            meta["source_row"].append(row.get("source_row"))
        pq.write_table(pa.table(texts, schema=text_schema()), shard_path, row_group_size=SHARD_ROW_GROUP,
                       compression="zstd")
        meta_path = shard_path.with_suffix(".meta.parquet")
        pq.write_table(pa.table(meta, schema=gen_meta_schema()), meta_path)
        return StagedBatch(shard_path, meta_path, len(rows))

    def add_generations(self, rows: Sequence[dict[str, Any]]) -> int:
        """Commit one batch of generations atomically; ids already in the catalog are skipped."""
        if not rows:
            return 0
        staging = self._staging_dir()
        try:
            return self.register_staged([self.stage_generations(rows, staging)])
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _staging_dir(self) -> Path:
        """A private staging folder named after this process (pid, start time, host), so that the next writer can
        tell a folder left by a process killed with -9 from one still in use, and remove the first kind."""
        base = self.root / STAGING_DIR
        remove_orphan_staging(base)
        me = this_process()
        d = base / f"{me.pid}-{me.started_cs}-{me.host_tag}-{uuid.uuid4().hex[:8]}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ---------------------------------------------------------------- leases
    def claim_prompts(self, run_id: str, prompt_ids: Sequence[str], ttl_s: float = LEASE_TTL_S) -> PromptClaim:
        """Lease what is free of `prompt_ids` to this process, in one write transaction (the file lock makes it
        atomic across processes). Leases of holders found dead are dropped first: a pid gone on this host (or
        reused by a process that started later), or past its expiry on another host. Claiming renews every
        lease this process holds on the run. Returns what was claimed, who holds the rest, and how many
        generations the catalog holds for each claimed prompt (a caller compares it with what it knows, to
        reread a prompt another process has sampled meanwhile)."""
        import pyarrow as pa

        me = this_process()
        now = time.time()
        wanted = pa.table({"prompt_id": list(dict.fromkeys(prompt_ids))})
        with self.connect(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            others = con.execute("SELECT DISTINCT holder, host, pid, process_started, expires_at FROM leases "
                                 "WHERE run_id = ? AND holder <> ?", [run_id, me.holder]).fetchall()
            dead = [h for h, host, pid, started, expires in others if not holder_alive(host, pid, started, expires, now)]
            for holder in dead:
                con.execute("DELETE FROM leases WHERE run_id = ? AND holder = ?", [run_id, holder])
            con.register("wanted", wanted)
            con.execute("INSERT INTO leases SELECT ?, w.prompt_id, ?, ?, ?, ?, ?, ? FROM wanted w ANTI JOIN "
                        "(SELECT prompt_id FROM leases WHERE run_id = ?) USING (prompt_id)",
                        [run_id, me.holder, me.host, me.pid, me.started, now, now + ttl_s, run_id])
            con.execute("UPDATE leases SET expires_at = ? WHERE run_id = ? AND holder = ?",
                        [now + ttl_s, run_id, me.holder])
            rows = con.execute("SELECT l.prompt_id, l.holder, l.host, l.pid, l.acquired_at FROM leases l SEMI JOIN "
                               "wanted USING (prompt_id) WHERE l.run_id = ?", [run_id]).fetchall()
            claimed = [pid_ for pid_, holder, *_ in rows if holder == me.holder]
            held = {pid_: describe_holder(host, pid, since) for pid_, holder, host, pid, since in rows
                    if holder != me.holder}
            stored = dict.fromkeys(claimed, 0)
            if claimed:
                con.register("claimed", pa.table({"prompt_id": claimed}))
                stored.update(con.execute("SELECT prompt_id, count(*) FROM generation_meta SEMI JOIN claimed "
                                          "USING (prompt_id) WHERE run_id = ? GROUP BY prompt_id",
                                          [run_id]).fetchall())
            con.execute("COMMIT")
        order = {p: i for i, p in enumerate(wanted["prompt_id"].to_pylist())}
        return PromptClaim(sorted(claimed, key=order.__getitem__), held, stored)

    def renew_leases(self, run_id: str, ttl_s: float = LEASE_TTL_S) -> None:
        """Push back the expiry of this process's leases on the run (what another host goes by)."""
        with self.connect(write=True) as con:
            con.execute("UPDATE leases SET expires_at = ? WHERE run_id = ? AND holder = ?",
                        [time.time() + ttl_s, run_id, this_process().holder])

    def release_prompts(self, run_id: str, prompt_ids: Sequence[str] | None = None) -> None:
        """Give up this process's leases on the run (all of them, or these prompts')."""
        import pyarrow as pa

        me = this_process()
        with self.connect(write=True) as con:
            if prompt_ids is None:
                con.execute("DELETE FROM leases WHERE run_id = ? AND holder = ?", [run_id, me.holder])
            elif prompt_ids:
                con.register("released", pa.table({"prompt_id": list(prompt_ids)}))
                con.execute("DELETE FROM leases WHERE run_id = ? AND holder = ? AND prompt_id IN "
                            "(SELECT prompt_id FROM released)", [run_id, me.holder])

    def register_staged(self, batches: list[StagedBatch]) -> int:
        """Register staged batches (`stage_generations`, written by this process or a worker) in one transaction:
        all of them, or none. Returns the generations added."""
        with self.connect(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                added = self.commit_staged(con, batches)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        return added

    def commit_staged(self, con: duckdb.DuckDBPyConnection, batches: list[StagedBatch]) -> int:
        """Inside the caller's open transaction (`register_staged` opens one; ingest and review commit other
        rows in the same one): insert new generations and move their shards into place.

        Rows whose id is already in the catalog (a re-run, or a race with another writer) are dropped
        from the shard before it is published, so every text is stored exactly once.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        added = 0
        moved: list[Path] = []
        cols = ", ".join(c for c in gen_meta_schema().names if c != "shard_row")
        try:
            for batch in batches:
                con.execute("CREATE OR REPLACE TEMP TABLE staged AS SELECT s.* FROM read_parquet(?) s "
                            "ANTI JOIN generation_meta g USING (generation_id) "
                            "QUALIFY row_number() OVER (PARTITION BY s.generation_id ORDER BY s.shard_row) = 1",
                            [str(batch.meta_path)])
                keep = [r[0] for r in con.execute("SELECT shard_row FROM staged ORDER BY shard_row").fetchall()]
                if not keep:
                    continue
                shard_path = batch.shard_path
                if len(keep) != batch.rows:
                    texts = pq.read_table(shard_path).take(pa.array(keep, pa.int64()))
                    pq.write_table(texts, shard_path, row_group_size=SHARD_ROW_GROUP, compression="zstd")
                final = self.root / SHARD_DIR / shard_path.name
                shutil.move(str(shard_path), final)
                moved.append(final)
                con.execute("INSERT INTO shards (shard, rows, bytes) VALUES (?, ?, ?)",
                            [final.name, len(keep), final.stat().st_size])
                # Rows kept in shard order: their position in the (possibly rewritten) shard is their rank.
                con.execute(f"INSERT INTO generation_meta ({cols}, shard, shard_row) SELECT {cols}, ?, "
                            f"row_number() OVER (ORDER BY shard_row) - 1 FROM staged", [final.name])
                con.execute("DROP TABLE staged")
                added += len(keep)
        except BaseException:
            for p in moved:  # the transaction will roll back: unpublish its shards too
                p.unlink(missing_ok=True)
            raise
        return added

    def generations(self, run_id: str | None = None, where: str | None = None, *, with_text: bool = True,
                    ids: Sequence[str] | None = None) -> pl.DataFrame:
        """Generations of a run (or matching `where`, or with these `ids`), ordered by prompt and sample index.

        `with_text=False` reads the metadata only, without touching the shards: what a resume needs for a run of
        millions of samples.
        """
        import pyarrow as pa

        clauses = []
        if run_id:
            clauses.append(f"run_id = {_literal(run_id)}")
        if where:
            clauses.append(f"({where})")
        if ids is not None:
            clauses.append("generation_id IN (SELECT generation_id FROM wanted_ids)")
        text_cols = "text, reasoning, answer, " if with_text else ""
        sql = (f"SELECT generation_id, prompt_id, run_id, sample_index, seed, {text_cols}finish_reason, "
               f"prompt_tokens, completion_tokens FROM {'generations' if with_text else 'generation_meta'}")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self.reader() as con:
            if ids is not None:
                con.register("wanted_ids", pa.table({"generation_id": list(ids)}))
            return _pl(con, sql + " ORDER BY prompt_id, sample_index, generation_id")

    def read_text(self, con: duckdb.DuckDBPyConnection, shard: str, row: int) -> dict[str, Any]:
        """One generation's text, read from its shard by row number (DuckDB reads only that row group)."""
        path = self.root / SHARD_DIR / shard
        if not path.exists():
            raise CatalogError(f"catalog {self.root} is damaged: shard {shard} is missing from {path.parent}. "
                               f"Restore the shards folder from a backup.")
        rows = con.execute("SELECT text, r_start, r_end, a_start FROM read_parquet(?, file_row_number = true) "
                           "WHERE file_row_number = ?", [str(path), row]).fetchall()
        if not rows:
            raise CatalogError(f"catalog {self.root} is damaged: shard {shard} has no row {row}.")
        text, r0, r1, a0 = rows[0]
        return {"text": text, "reasoning": text[r0:r1], "answer": text[a0:]}

    def require_generations(self, verb: str) -> None:
        """A clear error for a stage run over a catalog with nothing to work on."""
        if not self.count_generations():
            raise CatalogError(f"catalog {self.root} has no generations yet: nothing to {verb}. Make some with "
                               f"`r1f generate RECIPE` or import them with `r1f ingest FILE --generations --model "
                               f"NAME`.")

    SAMPLE_PROMPT_COLUMNS = ("source", "problem", "answer", "tests", "kind", "domain", "language", "messages")

    def iter_samples(self, *, where: str | Sequence[str | None] | None = None,
                     without: tuple[str, ...] | None = None,
                     batch_rows: int = 2000, on_total: Callable[[int], None] | None = None,
                     marks: Sequence[tuple[str | Sequence[str | None] | None, tuple[str, ...] | None, bool]]
                     | None = None,
                     on_marks: Callable[[list[tuple[int, int]]], None] | None = None,
                     ) -> Iterator[pl.DataFrame]:
        """Stream generations with their prompt's fields in catalog order (shard, row), holding no lock between
        batches.

        `where` is a SQL predicate over generation_meta and prompts columns (e.g. `domain = 'math'`), or a
        list of them, all of which must hold.
        `without=("verdict", judge, version)` or `("filter", name, version, params_hash)` skips generations
        that already have that verdict or decision: judging or filtering again costs nothing.
        `marks=[(where_i, without_i, see_done_i), ...]` serves several selections in one pass over the texts:
        a row is streamed when some mark selects it (where_i holds, and it lacks without_i's output unless
        see_done_i and some row where_i selects lacks it), and each batch carries boolean columns `_in_i`
        (mark i selects the row) and `_new_i` (the row lacks without_i's output). `on_marks` gets (selected,
        new) counts per mark.
        Each batch has generation_id, prompt_id, run_id, sample_index, finish_reason, completion_tokens,
        text, reasoning, answer, and the prompt's source, problem, reference (its answer), tests, kind,
        domain, language, messages.
        """
        import polars as pl

        def conjunction(w: str | Sequence[str | None] | None) -> str | None:
            if w is not None and not isinstance(w, str):
                return " AND ".join(f"({c})" for c in w if c) or None
            return w

        where = conjunction(where)
        plain = marks is None
        marks = [(None, without, False)] if marks is None else list(marks)
        cols: list[str] = []
        for i, (w, wo, _) in enumerate(marks):
            w = conjunction(w)
            cols.append(f"coalesce(({w}), false) AS _in_{i}" if w else f"true AS _in_{i}")
            cols.append(f"{_lacks_output(wo)} AS _new_{i}")
        sql = (f"SELECT g.shard, g.shard_row, {', '.join(cols)} FROM generation_meta g "
               f"JOIN prompts p USING (prompt_id) {'WHERE ' + where if where else ''}")
        with self.connect() as con:
            try:
                pending = con.sql(sql).pl()
            except duckdb.Error as exc:
                shown = " AND ".join(f"({w})" for w in [where, *(conjunction(m[0]) for m in marks)] if w)
                raise CatalogError(f"selection `{shown}` is not a valid SQL predicate over generations and "
                                   f"prompts: {str(exc).splitlines()[0]}") from None
        # A mark that sees done rows does so to decide new ones: with none new, it needs no row at all.
        has_new = pending.select([(pl.col(f"_in_{i}") & pl.col(f"_new_{i}")).any().alias(str(i))
                                  for i in range(len(marks))]).row(0) if pending.height else [False] * len(marks)
        pending = pending.with_columns(
            [(pl.col(f"_in_{i}") & (pl.lit(see and bool(has_new[i])) | pl.col(f"_new_{i}"))).alias(f"_in_{i}")
             for i, (_, _, see) in enumerate(marks)])
        pending = pending.filter(pl.any_horizontal([f"_in_{i}" for i in range(len(marks))]))
        # a categorical shard name and no ids: a few bytes per selected row
        pending = pending.sort("shard", "shard_row").with_columns(pl.col("shard").cast(pl.Categorical))
        if on_total is not None:
            on_total(pending.height)
        if on_marks is not None:
            on_marks([(int(pending[f"_in_{i}"].sum()), int((pending[f"_in_{i}"] & pending[f"_new_{i}"]).sum()))
                      for i in range(len(marks))])
        mark_cols = [] if plain else [c for i in range(len(marks)) for c in (f"_in_{i}", f"_new_{i}")]
        held: list[Any] = []
        held_rows = 0
        for batch in self._read_selected(pending.select("shard", "shard_row", *mark_cols),
                                         max(batch_rows, 4096)):
            held.append(batch)
            held_rows += batch.height
            while held_rows >= batch_rows:
                frame = pl.concat(held) if len(held) > 1 else held[0]
                yield frame.slice(0, batch_rows)
                rest = frame.slice(batch_rows)
                held, held_rows = ([rest] if rest.height else []), rest.height
        if held_rows:
            yield pl.concat(held) if len(held) > 1 else held[0]

    def _read_selected(self, pending: Any, chunk_rows: int) -> Iterator[Any]:
        """Texts and prompt fields of `pending` (shard, shard_row, then extra columns; sorted), in order, a
        chunk of rows at a time: one brief catalog read per chunk, each shard's needed row groups read once."""
        import numpy as np
        import polars as pl
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta_cols = "g.shard, g.shard_row, g.prompt_id, g.run_id, g.sample_index, g.finish_reason, g.completion_tokens"
        prompt_cols = ", ".join(f"p.{c}" if c != "answer" else "p.answer AS reference"
                                for c in self.SAMPLE_PROMPT_COLUMNS)
        for start in range(0, pending.height, chunk_rows):
            chunk = pending.slice(start, chunk_rows)
            shards = chunk["shard"].unique(maintain_order=True).cast(pl.String).to_list()
            with self.connect() as con:  # the prompt fields of this chunk's rows, in one brief read
                con.register("wanted", chunk.select(pl.col("shard").cast(pl.String), "shard_row").to_arrow())
                fields = con.sql(f"SELECT {meta_cols}, {prompt_cols} FROM generation_meta g "
                                 f"SEMI JOIN wanted USING (shard, shard_row) JOIN prompts p USING (prompt_id) "
                                 f"WHERE g.shard IN ({', '.join(_literal(x) for x in shards)})").pl()
            by_shard = fields.partition_by("shard", as_dict=True, include_key=False)
            for (shard,), rows in chunk.group_by("shard", maintain_order=True):
                wanted = rows["shard_row"].to_numpy()
                pf = pq.ParquetFile(self.root / SHARD_DIR / shard)
                bounds = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
                group_of = np.searchsorted(bounds, wanted, side="right") - 1
                groups = np.unique(group_of)  # only the row groups holding wanted rows are read
                table = pf.read_row_groups(groups.tolist())
                starts = np.concatenate([[0], np.cumsum(np.diff(bounds)[groups])[:-1]])
                local = wanted - bounds[group_of] + starts[np.searchsorted(groups, group_of)]
                texts = pl.from_arrow(table.take(pa.array(local, pa.int64())))
                assert isinstance(texts, pl.DataFrame)
                texts = texts.with_columns(
                    reasoning=pl.col("text").str.slice(pl.col("r_start"), pl.col("r_end") - pl.col("r_start")),
                    answer=pl.col("text").str.slice(pl.col("a_start"))).drop("r_start", "r_end", "a_start")
                # texts are in the order of `rows` (shard-row order): joining onto them keeps catalog order
                texts = texts.hstack(rows.drop("shard"))
                yield (texts.join(by_shard[(str(shard),)], on="shard_row", how="inner", maintain_order="left")
                       .drop("shard_row"))

    # ---------------------------------------------------------------- verdicts, filters, stats
    def add_verdicts(self, rows: Sequence[dict[str, Any]]) -> int:
        import pyarrow as pa

        table = pa.table({
            "generation_id": [r["generation_id"] for r in rows], "judge": [r["judge"] for r in rows],
            "judge_version": [str(r["judge_version"]) for r in rows],
            "score": [None if r.get("score") is None else float(r["score"]) for r in rows],
            "passed": [bool(r["passed"]) for r in rows], "reason": [r.get("reason") for r in rows],
            "details": [canonical_json(r.get("details") or {}) for r in rows]})
        return self._insert_new("verdicts", table, ["generation_id", "judge", "judge_version"])

    def add_filter_decisions(self, rows: Sequence[dict[str, Any]] | pl.DataFrame) -> int:
        """Insert decisions not recorded yet; returns how many were new. `rows` are dicts, or a polars
        DataFrame with the same columns (`params` already canonical JSON): no Python object per row."""
        import pyarrow as pa

        if not isinstance(rows, Sequence):  # a polars DataFrame, which is no Sequence
            import polars as pl

            frame = rows.select(pl.col("generation_id", "filter"), pl.col("filter_version").cast(pl.String),
                                pl.col("params_hash").fill_null(""), pl.col("passed").cast(pl.Boolean),
                                pl.col("reason"), pl.col("value").cast(pl.Float64),
                                pl.col("params").fill_null("{}"))
            return self._insert_new("filter_decisions", frame.to_arrow(),
                                    ["generation_id", "filter", "filter_version", "params_hash"])
        table = pa.table({
            "generation_id": [r["generation_id"] for r in rows], "filter": [r["filter"] for r in rows],
            "filter_version": [str(r["filter_version"]) for r in rows],
            "params_hash": [r.get("params_hash") or "" for r in rows],
            "passed": [bool(r["passed"]) for r in rows], "reason": [r.get("reason") for r in rows],
            "value": [None if r.get("value") is None else float(r["value"]) for r in rows],
            "params": [canonical_json(r.get("params") or {}) for r in rows]})
        return self._insert_new("filter_decisions", table,
                                ["generation_id", "filter", "filter_version", "params_hash"])

    def _insert_new(self, table_name: str, table: Any, key: list[str]) -> int:
        if table.num_rows == 0:
            return 0
        cols = ", ".join(table.column_names)
        keys = ", ".join(key)
        with self.connect(write=True) as con:
            con.register("incoming", table)
            before = one_row(con.execute(f"SELECT count(*) FROM {table_name}"))[0]
            con.execute(f"INSERT OR IGNORE INTO {table_name} ({cols}) SELECT {cols} FROM incoming "
                        f"QUALIFY row_number() OVER (PARTITION BY {keys}) = 1")
            return one_row(con.execute(f"SELECT count(*) FROM {table_name}"))[0] - before

    def decision_counts(self, filter_name: str, version: str, phash: str) -> tuple[int, int]:
        """(passed, total) decisions of one filter version and params."""
        with self.connect() as con:
            passed, total = con.execute(
                "SELECT count(*) FILTER (WHERE passed), count(*) FROM filter_decisions WHERE filter = ? AND "
                "filter_version = ? AND params_hash = ?", [filter_name, str(version), phash]).fetchall()[0]
        return int(passed), int(total)

    def verdicts(self, generation_ids: list[str] | None = None) -> pl.DataFrame:
        import pyarrow as pa

        with self.reader() as con:
            if generation_ids is None:
                return _pl(con, "SELECT * FROM verdicts ORDER BY generation_id, judge")
            con.register("wanted", pa.table({"generation_id": list(generation_ids)}))
            return _pl(con, "SELECT v.* FROM verdicts v SEMI JOIN wanted USING (generation_id) "
                            "ORDER BY generation_id, judge")

    def set_prompt_stats(self, rows: Sequence[dict[str, Any]]) -> None:
        import pyarrow as pa

        if not rows:
            return
        cols = ["prompt_id", "run_id", "samples", "accepted", "pass_rate", "status", "rounds", "tokens"]
        table = pa.table({c: [r.get(c) for r in rows] for c in cols})
        with self.connect(write=True) as con:
            con.register("incoming", table)
            # Stats are derived numbers, updated as sampling proceeds; the generations they count are not.
            con.execute(f"INSERT OR REPLACE INTO prompt_stats ({', '.join(cols)}) SELECT {', '.join(cols)} "
                        f"FROM incoming")

    # ---------------------------------------------------------------- training runs and eval answers
    TRAINING_COLUMNS = ("training_id", "kind", "model", "base_model", "release_name", "manifest_sha256",
                        "prompts_where", "recipe", "code_version", "status", "metrics", "output_dir",
                        "started_at", "finished_at")

    def record_training(self, row: dict[str, Any]) -> str:
        """Insert or update one training run (`trainings`); its status and metrics change as it runs.

        `recipe` and `metrics` are stored as canonical JSON. Returns the training id.
        """
        values = {c: row.get(c) for c in self.TRAINING_COLUMNS}
        values["recipe"] = canonical_json(row.get("recipe") or {})
        values["metrics"] = canonical_json(row.get("metrics") or {})
        values["code_version"] = row.get("code_version") or code_version()
        cols = ", ".join(values)
        with self.connect(write=True) as con:
            con.execute(f"INSERT OR REPLACE INTO trainings ({cols}) VALUES ({', '.join('?' * len(values))})",
                        list(values.values()))
        return str(values["training_id"])

    def add_eval_answers(self, rows: Sequence[dict[str, Any]]) -> int:
        """Each eval generation's answer class (generation_id, run_id, prompt_id, answer_key, method)."""
        import pyarrow as pa

        cols = ("generation_id", "run_id", "prompt_id", "answer_key", "method")
        table = pa.table({c: [r.get(c) for r in rows] for c in cols}, schema=pa.schema([(c, pa.string()) for c in cols]))
        return self._insert_new("eval_answers", table, ["generation_id"])


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


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _lacks_output(without: tuple[str, ...] | None) -> str:
    """SQL that is true for a generation (alias g) without the verdict or decision `without` names."""
    if without is None:
        return "true"
    if without[0] == "verdict" and len(without) == 3:
        return (f"g.generation_id NOT IN (SELECT generation_id FROM verdicts WHERE judge = {_literal(without[1])} "
                f"AND judge_version = {_literal(str(without[2]))})")
    if without[0] == "filter" and len(without) == 4:
        return (f"g.generation_id NOT IN (SELECT generation_id FROM filter_decisions WHERE filter = "
                f"{_literal(without[1])} AND filter_version = {_literal(str(without[2]))} AND params_hash = "
                f"{_literal(without[3])})")
    raise ValueError(f"without={without!r}: use ('verdict', judge, version) or ('filter', name, version, params_hash)")


def _pl(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return con.sql(sql).pl()


def one_row(cur: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The row of a query that always returns one: an aggregate, or a key known to exist."""
    row = cur.fetchone()
    assert row is not None, "the query returned no row"
    return row
