"""`r1f show ID` as a whole process, against a bare `python -c "import duckdb; …"` doing the same lookup.

    python benchmarks/bench_show.py --n 1000000      # the README's figure (1M generations of ~2k characters)
    python benchmarks/bench_show.py --n 50000        # a quick look

Both sides run as fresh processes, alternately, on the same random generation ids: the bare script opens
the catalog's DuckDB file read-only, reads the generation's row and its text from its Parquet shard, and
prints them; `r1f show` does that plus the prompt, run, verdicts, filter decisions and releases, and renders
them. Also times `r1f --help`, `r1f sql` and `r1f stats`. Prints medians of 20 and the ratio; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_catalog import make_corpus  # noqa: E402  (the same synthetic generations as the catalog benchmark)

R1F = str(Path(sys.executable).with_name("r1f"))

BARE = """
import sys, duckdb
db, gid = sys.argv[1], sys.argv[2]
con = duckdb.connect(db + "/catalog.duckdb", read_only=True)
row = con.execute("SELECT * FROM generation_meta WHERE generation_id = ?", [gid]).fetchone()
shard = con.execute("SELECT shard, shard_row FROM generation_meta WHERE generation_id = ?", [gid]).fetchone()
text = con.execute(f"SELECT text FROM read_parquet('{db}/shards/{shard[0]}') WHERE generation_id = ?",
                   [gid]).fetchone()
print(row, text[0][:600])
"""


CPU: dict[str, list[float]] = {}


def timed(cmd: list[str], key: str = "") -> float:
    """Wall seconds of one fresh process; its CPU seconds (user + system) go to CPU[key], a steadier
    figure than wall time on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "120"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(key, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="generations in the catalog")
    ap.add_argument("--chars", type=int, default=2_000, help="characters per generation")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder; an existing catalog there is reused")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="r1f-bench-show-"))
    work.mkdir(parents=True, exist_ok=True)
    catalog = work / "catalog"
    try:
        if not (catalog / "catalog.duckdb").exists():
            src = work / "gens.parquet"
            make_corpus(src, args.n, text_chars=args.chars)
            t0 = time.perf_counter()
            subprocess.run([R1F, "ingest", str(src), "--generations", "--model", "bench", "--source", "bench",
                            "--catalog", str(catalog)], check=True, stdout=subprocess.DEVNULL)
            print(f"[catalog] {args.n:,} generations ingested in {time.perf_counter() - t0:.0f}s", flush=True)
            src.unlink()
        ids = subprocess.run([R1F, "sql", f"SELECT generation_id FROM generation_meta USING SAMPLE {args.runs} "
                              "ROWS (reservoir, 7)", "--csv", "--catalog", str(catalog)], check=True,
                             capture_output=True, text=True).stdout.split()[1:]
        ours, bare = [], []
        for gid in ids:  # alternate, so that load on a shared machine hits both sides alike
            ours.append(timed([R1F, "show", gid, "--catalog", str(catalog)], "show"))
            bare.append(timed([sys.executable, "-c", BARE, str(catalog), gid], "bare"))
        start = [timed([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
        others = {name: statistics.median(timed([R1F, *cmd, "--catalog", str(catalog)] if cmd[0] != "--help"
                                                 else [R1F, *cmd]) for _ in range(max(5, args.runs // 4)))
                  for name, cmd in (("--help", ["--help"]), ("sql", ["sql", "SELECT count(*) FROM verdicts"]),
                                    ("stats", ["stats"]))}
        m_ours, m_bare = statistics.median(ours), statistics.median(bare)
        print(f"[show] at {args.n:,} generations, median of {len(ids)}: r1f show {1000 * m_ours:.0f} ms · bare "
              f"duckdb lookup {1000 * m_bare:.0f} ms · ratio {m_ours / m_bare:.2f} · interpreter start "
              f"{1000 * statistics.median(start):.0f} ms (target: r1f show < 150 ms)")
        c_ours, c_bare = statistics.median(CPU["show"]), statistics.median(CPU["bare"])
        print(f"[show] CPU time (user + system), medians: r1f show {1000 * c_ours:.0f} ms · bare {1000 * c_bare:.0f} ms"
              f" · ratio {c_ours / c_bare:.2f}")
        print("[other] " + " · ".join(f"r1f {k} {1000 * v:.0f} ms" for k, v in others.items()))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
