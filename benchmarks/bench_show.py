"""The read commands as whole processes, each against a bare `python -c "import duckdb; …"` doing the same work.

    python benchmarks/bench_show.py --n 1000000      # the README's figures (1M generations of ~2k characters)
    python benchmarks/bench_show.py --n 50000        # a quick look

Each command and its bare script run as fresh processes, one after the other, round after round, so that load
on a shared machine hits both alike:
  - `r1f show ID` (random generation ids) against a script that opens the catalog's DuckDB file read-only,
    reads the generation's row and its text from its Parquet shard, and prints them (`show` also looks up the
    prompt, run, verdicts, filter decisions, releases and edits, and renders them);
  - `r1f sql QUERY` and `r1f stats` against a script that opens the same DuckDB connection and runs the same
    SQL statements the command runs (recorded from the command's own code in this process), printing the last
    result;
  - `r1f --help` against `python -c "import duckdb"`.
Prints, per command, the medians of the runs (wall and CPU time) and their ratio; asserts nothing. The target is
a ratio of at most 1.3 for each.

The catalog is built once per size, under the system temp folder (r1f-bench/show-n…), and reused by later runs;
`--work DIR` puts it elsewhere. Both sides run with bytecode caching on (into that folder, as an installed
package has it, whatever PYTHONDONTWRITEBYTECODE says here), and `r1f --help` with its help cache there too.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_catalog import make_corpus  # noqa: E402  (the same synthetic generations as the catalog benchmark)

SCRIPT = Path(sys.executable).with_name("r1f")

BARE_SHOW = """
import sys, duckdb
db, gid = sys.argv[1], sys.argv[2]
con = duckdb.connect(db + "/catalog.duckdb", read_only=True)
row = con.execute("SELECT * FROM generation_meta WHERE generation_id = ?", [gid]).fetchone()
shard = con.execute("SELECT shard, shard_row FROM generation_meta WHERE generation_id = ?", [gid]).fetchone()
text = con.execute(f"SELECT text FROM read_parquet('{db}/shards/{shard[0]}') WHERE generation_id = ?",
                   [gid]).fetchone()
print(row, text[0][:600])
"""

# Replays what a command ran: one connection (target, read_only) and its statements, in order.
BARE_REPLAY = """
import json, sys, duckdb
calls = json.loads(open(sys.argv[1]).read())
con = duckdb.connect(calls["target"], read_only=calls["read_only"])
for sql, params in calls["statements"]:
    rows = con.execute(sql, params).fetchall()
print(rows)
"""

SQL_QUERY = "SELECT count(*) FROM verdicts"


def r1f_command() -> list[str]:
    """The `r1f` script beside this interpreter; `python -m r1f` if that script predates `r1f.entry` (an
    install made before it: `pip install -e .` again)."""
    if SCRIPT.exists() and "r1f.entry" in SCRIPT.read_text(errors="replace"):
        return [str(SCRIPT)]
    print(f"[note] {SCRIPT} does not call r1f.entry (reinstall: pip install -e .); timing `python -m r1f`",
          flush=True)
    return [sys.executable, "-m", "r1f"]


def child_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "COLUMNS": "120", "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "XDG_CACHE_HOME": str(work / "cache")}


class Timer:
    """Wall and CPU (user + system) seconds of fresh processes, per name; CPU time is the steadier figure on a
    shared machine."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def run(self, name: str, cmd: list[str]) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=self.env)
        self.wall.setdefault(name, []).append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.setdefault(name, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

    def median(self, name: str, cpu: bool = False) -> float:
        return statistics.median((self.cpu if cpu else self.wall)[name])


@contextmanager
def recording(log: dict[str, Any]) -> Iterator[None]:
    """Record the DuckDB connection a command opens and every statement it executes on it."""
    import duckdb

    real_connect = duckdb.connect

    class Recorder:
        def __init__(self, con: Any) -> None:
            self.con = con

        def execute(self, sql: str, params: Any = None) -> Any:
            log["statements"].append([sql, list(params or [])])
            return self.con.execute(sql, params or [])

        def __getattr__(self, name: str) -> Any:
            return getattr(self.con, name)

    def connect(database: str = ":memory:", read_only: bool = False, **kw: Any) -> Any:
        log.update(target=str(database), read_only=read_only, statements=[])
        return Recorder(real_connect(database, read_only=read_only, **kw))

    duckdb.connect = connect  # type: ignore[assignment]
    try:
        yield
    finally:
        duckdb.connect = real_connect


def record(work: Path, name: str, run: Callable[[], Any]) -> Path:
    log: dict[str, Any] = {}
    with recording(log):
        run()
    path = work / f"{name}.calls.json"
    path.write_text(json.dumps(log))
    return path


def build_catalog(catalog: Path, n: int, chars: int, r1f: list[str], env: dict[str, str]) -> None:
    src = catalog.parent / "gens.parquet"
    make_corpus(src, n, text_chars=chars)
    t0 = time.perf_counter()
    subprocess.run([*r1f, "ingest", str(src), "--generations", "--model", "bench", "--source", "bench",
                    "--catalog", str(catalog)], check=True, stdout=subprocess.DEVNULL, env=env)
    print(f"[catalog] {n:,} generations ingested in {time.perf_counter() - t0:.0f}s → {catalog}", flush=True)
    src.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="generations in the catalog")
    ap.add_argument("--chars", type=int, default=2_000, help="characters per generation")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", type=Path, default=None, help="folder for the catalog (reused when there) and caches")
    args = ap.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / "r1f-bench" / f"show-n{args.n}-c{args.chars}"
    work.mkdir(parents=True, exist_ok=True)
    catalog = work / "catalog"
    r1f, env = r1f_command(), child_env(work)
    if not (catalog / "catalog.duckdb").exists():
        build_catalog(catalog, args.n, args.chars, r1f, env)

    from catalogs import query
    from catalogs.store import Catalog

    cat = Catalog(catalog, create=False)
    ids = [row[0] for row in query.sql(cat, f"SELECT generation_id FROM generation_meta USING SAMPLE {args.runs} "
                                            "ROWS (reservoir, 7)")[1]]
    sql_calls = record(work, "sql", lambda: query.sql(Catalog(catalog, create=False), SQL_QUERY, limit=51))
    stats_calls = record(work, "stats", lambda: query.stats(Catalog(catalog, create=False)))
    at = ["--catalog", str(catalog)]
    py = sys.executable
    pairs: dict[str, tuple[Callable[[int], list[str]], Callable[[int], list[str]], str]] = {
        "show": (lambda i: [*r1f, "show", ids[i], *at], lambda i: [py, "-c", BARE_SHOW, str(catalog), ids[i]],
                 "the row and its text"),
        "sql": (lambda i: [*r1f, "sql", SQL_QUERY, *at], lambda i: [py, "-c", BARE_REPLAY, str(sql_calls)],
                "the same SQL"),
        "stats": (lambda i: [*r1f, "stats", *at], lambda i: [py, "-c", BARE_REPLAY, str(stats_calls)],
                  "the same SQL"),
        "--help": (lambda i: [*r1f, "--help"], lambda i: [py, "-c", "import duckdb"], 'python -c "import duckdb"'),
    }
    timer = Timer(env)
    for ours, bare, _ in pairs.values():  # warm up: bytecode, the help cache, the OS's file cache
        timer.run("warm-up", ours(0))
        timer.run("warm-up", bare(0))
    for i in range(args.runs):
        timer.run("start", [py, "-c", "pass"])
        for name, (ours, bare, _) in pairs.items():
            timer.run(name, ours(i))
            timer.run(f"bare {name}", bare(i))
    print(f"[read path] {args.n:,} generations, medians of {args.runs} interleaved runs; interpreter start "
          f"{1000 * timer.median('start'):.0f} ms; target: each ratio <= 1.30")
    for name, (_, _, what) in pairs.items():
        ours_ms, bare_ms = 1000 * timer.median(name), 1000 * timer.median(f"bare {name}")
        ours_cpu, bare_cpu = 1000 * timer.median(name, cpu=True), 1000 * timer.median(f"bare {name}", cpu=True)
        print(f"[{name}] r1f {ours_ms:.0f} ms · bare ({what}) {bare_ms:.0f} ms · ratio {ours_ms / bare_ms:.2f} "
              f"(CPU {ours_cpu:.0f} vs {bare_cpu:.0f} ms, ratio {ours_cpu / bare_cpu:.2f})", flush=True)


if __name__ == "__main__":
    main()
