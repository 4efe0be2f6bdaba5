"""The user's curation path, end to end: `r1f ingest --generations`, then `r1f filter` with the paper's six filters.

    .venv/bin/python benchmarks/bench_filter_path.py [--n 20000] [--corpus traces|synthetic|both]
                                                     [--datatrove-docs 300] [--keep DIR]

Two corpora, both synthetic, each run the same way:
  - `traces`: chains of thought of about 16 KB shaped like real DeepSeek-R1 traces (long hedged paragraphs,
    LaTeX, Greek symbols, units, option lists, code, Chinese and French passages, loops, near-duplicates),
    stitched from public AIME solutions, MBPP code and alpaca answers (tests/filters/trace_corpus.py; the
    golden-decision test uses the same generator at a smaller size);
  - `synthetic`: English chains of thought of about 16 KB with planted defects (benchmarks/bench_filters.py's).
For each, in one run:
  1. `r1f ingest FILE --generations` into a fresh catalog (a subprocess; its wall time is printed);
  2. `r1f filter recipes/filters_r1.yaml` over that catalog, the whole command as a subprocess: MB/s of text
     wall, MB per CPU-second (the process tree's user+system time), and peak RSS (VmHWM of every process
     of the tree, polled), at n/4 and at n generations so that memory growth shows;
  3. the filter suite alone on the same texts, streamed from one Parquet file with no catalog
     (bench_filters.py's suite, in its own process): what the catalog path costs on top of the kernels;
  4. datatrove's LanguageFilter, GopherRepetitionFilter and MinHash dedup on a prefix of the same texts
     (bench_filters.run_datatrove), per CPU-second.
Then projects the filter command to 1M generations of 16 KB. Prints figures; asserts nothing.
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
from filters.base import split_think
from tests.filters.trace_corpus import iter_traces

RECIPE = ROOT / "recipes" / "filters_r1.yaml"
GOAL_MIN = 10.0  # issue 24: 1M chains of thought of 16 KB through `r1f filter` in under 10 minutes on 2 cores
R1F = [sys.executable, "-m", "r1f"]


def make_trace_corpus(n: int, path: Path, seed: int = 0) -> dict:
    """n real-trace-shaped generations (tests/filters/trace_corpus.py) to `path`, in row groups of 1000, with
    the columns of bench_filters.make_corpus (reasoning and answer split from the text as ingest does)."""
    writer: pq.ParquetWriter | None = None
    text_bytes, rows, chunk = 0, 0, []
    for row in iter_traces(2 * n, seed):  # the rows of iter_traces(n), then more: n of them with text
        if row["planted"] == "empty":  # ingest refuses an empty response; the filters' own tests have them
            continue
        chunk.append(row)
        if len(chunk) == 1000 or rows + len(chunk) == n:
            df = pl.DataFrame(chunk, schema_overrides={"dup_of": pl.String, "near_jaccard": pl.Float64})
            reasoning, answer = split_think(pl.col("text"))
            table = df.with_columns(reasoning.alias("reasoning"), answer.alias("answer")).to_arrow()
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            text_bytes += int(df["text"].str.len_bytes().sum())
            rows += len(chunk)
            chunk = []
            if rows == n:
                break
    if writer is not None:
        writer.close()
    return {"rows": rows, "text_mb": text_bytes / 1e6}


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


def run_command(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> dict:
    """Run a command; its wall time, the tree's CPU seconds and peak RSS (the largest process, and the sum)."""
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:  # files: a pipe could fill
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True, env=env, cwd=cwd)
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


def filter_path(corpus: Path, n: int, work: Path, tag: str, keep_ingested: bool = False) -> dict:
    src = work / f"gens_{tag}.parquet"
    mb = ingest_file(corpus, src, n)
    cat = work / f"catalog_{tag}"
    shutil.rmtree(cat, ignore_errors=True)
    ing = run_command([*R1F, "ingest", str(src), "--generations", "--model", "synthetic-r1", "--source", "bench",
                       "--catalog", str(cat), "--json"])
    if keep_ingested:  # a copy before any filter ran, for the before/after runs
        shutil.copytree(cat, work / f"catalog_{tag}_ingested")
    flt = run_command([*R1F, "filter", str(RECIPE), "--catalog", str(cat), "--json"])
    summary = json.loads(flt["stdout"])
    return {"rows": n, "text_mb": mb, "ingest": ing, "filter": flt, "summary": summary, "catalog": cat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="generations in each corpus")
    ap.add_argument("--corpus", choices=["traces", "synthetic", "both"], default="both",
                    help="traces: real-trace-shaped; synthetic: bench_filters.py's corpus")
    ap.add_argument("--datatrove-docs", type=int, default=300, help="corpus prefix datatrove runs on (0: skip)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp dir, removed)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a checkout of other code (e.g. `git worktree add /tmp/base main`): its `r1f filter` runs "
                         "on copies of the same catalog, alternating with this code's, --repeat times each")
    ap.add_argument("--repeat", type=int, default=3, help="before/after runs of each (with --baseline)")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="bench_filter_path_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("traces", "synthetic") if a.corpus == "both" else (a.corpus,):
            run_corpus(name, a.n, a.datatrove_docs, work / name, a.baseline, a.repeat)
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def before_after(catalogs: dict[float, Path], baseline: Path, repeat: int, work: Path) -> None:
    """`r1f filter` of `baseline`'s code and of this code, alternating on fresh copies of ingested catalogs of two
    sizes ({MB of text: catalog}): medians of CPU-seconds per MB, MB/s wall, and the marginal CPU per MB (the
    slope between the sizes: what a large corpus costs once imports, model loads and worker starts are paid),
    with their ratios (a noisy machine moves both codes alike)."""
    cpu: dict[tuple[str, float], list[float]] = {}
    wall: dict[tuple[str, float], list[float]] = {}
    peak: dict[tuple[str, float], list[tuple[float, float]]] = {}  # (main, largest worker) MB
    for _ in range(repeat):
        for mb, catalog in catalogs.items():
            for tag, code in (("before", baseline.resolve()), ("after", ROOT)):
                cat = work / f"catalog_{tag}"
                shutil.rmtree(cat, ignore_errors=True)
                shutil.copytree(catalog, cat)
                env = dict(os.environ, PYTHONPATH=str(code))
                # in the code's own folder: `python -m` puts the working folder before PYTHONPATH on sys.path, so
                # from this checkout both runs would import this code
                r = run_command([sys.executable, "-m", "r1f", "filter", str(RECIPE), "--catalog", str(cat.resolve()),
                                 "--json"], env=env, cwd=code)
                cpu.setdefault((tag, mb), []).append(r["cpu_s"])
                wall.setdefault((tag, mb), []).append(r["wall_s"])
                peak.setdefault((tag, mb), []).append((r["peak_main_mb"], r["peak_worker_mb"]))
                shutil.rmtree(cat, ignore_errors=True)

    def med(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    def minutes(slope: float) -> float:  # 1M x 16 KB on 2 fully used cores at `slope` CPU-ms per MB
        return 16e3 * slope / 1000 / 60 / 2

    small, big = sorted(catalogs)
    print(f"\n== before/after, `r1f filter` on copies of the same catalogs ({small:.0f} and {big:.0f} MB), "
          f"{repeat} alternating runs each, medians (the range over the runs in brackets: run i's marginal rate "
          f"pairs its two sizes, the ratio its two codes)")
    fig: dict[str, tuple[float, float, float]] = {}
    slopes: dict[str, list[float]] = {}
    for tag, code in (("before", baseline.resolve()), ("after", ROOT)):
        c_small, c_big = med(cpu[(tag, small)]), med(cpu[(tag, big)])
        slope = 1000 * (c_big - c_small) / (big - small)  # CPU-ms per MB, fixed costs cancelled
        slopes[tag] = [1000 * (cb - cs) / (big - small) for cs, cb in zip(cpu[(tag, small)], cpu[(tag, big)])]
        fixed = c_big - slope * big / 1000
        fig[tag] = (1000 * c_big / big, big / med(wall[(tag, big)]), slope)
        print(f"{tag:<7} ({code}): {big:.0f} MB: {fig[tag][0]:4.0f} CPU-ms per MB, {fig[tag][1]:5.1f} MB/s wall; "
              f"marginal {slope:4.0f} CPU-ms per MB ({1000 / slope:.1f} MB per CPU-second) + {fixed:.1f} CPU-s fixed; "
              f"1M x 16 KB at the marginal rate: {16e3 * slope / 1000 / 60:.1f} CPU-minutes, "
              f"{minutes(slope):.1f} min on 2 fully used cores [{minutes(min(slopes[tag])):.1f} to "
              f"{minutes(max(slopes[tag])):.1f}]")
        print(f"{'':<8}peak RSS (VmHWM), medians: " + "; ".join(
            f"{mb:.0f} MB: main {med([p[0] for p in peak[(tag, mb)]]):.0f} MB, largest worker "
            f"{med([p[1] for p in peak[(tag, mb)]]):.0f} MB" for mb in (small, big)))
    b, a = fig["before"], fig["after"]
    per_run = [x / y for x, y in zip(cpu[("after", big)], cpu[("before", big)])]
    print(f"after/before: CPU per MB x{a[0] / b[0]:.2f} [x{min(per_run):.2f} to x{max(per_run):.2f}], MB/s wall "
          f"x{a[1] / b[1]:.2f}, marginal CPU per MB x{a[2] / b[2]:.2f}")


def run_corpus(name: str, n: int, datatrove_docs: int, work: Path, baseline: Path | None = None,
               repeat: int = 3) -> None:
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.parquet"
    t = time.perf_counter()
    info = (make_trace_corpus if name == "traces" else bench_filters.make_corpus)(n, corpus)
    label = ("real-trace-shaped, synthetic (tests/filters/trace_corpus.py)" if name == "traces"
             else "synthetic (bench_filters.make_corpus)")
    print(f"\n######## corpus {name}: {label}\n"
          f"{info['rows']} generations, {info['text_mb']:.0f} MB of text ({time.perf_counter() - t:.0f} s "
          f"to make); machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (other "
          f"work on the machine slows wall figures; per-CPU-second figures are steadier)", flush=True)

    small = filter_path(corpus, max(1000, n // 4), work, "small")
    shutil.rmtree(small["catalog"], ignore_errors=True)
    half = filter_path(corpus, n // 2, work, "half", keep_ingested=True) if baseline is not None else None
    full = filter_path(corpus, n, work, "full", keep_ingested=baseline is not None)
    f, ing, mb = full["filter"], full["ingest"], full["text_mb"]
    print(f"\n== r1f ingest --generations: {full['rows']} generations, {mb:.0f} MB in {ing['wall_s']:.1f} s wall "
          f"({mb / ing['wall_s']:.1f} MB/s), peak RSS {ing['peak_main_mb']:.0f} MB")
    print(f"== r1f filter {RECIPE.relative_to(ROOT)} (six filters), the whole command, {f['processes']} process(es)")
    print(f"wall {f['wall_s']:.1f} s: {mb / f['wall_s']:.1f} MB/s wall; CPU {f['cpu_s']:.1f} s: "
          f"{mb / f['cpu_s']:.1f} MB per CPU-second ({1000 * f['cpu_s'] / mb:.0f} CPU-ms per MB)")
    print(f"projected for 1M generations of 16 KB (16 GB): {16e3 / (mb / f['wall_s']) / 60:.1f} min at this wall "
          f"rate; {16e3 / (2 * mb / f['cpu_s']) / 60:.1f} min on 2 fully used cores (goal: under {GOAL_MIN:g} min, "
          f"{16e3 / GOAL_MIN / 60:.1f} MB/s)")
    s = small["filter"]
    print(f"peak RSS (VmHWM): {small['rows']} generations: main {s['peak_main_mb']:.0f} MB, largest worker "
          f"{s['peak_worker_mb']:.0f} MB, tree {s['peak_sum_mb']:.0f} MB; {full['rows']} generations: main "
          f"{f['peak_main_mb']:.0f} MB, largest worker {f['peak_worker_mb']:.0f} MB, tree {f['peak_sum_mb']:.0f} MB")
    print("decisions:", ", ".join(f"{k} {v['decided']} ({v['decided'] - v['passed']} dropped)"
                                  for k, v in full["summary"].items()))
    rerun = run_command([*R1F, "filter", str(RECIPE), "--catalog", str(full["catalog"]), "--json"])
    print(f"rerun over the same catalog (nothing new to decide; no text is read): {rerun['wall_s']:.1f} s wall")
    if half is not None and baseline is not None:
        shutil.rmtree(half["catalog"], ignore_errors=True)
        before_after({half["text_mb"]: work / "catalog_half_ingested", mb: work / "catalog_full_ingested"},
                     baseline, repeat, work)

    # The filter suite alone on the same texts: no catalog, no ingest, read straight from Parquet.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    suite = run_command([sys.executable, str(ROOT / "benchmarks/bench_filters.py"), "--run-suite", str(corpus),
                         "--limit", str(n), "--batch", "500", "--workers", "2",
                         "--decisions", str(work / "suite_decisions.parquet")], env=env)
    r = json.loads(suite["stdout"].strip().splitlines()[-1])
    print("\n== the filter suite alone (bench_filters.py: 7 filters, dedup over text and problem), same texts "
          "from one Parquet file, 2 workers")
    print(f"wall {r['wall_s']:.1f} s: {r['text_mb'] / r['wall_s']:.1f} MB/s wall; {r['text_mb'] / r['cpu_s']:.1f} MB "
          f"per CPU-second; peak RSS main {suite['peak_main_mb']:.0f} MB, largest worker "
          f"{suite['peak_worker_mb']:.0f} MB")
    print(f"ratio, r1f filter / suite alone: {(mb / f['wall_s']) / (r['text_mb'] / r['wall_s']):.2f} wall, "
          f"{(mb / f['cpu_s']) / (r['text_mb'] / r['cpu_s']):.2f} per CPU-second")

    if datatrove_docs > 0:
        try:
            import datatrove  # noqa: F401
        except ImportError:
            print("\ndatatrove is not installed (pip install -e '.[bench]'): peer comparison skipped")
            return
        os.environ.setdefault("TQDM_DISABLE", "1")  # datatrove's progress bars
        dt = bench_filters.run_datatrove(corpus, datatrove_docs, work / "datatrove")
        total = sum(dt[k] for k in ("LanguageFilter", "GopherRepetitionFilter", "MinHash dedup"))
        print(f"\n== datatrove, same corpus (first {dt['docs']} generations, {dt['text_mb']:.1f} MB), one process")
        for k in ("LanguageFilter", "GopherRepetitionFilter", "MinHash dedup"):
            print(f"{k:<24} {dt['text_mb'] / dt[k]:7.2f} MB per CPU-second")
        print(f"{'all three':<24} {dt['text_mb'] / total:7.2f} MB per CPU-second")
        print(f"ratio, r1f filter (6 filters, whole command) / datatrove (3 filters), per CPU-second: "
              f"{(mb / f['cpu_s']) / (dt['text_mb'] / total):.1f}x")


if __name__ == "__main__":
    main()
