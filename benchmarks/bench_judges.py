"""Judge throughput figures (prints them; no asserts).

- Math verification: N (prediction, gold) pairs built from real answers (DeepScaleR's MATH train
  answers, or the few rows in tests/judges/data when ../shared is absent), on `--workers` cores.
- Cached re-judging: `r1f judge` (math_accuracy) over a catalog of `--cache-n` generations, then the same
  recipe again: the second pass finds every verdict cached; prints both times and the ratio (target >= 50x).
- Sandbox: tests per second for short stdin/stdout programs, isolated (prlimit + bwrap) against the
  same programs run as a bare `python3` subprocess, and the ratio.

    .venv/bin/python benchmarks/bench_judges.py --n 100000
    .venv/bin/python benchmarks/bench_judges.py --n 5000 --sandbox-n 200   # quick
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalogs.records import Sample
from judges.code import judge_many as code_judge_many
from judges.math_accuracy import judge_many as math_judge_many
from judges.sandbox import Limits, isolation_available, run_python


def gold_answers() -> list[str]:
    shared = ROOT.parent / "shared" / "data" / "math" / "train_math.json"
    if shared.exists():
        return [r["answer"] for r in json.loads(shared.read_text())]
    local = ROOT / "tests" / "judges" / "data"
    rows = json.loads((local / "math_rows.json").read_text())
    rows += [json.loads(line) for line in (local / "math500_rows.jsonl").read_text().splitlines()]
    return [r["answer"] for r in rows]


def math_pairs(n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    golds = gold_answers()
    out = []
    for i in range(n):
        gold = golds[i % len(golds)]
        pred = gold if rng.random() < 0.5 else rng.choice(golds)  # half right, half another row's answer
        out.append(Sample(generation_id=str(i), reference=gold,
                          answer=f"So the final answer is $\\boxed{{{pred}}}$."))
    return out


def bench_math(n: int, workers: int, timeout_s: float) -> None:
    samples = math_pairs(n)
    t = time.perf_counter()
    verdicts = math_judge_many(samples, workers=workers, timeout_s=timeout_s, min_batch_for_pool=0)
    dt = time.perf_counter() - t
    reasons: dict[str, int] = {}
    for v in verdicts:
        reasons[v.reason] = reasons.get(v.reason, 0) + 1
    print(f"math_accuracy: {n} pairs on {workers} workers in {dt:.1f} s = {n / dt:,.0f} pairs/s "
          f"(pool start included); reasons {dict(sorted(reasons.items()))}")


PROGRAM = "a, b = map(int, input().split())\nprint(a + b)\n"


def bench_sandbox(n: int, workers: int) -> None:
    iso = isolation_available()
    if iso is None:
        print("sandbox: no isolation tool on this machine; skipped")
        return
    limits = Limits(cpu_s=2, wall_s=10.0)
    tests = json.dumps([{"input": "2 3", "output": "5"}])
    samples = [Sample(answer=f"```python\n{PROGRAM}```", tests=tests) for _ in range(n)]

    t = time.perf_counter()
    verdicts = code_judge_many(samples, workers=workers, limits=limits)
    iso_dt = time.perf_counter() - t
    assert all(v.passed for v in verdicts), verdicts[:3]

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        bare = list(pool.map(lambda _: run_python(PROGRAM, "2 3", limits, isolation="none"), range(n)))
    bare_dt = time.perf_counter() - t
    assert all(r.stdout.strip() == "5" for r in bare)

    iso_rate, bare_rate = n / iso_dt, n / bare_dt
    print(f"sandbox ({iso}, prlimit + setpriv + unshare-pid): {n} tests on {workers} threads, "
          f"{iso_rate:.1f} tests/s ({1000 * iso_dt / n * workers:.1f} ms per test per worker)")
    print(f"bare python3 subprocess:                  {n} runs on {workers} threads, {bare_rate:.1f} runs/s "
          f"({1000 * bare_dt / n * workers:.1f} ms per run per worker)")
    print(f"isolation cost: isolated/bare throughput = {iso_rate / bare_rate:.2f} "
          f"(time per test x{iso_dt / bare_dt:.2f})")


def bench_cache(n: int, workers: int) -> None:
    import tempfile

    from catalogs import Catalog
    from catalogs.ingest import IngestOptions, ingest
    from judges.run import JudgeRecipe, JudgeStep, judge_catalog

    work = Path(tempfile.mkdtemp(prefix="r1f-bench-cache-"))
    rows = math_pairs(n)
    path = work / "gens.jsonl"
    path.write_text("".join(json.dumps({"problem": f"Problem {s.generation_id}", "answer": s.reference,
                                        "response": f"<think>\nWorking.\n</think>\n\n{s.answer}"}) + "\n"
                            for s in rows))
    cat = Catalog(work / "catalog")
    ingest(cat, path, IngestOptions(source="bench", generations=True, model="m"))
    recipe = JudgeRecipe(judges=[JudgeStep(name="math_accuracy")], workers=workers)
    t = time.perf_counter()
    first = judge_catalog(cat, recipe)["math_accuracy"]["judged"]
    t1 = time.perf_counter() - t
    t = time.perf_counter()
    second = judge_catalog(cat, recipe)["math_accuracy"]["judged"]
    t2 = time.perf_counter() - t
    print(f"[cache] r1f judge over {n} generations: first pass {t1:.1f}s ({first} judged), second pass {t2:.2f}s "
          f"({second} judged, all cached): {t1 / t2:.0f}x faster (target >= 50x)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="math (prediction, gold) pairs")
    ap.add_argument("--sandbox-n", type=int, default=500, help="sandbox test runs")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--timeout-s", type=float, default=5.0, help="per-sample math time limit")
    ap.add_argument("--skip-math", action="store_true")
    ap.add_argument("--skip-sandbox", action="store_true")
    ap.add_argument("--cache-n", type=int, default=20_000, help="generations for the cached re-judging figure")
    args = ap.parse_args()
    if not args.skip_math:
        bench_math(args.n, args.workers, args.timeout_s)
    if not args.skip_sandbox:
        bench_sandbox(args.sandbox_n, args.workers)
    if args.cache_n:
        bench_cache(args.cache_n, args.workers)


if __name__ == "__main__":
    main()
