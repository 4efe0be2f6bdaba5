"""Reading while another process writes: two real processes on one catalog.

Nothing here depends on how fast either process runs: where the test needs the other process at a given
point, that process waits there for a line from the test, and what the test asserts about reads that land
anywhere holds wherever they land.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from catalogs import Catalog
from catalogs.query import sql, stats

from .helpers import r1f

BATCHES, PER_BATCH = 40, 25

WRITER = textwrap.dedent("""
    import sys, time
    from catalogs import Catalog
    from catalogs.ids import generation_id
    cat = Catalog(sys.argv[1])
    run = cat.add_run(dict(model="m", backend="vllm", template="t"))
    for b in range({batches}):
        rows = [dict(generation_id=generation_id("p_x", run, b * {per} + i), prompt_id="p_x", run_id=run,
                     sample_index=b * {per} + i, seed=i, text="<think>" + "x" * 4000 + "</think>ok",
                     reasoning="x" * 4000, answer="ok", finish_reason="stop") for i in range({per})]
        assert cat.add_generations(rows) == {per}
        print(b, flush=True)
        if b == 0:
            sys.stdin.readline()  # hold after the first batch until the test has read the run in progress
        time.sleep(0.05)
""").format(batches=BATCHES, per=PER_BATCH)


def test_readers_see_committed_batches_while_a_writer_runs(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog(root)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdin is not None and writer.stdout is not None
        assert writer.stdout.readline().strip() == "0"  # the first batch is committed; the writer holds
        seen: list[int] = []
        cli_seen: list[int] = []

        def read() -> None:
            cat = Catalog(root, create=False)
            seen.append(stats(cat)["generations"])
            _, rows = sql(cat, "SELECT count(*) FROM generations WHERE answer = 'ok'")
            assert rows[0][0] % PER_BATCH == 0  # a batch is visible whole or not at all
            if len(cli_seen) < 3:  # the commands a user types in another terminal
                out = r1f("stats", "--json", catalog=root, timeout=60).stdout
                cli_seen.append(json.loads(out)["generations"])
                r1f("sql", "SELECT count(*) FROM generations", catalog=root, timeout=60)

        read()  # a run in progress, for certain: one batch of many
        assert seen == [PER_BATCH] and cli_seen == [PER_BATCH]
        writer.stdin.write("go\n")
        writer.stdin.flush()
        # One read per batch the writer reports, landing wherever the writer then is (it goes on at once). Not a
        # tight loop: a reader polling without pause holds the file so often that the writer's lock retries back
        # off for minutes, which is not what this test is about.
        for _line in writer.stdout:
            read()
        assert writer.wait(timeout=120) == 0
    finally:
        writer.kill()
    assert all(n % PER_BATCH == 0 for n in seen + cli_seen)
    assert seen == sorted(seen)  # never goes backwards
    assert stats(Catalog(root))["generations"] == BATCHES * PER_BATCH


def test_a_reader_does_not_block_a_writer_for_long(tmp_path: Path) -> None:
    """A writer waits (retries) while a reader holds the file, then commits."""
    cat = Catalog(root := tmp_path / "cat", lock_timeout=600)  # gives up only on a hang
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from catalogs import Catalog
        with Catalog({str(root)!r}).reader() as con:
            print("open", flush=True)
            sys.stdin.readline()  # holds the file until the test says
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdin is not None and reader.stdout is not None
        assert reader.stdout.readline().strip() == "open"
        got: dict[str, object] = {}

        def write() -> None:
            try:
                got["run"] = cat.add_run({"model": "m", "backend": "vllm"})
            except BaseException as exc:  # noqa: BLE001  re-raised below, in the test's thread
                got["error"] = exc

        writer = threading.Thread(target=write)
        writer.start()
        # However long we look, a writer cannot get through while the reader holds the file. (On a machine
        # too busy to run the writer in this second, this proves less, but it cannot fail.)
        writer.join(1.0)
        assert writer.is_alive() and not got, got
        reader.stdin.write("close\n")
        reader.stdin.flush()
        assert reader.wait(timeout=60) == 0
        writer.join(cat.lock_timeout)  # once the reader is gone, the writer goes through
        assert not writer.is_alive() and "error" not in got, got
    finally:
        reader.kill()
    assert got["run"] in {r[0] for r in sql(cat, "SELECT run_id FROM runs")[1]}


# Another process's write, tried once: fails at once (no retry) while this process holds the file.
WRITE_ONCE = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
    con.close()
""")


def test_between_calls_the_file_is_free(tmp_path: Path) -> None:
    """A process keeps one DuckDB and attaches the catalog file for each call only: after every kind of call
    (one that fails, one nested in another, one from another thread too) another process can write at once."""
    cat = Catalog(tmp_path / "cat")

    def other_process_writes() -> bool:
        return subprocess.run([sys.executable, "-c", WRITE_ONCE, str(cat.db_path)], capture_output=True,
                              timeout=120).returncode == 0

    with cat.connect() as con:  # while a call runs, another process cannot write (DuckDB's lock)
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert not other_process_writes()
    assert other_process_writes()
    run = cat.add_run({"model": "m", "backend": "vllm"})
    assert other_process_writes()
    with cat.reader() as con:
        assert con.execute("SELECT run_id FROM runs").fetchall() == [(run,)]
        with cat.reader() as inner:  # nested: a DuckDB of its own, as before
            assert inner.execute("SELECT count(*) FROM prompts").fetchone() == (0,)
        con.execute("CREATE TABLE mine AS SELECT 1 AS x")  # the reader's scratch: gone after the call
    assert other_process_writes()
    try:
        with cat.transaction() as con:
            con.execute("DELETE FROM runs")
            raise ValueError("a failing call")
    except ValueError:
        pass
    assert other_process_writes()
    with cat.reader() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)  # rolled back
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'mine'").fetchone() == (0,)
    got: list[int] = []
    with cat.reader():
        thread = threading.Thread(target=lambda: got.append(len(cat.generation_ids(run))))
        thread.start()
        thread.join(120)
    assert got == [0]
    assert other_process_writes()


def test_a_held_block_keeps_one_attach_and_each_call_commits(tmp_path: Path) -> None:
    """`held()`: the calls of the block share one attach (the file is busy for other processes meanwhile), each is
    its own transaction (a failure later in the block undoes nothing before it), and the file is free after."""
    import pickle

    import pytest

    from catalogs.errors import CatalogError

    cat = Catalog(tmp_path / "cat")

    def other_process_writes() -> bool:
        return subprocess.run([sys.executable, "-c", WRITE_ONCE, str(cat.db_path)], capture_output=True,
                              timeout=120).returncode == 0

    with pytest.raises(RuntimeError, match="later in the block"):
        with cat.held():
            first = cat.add_run({"model": "m", "backend": "vllm"})
            with cat.held():  # nested: the same block
                with cat.reader(views=["runs"]) as con:  # a reader sees the block's own commits
                    assert con.execute("SELECT run_id FROM runs").fetchall() == [(first,)]
            assert not other_process_writes()
            raise RuntimeError("a failure later in the block")
    assert other_process_writes()
    with cat.reader() as con:
        assert con.execute("SELECT run_id FROM runs").fetchall() == [(first,)]  # committed when its call ended
    got: list[str] = []
    started = threading.Event()

    def from_another_thread() -> None:
        started.set()
        got.append(cat.add_run({"model": "t", "backend": "vllm"}))  # waits for the block, then writes

    with cat.held():
        thread = threading.Thread(target=from_another_thread)
        thread.start()
        started.wait(60)
        cat.add_run({"model": "h", "backend": "vllm"})
    thread.join(120)
    assert len(got) == 1
    with cat.reader() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (3,)
    # A write inside another call of the same thread can never get the file: a clear error, not a wait.
    with cat.reader(), pytest.raises(CatalogError, match="inside a read call of the same thread"):
        cat.add_run({"model": "x", "backend": "vllm"})
    copy = pickle.loads(pickle.dumps(cat))  # a catalog travels to another process without this one's state
    with copy.held():
        assert len(copy.generation_ids(first)) == 0
    assert other_process_writes()


def test_released_gives_the_file_back_inside_a_held_block(tmp_path: Path) -> None:
    """`released()` inside `held()`: for its block the file is free (another process and another thread write; this
    thread's calls open it as usual), then attached again for the rest of the held block; outside a held block it
    changes nothing. What the sampling loop does around a model's call."""
    cat = Catalog(tmp_path / "cat")

    def other_process_writes() -> bool:
        return subprocess.run([sys.executable, "-c", WRITE_ONCE, str(cat.db_path)], capture_output=True,
                              timeout=120).returncode == 0

    got: list[str] = []
    with cat.held():
        cat.add_run({"model": "before", "backend": "vllm"})
        assert not other_process_writes()
        with cat.released():
            assert other_process_writes()
            thread = threading.Thread(target=lambda: got.append(cat.add_run({"model": "t", "backend": "vllm"})))
            thread.start()
            thread.join(120)  # no wait on this thread's block: the file is free
            assert len(got) == 1
            cat.add_run({"model": "inside", "backend": "vllm"})  # opens the file as any call outside a block
        assert not other_process_writes()  # attached again
        cat.add_run({"model": "after", "backend": "vllm"})
    with cat.released():  # outside a held block: nothing
        cat.add_run({"model": "outside", "backend": "vllm"})
    assert other_process_writes()
    with cat.reader(views=["runs"]) as con:
        models = {r[0] for r in con.execute("SELECT model FROM runs").fetchall()}
    assert {"before", "t", "inside", "after", "outside"} <= models
