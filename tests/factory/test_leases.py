"""Coordination between processes on one catalog, with real processes and no engine: prompt leases (a second
process samples other prompts), a catalog of the previous schema gaining the leases table, and staging folders
left by a killed process removed at the next write (and only those)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from catalogs import Catalog, schema
from catalogs.ingest import IngestOptions, ingest
from catalogs.store import STAGING_DIR, this_process

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from catalogs import Catalog
claim = Catalog(sys.argv[1], create=False).claim_prompts(sys.argv[2], sys.argv[3].split(","))
print("claimed", len(claim.claimed), flush=True)
time.sleep(600)
"""

STAGER = """
import os, sys
from catalogs import Catalog
batch = Catalog(sys.argv[1], create=False).stage_generations(
    [{"generation_id": "g_x", "prompt_id": "p_x", "run_id": "r_x", "text": "staged, never committed"}])
print(batch.shard_path.parent.name, flush=True)
if sys.argv[2] == "die":
    os._exit(0)  # gone without cleaning up, as after kill -9
import time
time.sleep(600)
"""


def make_catalog(path: Path, n: int = 4) -> tuple[Catalog, list[str]]:
    src = path.parent / f"{path.name}-prompts.jsonl"
    src.write_text("\n".join(json.dumps({"problem": f"problem {i}"}) for i in range(n)) + "\n")
    cat = Catalog(path)
    ingest(cat, src, IngestOptions(source="leases"))
    return cat, cat.prompts()["prompt_id"].to_list()


def spawn(code: str, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


LEASES_VERSION = 4  # the migration that made the leases table (catalogs/schema.py)


def downgrade_to_previous_schema(db: Path) -> None:
    """The catalog as the schema before leases wrote it: no leases table, that version's number. (The tables of
    later migrations may stay: each migration creates with IF NOT EXISTS.)"""
    assert "CREATE TABLE IF NOT EXISTS leases" in schema.MIGRATIONS[LEASES_VERSION]
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE leases")
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(LEASES_VERSION - 1)])
    con.close()


def test_previous_schema_catalog_gains_leases(tmp_path: Path) -> None:
    cat, prompts = make_catalog(tmp_path / "cat")
    downgrade_to_previous_schema(cat.db_path)
    old = Catalog(tmp_path / "cat", create=False)  # opened as `r1f generate` opens it
    claim = old.claim_prompts("r_run", prompts)
    assert claim.claimed == prompts and claim.held == {}
    con = duckdb.connect(str(cat.db_path), read_only=True)
    assert int(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) == schema.SCHEMA_VERSION
    assert con.execute("SELECT count(*) FROM prompts").fetchone()[0] == len(prompts)  # nothing lost
    con.close()


def test_a_second_process_gets_only_free_prompts_and_a_dead_holders_back(tmp_path: Path) -> None:
    cat, prompts = make_catalog(tmp_path / "cat")
    holder, line = spawn(HOLDER, str(cat.root), "r_run", ",".join(prompts[:2]))
    try:
        assert line == "claimed 2"
        claim = cat.claim_prompts("r_run", prompts)
        assert claim.claimed == prompts[2:]  # the rest, in the order asked
        assert set(claim.held) == set(prompts[:2])
        assert all(f"pid {holder.pid} on " in who for who in claim.held.values())
        # Another run's prompts are not held by that lease.
        assert cat.claim_prompts("r_other", prompts).claimed == prompts
        cat.release_prompts("r_other")
    finally:
        stop(holder)
    # Killed with -9: its leases are dropped by the next claim.
    claim = cat.claim_prompts("r_run", prompts)
    assert claim.claimed == prompts and claim.held == {}
    cat.release_prompts("r_run")


def test_lease_of_a_reused_pid_or_another_host(tmp_path: Path) -> None:
    cat, prompts = make_catalog(tmp_path / "cat")
    me = this_process()
    live, _ = spawn("import time; print('up', flush=True); time.sleep(600)")
    now = time.time()
    try:
        con = duckdb.connect(str(cat.db_path))
        con.executemany("INSERT INTO leases VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
            # A live pid that started long after this lease was taken: the pid was reused, the holder is gone.
            ("r_run", prompts[0], f"{me.host}:{live.pid}:1", me.host, live.pid, 1.0, 1.0, now + 3600),
            # Another host, lease still valid: held (its pid means nothing here).
            ("r_run", prompts[1], "elsewhere:1:1", "elsewhere", 1, 1.0, now, now + 3600),
            # Another host, lease expired: free.
            ("r_run", prompts[2], "gone:1:1", "gone", 1, 1.0, now - 7200, now - 3600),
        ])
        con.close()
        claim = cat.claim_prompts("r_run", prompts)
    finally:
        stop(live)
    assert claim.claimed == [prompts[0], prompts[2], prompts[3]]
    assert list(claim.held) == [prompts[1]] and "on elsewhere" in claim.held[prompts[1]]


def test_orphan_staging_folders_removed_at_next_write(tmp_path: Path) -> None:
    cat, _ = make_catalog(tmp_path / "cat")
    staging = cat.root / STAGING_DIR
    # A real process stages a batch and dies before its commit; another is still at it.
    alive, alive_name = spawn(STAGER, str(cat.root), "live")
    dead, dead_name = spawn(STAGER, str(cat.root), "die")
    dead.wait(timeout=60)
    try:
        assert (staging / dead_name).is_dir() and (staging / alive_name).is_dir()
        host = this_process().host_tag
        reused = staging / f"{alive.pid}-1-{host}-0000aaaa"  # that pid, but a process that started at another time
        other_host = staging / f"{dead.pid}-1-ffffffff-0000bbbb"  # another host's: its pid means nothing here
        old_reused = staging / f"{alive.pid}-0000cccc"  # old naming; last changed before that pid's process started
        old_live = staging / f"{alive.pid}-0000dddd"  # old naming, changed since that process started: maybe its
        for d in (reused, other_host, old_reused, old_live):
            d.mkdir()
        day_ago = time.time() - 86400
        os.utime(old_reused, (day_ago, day_ago))

        # The next write of any process cleans up.
        cat.add_generations([{"generation_id": "g_1", "prompt_id": "p_1", "run_id": "r_1", "text": "hello"}])

        left = {d.name for d in staging.iterdir()}
        assert left == {alive_name, other_host.name, old_live.name}
    finally:
        stop(alive)
    assert cat.count_generations() == 1


def test_staging_name_carries_pid_start_and_host(tmp_path: Path) -> None:
    cat, _ = make_catalog(tmp_path / "cat", n=1)
    d = cat._staging_dir()
    try:
        pid, started_cs, host, _ = d.name.split("-")
        me = this_process()
        assert int(pid) == os.getpid() and int(started_cs) == me.started_cs and host == me.host_tag
    finally:
        d.rmdir()


def test_stats_written_with_the_release_in_one_transaction(tmp_path: Path) -> None:
    cat, prompts = make_catalog(tmp_path / "cat")
    assert cat.claim_prompts("r_run", prompts).claimed == prompts
    row = {"run_id": "r_run", "samples": 4, "accepted": 1, "pass_rate": 0.25, "status": "open", "rounds": 1,
           "tokens": 40}

    def state() -> tuple[list[str], list[tuple[str, int]]]:
        with cat.connect() as con:
            leased = [r[0] for r in con.execute("SELECT prompt_id FROM leases WHERE run_id = 'r_run' "
                                                "ORDER BY prompt_id").fetchall()]
            stats = con.execute("SELECT prompt_id, samples FROM prompt_stats ORDER BY prompt_id").fetchall()
        return leased, stats

    # A stats row the catalog refuses (no prompt id): nothing of the call is kept, the leases included.
    with pytest.raises(duckdb.ConstraintException):
        cat.release_prompts("r_run", prompts[:2], stats=[{**row, "prompt_id": prompts[0]}, {**row, "prompt_id": None}])
    assert state() == (sorted(prompts), [])
    cat.release_prompts("r_run", prompts[:2], stats=[{**row, "prompt_id": p} for p in prompts[:2]])
    assert state() == (sorted(prompts[2:]), sorted((p, 4) for p in prompts[:2]))
