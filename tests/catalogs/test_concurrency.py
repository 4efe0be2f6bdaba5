"""Reading while another process writes: two real processes on one catalog."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
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
        time.sleep(0.05)
""").format(batches=BATCHES, per=PER_BATCH)


def test_readers_see_committed_batches_while_a_writer_runs(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog(root)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        writer.stdout.readline()  # the first batch is committed
        seen: list[int] = []
        cli_seen: list[int] = []
        while writer.poll() is None:
            cat = Catalog(root, create=False)
            seen.append(stats(cat)["generations"])
            _, rows = sql(cat, "SELECT count(*) FROM generations WHERE answer = 'ok'")
            assert rows[0][0] % PER_BATCH == 0  # a batch is visible whole or not at all
            if len(cli_seen) < 3:  # the commands a user types in another terminal
                out = r1f("stats", "--json", catalog=root, timeout=60).stdout
                cli_seen.append(json.loads(out)["generations"])
                r1f("sql", "SELECT count(*) FROM generations", catalog=root, timeout=60)
        assert writer.wait(timeout=120) == 0
    finally:
        writer.kill()
    assert seen and all(n % PER_BATCH == 0 for n in seen)
    assert seen == sorted(seen)  # never goes backwards
    assert any(0 < n < BATCHES * PER_BATCH for n in seen + cli_seen), (seen, cli_seen)  # saw a run in progress
    assert stats(Catalog(root))["generations"] == BATCHES * PER_BATCH


def test_a_reader_does_not_block_a_writer_for_long(tmp_path: Path) -> None:
    """A writer waits (retries) while a reader holds the file, then commits."""
    cat = Catalog(root := tmp_path / "cat")
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from catalogs import Catalog
        with Catalog({str(root)!r}).reader() as con:
            print("open", flush=True)
            time.sleep(1.5)
    """)], stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
    t0 = time.monotonic()
    run = cat.add_run({"model": "m", "backend": "vllm"})
    assert time.monotonic() - t0 >= 0.5  # it waited for the reader, then went through
    assert reader.wait(timeout=30) == 0
    assert run in {r[0] for r in sql(cat, "SELECT run_id FROM runs")[1]}
