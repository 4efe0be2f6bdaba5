"""A stage's read against the catalog's size: the same number of batches read from catalogs of n/8 and n prompts.

    .venv/bin/python benchmarks/bench_read_scale.py [--n 1000000] [--batches 80] [--baseline DIR] [--repeat 2]

Every stage (judge, filter, rewrite) reads generations with their prompt's fields through
`Catalog.iter_samples`, a chunk of 4,096 rows at a time. A read whose cost per chunk grows with the catalog
makes a large corpus quadratic in time, and its memory grows with the corpus. This builds two catalogs (n/8
and n generations, one MATH-500-sized prompt each, short synthetic responses: what matters here is the row
count, not the text), then reads the first `--batches` batches of 1,000 (`text_parts=False`, as the filter
command reads) in a fresh process per run: CPU seconds and peak RSS (VmHWM), medians over `--repeat` runs.
With `--baseline` (a checkout of other code) its read runs on the same catalogs, alternating. Flat means the
same figures at both sizes. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]

READ = """
import json, sys, time
from catalogs.store import Catalog
cat, batches = Catalog(sys.argv[1]), int(sys.argv[2])
c0, t0, rows = time.process_time(), time.perf_counter(), 0
for i, batch in enumerate(cat.iter_samples(batch_rows=1000, text_parts=False)):
    rows += batch.height
    if i + 1 >= batches:
        break
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0, "rows": rows,
                  "peak_mb": hwm / 1024}))
"""


def make_catalog(n: int, work: Path) -> Path:
    """n generations, each with its own prompt (MATH-500 problems of r1f/demo_data, ~170 characters, numbered),
    ingested by `r1f ingest --generations` as a user would."""
    src = work / f"gens_{n}.parquet"
    bench = pl.read_ndjson(ROOT / "r1f" / "demo_data" / "math500_100.jsonl")
    i = pl.Series("i", range(n))
    problems = bench["problem"].gather(i % bench.height)
    pl.DataFrame({
        "problem": problems + " (#" + i.cast(pl.String) + ")",
        "answer": bench["answer"].gather(i % bench.height),
        "response": ("<think>\nLet f(k) count the cases for k. " * 6 + "So the count for "
                     + i.cast(pl.String) + " follows.\n</think>\nThe answer is f(" + i.cast(pl.String) + ")."),
        "kind": ["reasoning"] * n, "domain": ["math"] * n,
    }).write_parquet(src, compression="zstd")
    cat = work / f"catalog_{n}"
    shutil.rmtree(cat, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "r1f", "ingest", str(src), "--generations", "--model", "synthetic",
                    "--source", "bench", "--catalog", str(cat), "--json"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return cat


def read_once(code: Path, catalog: Path, batches: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code))
    # in the code's own folder: `python -c` puts the working folder first on sys.path
    out = subprocess.run([sys.executable, "-c", READ, str(catalog), str(batches)], env=env, cwd=code,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="generations (and prompts) in the large catalog")
    ap.add_argument("--batches", type=int, default=80, help="batches of 1,000 read per run")
    ap.add_argument("--baseline", type=Path, default=None, help="a checkout of other code to read alike")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp dir, removed)")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="bench_read_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sizes = [a.n // 8, a.n]
        catalogs = {n: make_catalog(n, work) for n in sizes}
        codes = {"this": ROOT} | ({"baseline": a.baseline.resolve()} if a.baseline else {})
        runs: dict[tuple[str, int], list[dict]] = {}
        for _ in range(a.repeat):
            for n in sizes:
                for tag, code in codes.items():
                    runs.setdefault((tag, n), []).append(read_once(code, catalogs[n], a.batches))
        print(f"== {a.batches} batches of 1,000 read by iter_samples (text_parts=False), medians of {a.repeat} "
              f"fresh processes; machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        for tag in codes:
            for n in sizes:
                rs = runs[(tag, n)]
                print(f"{tag:>8}, catalog of {n:>9,} prompts: CPU {statistics.median(r['cpu_s'] for r in rs):5.2f} s, "
                      f"wall {statistics.median(r['wall_s'] for r in rs):5.2f} s, peak RSS "
                      f"{statistics.median(r['peak_mb'] for r in rs):5.0f} MB ({rs[0]['rows']:,} rows)")
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
