"""Catalog benchmark: ingest rate against a bare DuckDB COPY, `r1f show` latency, and ingest peak memory.

    python benchmarks/bench_catalog.py --n 1000000        # the README's figures (about 20 GB of disk)
    python benchmarks/bench_catalog.py --n 50000          # a quick look

Synthetic generations of about 16k characters (like real long chains of thought) are written to one Parquet
file; then, in the same run:
  1. a bare `CREATE TABLE AS SELECT * FROM read_parquet(...)` into a fresh DuckDB file (the peer);
  2. `r1f ingest FILE --generations` of the same file into a fresh catalog, in a child process whose peak RSS
     is recorded; also at n/10 rows, to show peak memory does not grow with the input;
  3. `r1f show ID` on random generation ids: in-process (the command's work: open, query, read the shard,
     render) and as a whole command minus a bare interpreter start.
Prints medians and ratios; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

WORDS = ["let", "me", "check", "the", "derivative", "again", "so", "we", "get", "x", "equals", "three", "but", "wait", "that", "contradicts", "the", "earlier", "bound", "hence", "we", "try", "substituting", "back", "into", "the", "original", "equation", "and", "verify", "each", "case", "carefully", "then", "the", "sum", "of", "roots", "is", "therefore"]


def make_corpus(path: Path, n: int, text_chars: int = 16_000, seed: int = 0) -> int:
    """Write n generations to Parquet in batches; returns bytes of text."""
    rng = random.Random(seed)
    pool = []
    for _ in range(512):  # distinct bodies; each row also gets a unique header
        words: list[str] = []
        size = 0
        while size < text_chars:
            w = rng.choice(WORDS)
            words.append(w)
            size += len(w) + 1
        body = " ".join(words)
        pool.append("\n\n".join(body[i:i + 800] for i in range(0, len(body), 800)))
    schema = pa.schema([("problem", pa.string()), ("answer", pa.string()), ("response", pa.string()),
                        ("finish_reason", pa.string()), ("completion_tokens", pa.int64())])
    total = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as w:
        for start in range(0, n, 10_000):
            rows = range(start, min(n, start + 10_000))
            problems = [f"Problem {i % (n // 4 + 1)}: find x if 3x + {i % 97} = {3 * (i % 89) + i % 97}." for i in rows]
            responses = [f"<think>\nSample {i}. {pool[(i * 7919) % len(pool)]}\n</think>\n\nSo x = \\boxed{{{i % 89}}}."
                         for i in rows]
            total += sum(len(r) for r in responses)
            w.write_table(pa.table({"problem": problems, "answer": [str(i % 89) for i in rows],
                                    "response": responses, "finish_reason": ["stop"] * len(rows),
                                    "completion_tokens": [len(r) // 4 for r in responses]}, schema=schema))
    return total


def bare_copy(parquet: Path, work: Path) -> float:
    import duckdb

    db = work / "bare.duckdb"
    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE g AS SELECT * FROM read_parquet('{parquet}')")
        con.execute("CHECKPOINT")
    dt = time.perf_counter() - t0
    db.unlink()
    return dt


INGEST_CHILD = """
import json, sys, time
from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
t0 = time.perf_counter()
rep = ingest(Catalog(sys.argv[1]), sys.argv[2], IngestOptions(source="bench", generations=True, model="synthetic-r1"))
# VmHWM, not ru_maxrss: Linux carries a parent's ru_maxrss into a forked child, even across exec.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - t0, "added": rep.generations_added, "peak_rss_mb": peak / 1024}))
"""


def our_ingest(parquet: Path, catalog: Path) -> dict:
    shutil.rmtree(catalog, ignore_errors=True)
    out = subprocess.run([sys.executable, "-c", INGEST_CHILD, str(catalog), str(parquet)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def show_latency(catalog: Path, samples: int = 40) -> dict:
    import io

    from rich.console import Console

    from catalogs import Catalog, cli
    from catalogs.query import sql

    cat = Catalog(catalog, create=False)
    _, rows = sql(cat, f"SELECT generation_id FROM generation_meta USING SAMPLE {samples} ROWS (reservoir, 7)")
    ids = [r[0] for r in rows]
    cli.console = Console(file=io.StringIO(), width=120)  # render for real, into a buffer
    inproc = []
    for gid in ids:
        t0 = time.perf_counter()
        cli.show(gid, full=False, catalog=catalog, lock_timeout=60.0, as_json=False)
        inproc.append(time.perf_counter() - t0)
    whole, bare = [], []
    for gid in ids[:15]:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "r1f", "show", gid, "--catalog", str(catalog)], check=True,
                       capture_output=True)
        whole.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
    return {"in_process_ms": 1000 * statistics.median(inproc),
            "whole_command_ms": 1000 * statistics.median(whole),
            "interpreter_start_ms": 1000 * statistics.median(bare)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="generations in the large corpus")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--repeats", type=int, default=1, help="repeat the ingest/COPY pair; medians are printed")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="r1f-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        small_n = max(1000, args.n // 10)
        results = {}
        for n in (small_n, args.n):
            src = work / f"gens-{n}.parquet"
            t0 = time.perf_counter()
            chars = make_corpus(src, n)
            print(f"[corpus] {n} generations, {chars / 1e9:.2f} G chars of text, "
                  f"{src.stat().st_size / 1e9:.2f} GB Parquet ({time.perf_counter() - t0:.0f}s to write)", flush=True)
            copies, ours, peaks = [], [], []
            for _ in range(args.repeats):
                copies.append(bare_copy(src, work))
                r = our_ingest(src, work / "catalog")
                assert r["added"] == n, r
                ours.append(r["seconds"])
                peaks.append(r["peak_rss_mb"])
            results[n] = {"copy_s": statistics.median(copies), "ingest_s": statistics.median(ours),
                          "peak_rss_mb": max(peaks), "chars": chars}
            res = results[n]
            print(f"[ingest] n={n}: bare DuckDB COPY {n / res['copy_s']:,.0f} rows/s "
                  f"({chars / 1e6 / res['copy_s']:.0f} MB/s) · r1f ingest {n / res['ingest_s']:,.0f} rows/s "
                  f"({chars / 1e6 / res['ingest_s']:.0f} MB/s) · ratio {res['copy_s'] / res['ingest_s']:.2f} "
                  f"of COPY (target ≥ 0.25) · peak RSS {res['peak_rss_mb']:.0f} MB", flush=True)
            if n != args.n:
                if (work / "catalog").exists():
                    shutil.rmtree(work / "catalog")
            src.unlink()
        lat = show_latency(work / "catalog")
        print(f"[show]   at {args.n} generations: in-process median {lat['in_process_ms']:.1f} ms (target < 100) · "
              f"whole command {lat['whole_command_ms']:.0f} ms − interpreter start {lat['interpreter_start_ms']:.0f} ms "
              f"= {lat['whole_command_ms'] - lat['interpreter_start_ms']:.0f} ms", flush=True)
        small, big = results[small_n], results[args.n]
        print(f"[memory] ingest peak RSS {small['peak_rss_mb']:.0f} MB at {small_n} rows vs {big['peak_rss_mb']:.0f} MB "
              f"at {args.n} rows (×{big['peak_rss_mb'] / small['peak_rss_mb']:.2f} for ×{args.n / small_n:.0f} input)")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
