"""The user's curation path, end to end: `r1f ingest --generations`, then `r1f filter` with the paper's six filters.

    .venv/bin/python benchmarks/bench_filter_path.py [--n 20000] [--datatrove-docs 300] [--keep DIR]

In one run, on one synthetic corpus (English chains of thought of about 16 KB with planted defects: the corpus
of benchmarks/bench_filters.py):
  1. `r1f ingest FILE --generations` into a fresh catalog (a subprocess; its wall time is printed);
  2. `r1f filter recipes/filters_r1.yaml` over that catalog, the whole command as a subprocess: MB/s of text
     wall, MB per CPU-second (the process tree's user+system time), and peak RSS (VmHWM of every process
     of the tree, polled), at n/4 and at n generations so that memory growth shows;
  3. the filter suite alone on the same texts, streamed from one Parquet file with no catalog
     (bench_filters.py's suite, in its own process): what the catalog path costs on top of the kernels;
  4. datatrove's LanguageFilter, GopherRepetitionFilter and MinHash dedup on a prefix of the same texts
     (bench_filters.run_datatrove), per CPU-second.
Then projects the filter command to 1M generations. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_filters

RECIPE = ROOT / "recipes" / "filters_r1.yaml"
R1F = [sys.executable, "-m", "r1f"]


def ingest_file(corpus: Path, out: Path, limit: int) -> float:
    """The corpus as a user's --generations file: problem + response (+ finish_reason, language, kind, domain).

    The corpus' own `reasoning`/`answer` columns are dropped: ingest splits the response itself, and would
    take `answer` for the prompt's reference answer."""
    pf = pq.ParquetFile(corpus)
    writer: pq.ParquetWriter | None = None
    mb, rows = 0.0, 0
    for g in range(pf.num_row_groups):
        if rows >= limit:
            break
        df = pl.from_arrow(pf.read_row_group(g, columns=["problem", "text", "finish_reason", "language", "kind",
                                                          "domain"]))
        assert isinstance(df, pl.DataFrame)
        df = df.head(limit - rows).rename({"text": "response"})
        rows += df.height
        mb += int(df["response"].str.len_bytes().sum()) / 1e6
        table = df.to_arrow()
        writer = writer or pq.ParquetWriter(out, table.schema, compression="zstd")
        writer.write_table(table)
    if writer is not None:
        writer.close()
    return mb


class TreeWatch:
    """Polls a process and its descendants: peak VmHWM per pid and their CPU time (user+system)."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peak_kb: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
                t = p.cpu_times()
                self.peak_kb[p.pid] = max(self.peak_kb.get(p.pid, 0), hwm)
                self.cpu[p.pid] = max(self.cpu.get(p.pid, 0.0), t.user + t.system)
            except (OSError, StopIteration, psutil.Error):
                continue

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_command(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run a command; its wall time, the tree's CPU seconds and peak RSS (the largest process, and the sum)."""
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:  # files: a pipe could fill
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True, env=env)
        watch = TreeWatch(proc.pid)
        # wait4: the child's exact CPU time, which includes its children it waited for
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        watch.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    root_kb = watch.peak_kb.pop(proc.pid, 0)
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "stdout": out,
            "peak_main_mb": root_kb / 1024, "peak_worker_mb": max(watch.peak_kb.values(), default=0) / 1024,
            "peak_sum_mb": (root_kb + sum(watch.peak_kb.values())) / 1024, "processes": 1 + len(watch.peak_kb)}


def filter_path(corpus: Path, n: int, work: Path, tag: str) -> dict:
    src = work / f"gens_{tag}.parquet"
    mb = ingest_file(corpus, src, n)
    cat = work / f"catalog_{tag}"
    shutil.rmtree(cat, ignore_errors=True)
    ing = run_command([*R1F, "ingest", str(src), "--generations", "--model", "synthetic-r1", "--source", "bench",
                       "--catalog", str(cat), "--json"])
    flt = run_command([*R1F, "filter", str(RECIPE), "--catalog", str(cat), "--json"])
    summary = json.loads(flt["stdout"])
    return {"rows": n, "text_mb": mb, "ingest": ing, "filter": flt, "summary": summary, "catalog": cat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="generations in the corpus")
    ap.add_argument("--datatrove-docs", type=int, default=300, help="corpus prefix datatrove runs on (0: skip)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp dir, removed)")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="bench_filter_path_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        corpus = work / "corpus.parquet"
        t = time.perf_counter()
        info = bench_filters.make_corpus(a.n, corpus)
        print(f"corpus: {info['rows']} generations, {info['text_mb']:.0f} MB of text ({time.perf_counter() - t:.0f} s "
              f"to make); machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (other "
              f"work on the machine slows wall figures; per-CPU-second figures are steadier)", flush=True)

        small = filter_path(corpus, max(1000, a.n // 4), work, "small")
        shutil.rmtree(small["catalog"], ignore_errors=True)
        full = filter_path(corpus, a.n, work, "full")
        f, ing, mb = full["filter"], full["ingest"], full["text_mb"]
        print(f"\n== r1f ingest --generations: {full['rows']} generations, {mb:.0f} MB in {ing['wall_s']:.1f} s wall "
              f"({mb / ing['wall_s']:.1f} MB/s), peak RSS {ing['peak_main_mb']:.0f} MB")
        print(f"== r1f filter {RECIPE.relative_to(ROOT)} (six filters), the whole command, {f['processes']} process(es)")
        print(f"wall {f['wall_s']:.1f} s: {mb / f['wall_s']:.1f} MB/s wall; CPU {f['cpu_s']:.1f} s: "
              f"{mb / f['cpu_s']:.1f} MB per CPU-second")
        per_gen = mb / full["rows"]
        print(f"projected for 1M generations of {per_gen * 1e3:.1f} KB: {1e6 * per_gen / (mb / f['wall_s']) / 60:.1f} min "
              f"at this wall rate; {1e6 * per_gen / (2 * mb / f['cpu_s']) / 60:.1f} min on 2 fully used cores "
              f"(goal: under 15 min)")
        s = small["filter"]
        print(f"peak RSS (VmHWM): {small['rows']} generations: main {s['peak_main_mb']:.0f} MB, largest worker "
              f"{s['peak_worker_mb']:.0f} MB, tree {s['peak_sum_mb']:.0f} MB; {full['rows']} generations: main "
              f"{f['peak_main_mb']:.0f} MB, largest worker {f['peak_worker_mb']:.0f} MB, tree {f['peak_sum_mb']:.0f} MB")
        print("decisions:", ", ".join(f"{k} {v['decided']} ({v['decided'] - v['passed']} dropped)"
                                      for k, v in full["summary"].items()))
        rerun = run_command([*R1F, "filter", str(RECIPE), "--catalog", str(full["catalog"]), "--json"])
        print(f"rerun over the same catalog (nothing new to decide; no text is read): {rerun['wall_s']:.1f} s wall")

        # The filter suite alone on the same texts: no catalog, no ingest, read straight from Parquet.
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
        suite = run_command([sys.executable, str(ROOT / "benchmarks/bench_filters.py"), "--run-suite", str(corpus),
                             "--limit", str(a.n), "--batch", "500", "--workers", "2",
                             "--decisions", str(work / "suite_decisions.parquet")], env=env)
        r = json.loads(suite["stdout"].strip().splitlines()[-1])
        print("\n== the filter suite alone (bench_filters.py: 7 filters, dedup over text and problem), same texts "
              "from one Parquet file, 2 workers")
        print(f"wall {r['wall_s']:.1f} s: {r['text_mb'] / r['wall_s']:.1f} MB/s wall; {r['text_mb'] / r['cpu_s']:.1f} MB "
              f"per CPU-second; peak RSS main {suite['peak_main_mb']:.0f} MB, largest worker "
              f"{suite['peak_worker_mb']:.0f} MB")
        print(f"ratio, r1f filter / suite alone: {(mb / f['wall_s']) / (r['text_mb'] / r['wall_s']):.2f} wall, "
              f"{(mb / f['cpu_s']) / (r['text_mb'] / r['cpu_s']):.2f} per CPU-second")

        if a.datatrove_docs > 0:
            try:
                import datatrove  # noqa: F401
            except ImportError:
                print("\ndatatrove is not installed (pip install -e '.[bench]'): peer comparison skipped")
                return
            os.environ.setdefault("TQDM_DISABLE", "1")  # datatrove's progress bars
            dt = bench_filters.run_datatrove(corpus, a.datatrove_docs, work / "datatrove")
            total = sum(dt[k] for k in ("LanguageFilter", "GopherRepetitionFilter", "MinHash dedup"))
            print(f"\n== datatrove, same corpus (first {dt['docs']} generations, {dt['text_mb']:.1f} MB), one process")
            for k in ("LanguageFilter", "GopherRepetitionFilter", "MinHash dedup"):
                print(f"{k:<24} {dt['text_mb'] / dt[k]:7.2f} MB per CPU-second")
            print(f"{'all three':<24} {dt['text_mb'] / total:7.2f} MB per CPU-second")
            print(f"ratio, r1f filter (6 filters, whole command) / datatrove (3 filters), per CPU-second: "
                  f"{(mb / f['cpu_s']) / (dt['text_mb'] / total):.1f}x")
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
