"""The catalog's leases and staging: which process samples which prompt, and how generations reach the shards.

A lease names its holder by host, pid and process start time, so a holder killed with -9 is told from a live one
(and from a later process that got its pid) without any heartbeat on this host. Generations are written to a
private staging folder outside the lock, then registered in one transaction that moves their shards into place.
"""
from __future__ import annotations

import functools
import os
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .store_core import (SHARD_DIR, SHARD_ROW_GROUP, STAGING_DIR, CatalogCore, distinct_keys, gen_meta_schema,
                         insert_new, text_schema, text_spans)
from .store_verdicts import VERDICT_KEY, verdicts_table, write_prompt_stats

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
    meta_path: Path | None
    rows: int
    # The metadata as an Arrow table, where it stays in this process's memory (`add_generations`): not written to
    # `meta_path` and read back.
    meta: Any = None



_last_commit_time = 0
_commit_clock = threading.Lock()


def _commit_time() -> int:
    """Nanoseconds since the epoch, rising within this process (across its threads) even if the wall clock steps
    back."""
    global _last_commit_time
    with _commit_clock:
        _last_commit_time = max(time.time_ns(), _last_commit_time + 1)
        return _last_commit_time


class LeasesAndStaging(CatalogCore):
    """Leases on prompts (claim, renew, release) and the commit path of generations (stage, register)."""

    def stage_generations(self, rows: Sequence[dict[str, Any]], staging: Path | None = None,
                          ingest_id: str | None = None, *, meta_in_memory: bool = False) -> StagedBatch:
        """Write one batch of generations to a staging shard (no lock held). `meta_in_memory`: their metadata stays
        in the batch, for a commit by this process, instead of a file beside the shard."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        staging = staging or self._staging_dir()
        # Named by the commit's time, then a random part: shards sort in the order they were committed, so the
        # catalog's order (shard, row) is the order generations were made in, on every run. With random names
        # alone a run's second batch sorted before its first on some runs, and order-keeping stages (dedup keeps
        # the first of two equal texts) kept other copies.
        shard_path = staging / f"gen-{_commit_time():020d}-{uuid.uuid4().hex[:12]}.parquet"
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
            meta["published_id"].append(row.get("published_id"))
        pq.write_table(pa.table(texts, schema=text_schema()), shard_path, row_group_size=SHARD_ROW_GROUP,
                       compression="zstd")
        table = pa.table(meta, schema=gen_meta_schema())
        if meta_in_memory:
            return StagedBatch(shard_path, None, len(rows), table)
        meta_path = shard_path.with_suffix(".meta.parquet")
        pq.write_table(table, meta_path)
        return StagedBatch(shard_path, meta_path, len(rows))

    def add_generations(self, rows: Sequence[dict[str, Any]]) -> int:
        """Commit one batch of generations atomically; ids already in the catalog are skipped."""
        if not rows:
            return 0
        staging = self._staging_dir()
        try:
            return self.register_staged([self.stage_generations(rows, staging, meta_in_memory=True)])
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
        with self.transaction() as con:
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
        order = {p: i for i, p in enumerate(wanted["prompt_id"].to_pylist())}
        return PromptClaim(sorted(claimed, key=order.__getitem__), held, stored)

    def renew_leases(self, run_id: str, ttl_s: float = LEASE_TTL_S) -> None:
        """Push back the expiry of this process's leases on the run (what another host goes by)."""
        with self.connect(write=True) as con:
            con.execute("UPDATE leases SET expires_at = ? WHERE run_id = ? AND holder = ?",
                        [time.time() + ttl_s, run_id, this_process().holder])

    def release_prompts(self, run_id: str, prompt_ids: Sequence[str] | None = None,
                        stats: Sequence[dict[str, Any]] = (), verdicts: Sequence[dict[str, Any]] = ()) -> None:
        """Give up this process's leases on the run (all of them, or these prompts'). `verdicts` (as `add_verdicts`
        takes them) and `stats` (`prompt_stats` rows) are written in the same transaction, before the leases go: the
        end of a chunk is one commit where three would cost thrice."""
        import pyarrow as pa

        me = this_process()
        with self.transaction() if stats or verdicts else self.connect(write=True) as con:
            if verdicts:
                insert_new(con, "verdicts", verdicts_table(verdicts), VERDICT_KEY)
            if stats:
                write_prompt_stats(con, stats)
            if prompt_ids is None:
                con.execute("DELETE FROM leases WHERE run_id = ? AND holder = ?", [run_id, me.holder])
            elif prompt_ids:
                con.register("released", pa.table({"prompt_id": list(prompt_ids)}))
                con.execute("DELETE FROM leases WHERE run_id = ? AND holder = ? AND prompt_id IN "
                            "(SELECT prompt_id FROM released)", [run_id, me.holder])

    def register_staged(self, batches: list[StagedBatch]) -> int:
        """Register staged batches (`stage_generations`, written by this process or a worker) in one transaction:
        all of them, or none. Returns the generations added."""
        with self.transaction() as con:
            return self.commit_staged(con, batches)

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
                if batch.meta is not None:
                    con.register("staged_meta", batch.meta)
                    source, args = "staged_meta", []
                else:
                    source, args = "read_parquet(?)", [str(batch.meta_path)]
                # A generation twice in the batch is kept once, its first row; a batch of distinct ids (checked where
                # that is cheap) needs no window for it.
                once = ("" if batch.meta is not None and distinct_keys(batch.meta, ["generation_id"]) else
                        " QUALIFY row_number() OVER (PARTITION BY s.generation_id ORDER BY s.shard_row) = 1")
                keep = [r[0] for r in con.execute(
                    f"SELECT s.shard_row FROM {source} s ANTI JOIN generation_meta g USING (generation_id){once} "
                    f"ORDER BY s.shard_row", args).fetchall()]
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
                con.register("kept_rows", pa.table({"shard_row": pa.array(keep, pa.int64())}))
                con.execute(f"INSERT INTO generation_meta ({cols}, shard, shard_row) SELECT {cols}, ?, "
                            f"row_number() OVER (ORDER BY shard_row) - 1 FROM {source} SEMI JOIN kept_rows "
                            f"USING (shard_row)", [final.name, *args])
                added += len(keep)
        except BaseException:
            for p in moved:  # the transaction will roll back: unpublish its shards too
                p.unlink(missing_ok=True)
            raise
        return added

