"""Does the same seed give the same Mini-R1 run? `r1f demo` twice, each in a fresh folder, compared stage by stage.

For each pair of runs it prints: each model's weights (SHA-256 of its safetensors), each run's samples (generation
ids, seeds and texts, per model and kind), each release's members, and each summary row; then `ALL SAME` or the
number of differences. Release manifests name their folder (the selection names the models by path), so the members,
not the manifest's hash, are compared.

    python benchmarks/bench_repeat.py [--threads 1 2] [--full] [--seed 0] [--keep DIR]
    python benchmarks/bench_repeat.py --compare OUT_A OUT_B

`--quick` sizes by default (about 8 minutes a run on a busy 2-core machine); `--full` is `make demo`'s.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from catalogs import Catalog


def weights(out: Path) -> dict[str, str]:
    """Each model folder's weights: SHA-256 of its safetensors files, in name order."""
    got = {}
    for folder in sorted((out / "models").iterdir()):
        h = hashlib.sha256()
        for f in sorted(folder.glob("*.safetensors")):
            h.update(f.read_bytes())
        got[folder.name] = h.hexdigest()[:12]
    return got


def samples(out: Path) -> tuple[dict[str, dict[tuple[str, Any], tuple]], dict[str, list[str]]]:
    """Per `kind:model folder name`, each (prompt, sample index)'s (generation id, seed, text), a rewrite's by
    (prompt, its parent's id) (a rewrite has no sample index); each release's member ids in order."""
    with Catalog(out / "catalog").reader() as con:
        rows = con.execute("SELECT r.kind, r.model, g.prompt_id, coalesce(CAST(g.sample_index AS VARCHAR), "
                           "g.parent_id), g.generation_id, g.seed, t.text "
                           "FROM generation_meta g JOIN runs r USING (run_id) "
                           "LEFT JOIN generation_texts t USING (generation_id)").fetchall()
        members = con.execute("SELECT release_name, list(generation_id ORDER BY position) FROM release_members "
                              "GROUP BY 1").fetchall()
    got: dict[str, dict[tuple[str, Any], tuple]] = {}
    for kind, model, prompt, index, gid, seed, text in rows:
        got.setdefault(f"{kind}:{Path(model).name}", {})[(prompt, index)] = (gid, seed, text)
    return got, {name: ids for name, ids in members}


def compare(a: Path, b: Path) -> int:
    """Print the comparison of two runs' folders; the number of differences."""
    bad = 0

    def line(what: str, x: Any, y: Any, same: bool) -> None:
        nonlocal bad
        bad += not same
        print(f"{what:46s} {str(x):>14s} {str(y):>14s}  {'same' if same else 'DIFFERENT'}")

    wa, wb = weights(a), weights(b)
    for name in sorted(set(wa) | set(wb)):
        line(f"weights {name}", wa.get(name), wb.get(name), wa.get(name) == wb.get(name))
    (ga, ra), (gb, rb) = samples(a), samples(b)
    for key in sorted(set(ga) | set(gb)):
        x, y = ga.get(key, {}), gb.get(key, {})
        differ = sum(x[k] != y[k] for k in set(x) & set(y)) + len(set(x) ^ set(y))
        line(f"samples {key}", len(x), f"{differ} differ", differ == 0)
    for name in sorted(set(ra) | set(rb)):
        line(f"release {name}", len(ra.get(name, [])), len(rb.get(name, [])), ra.get(name) == rb.get(name))
    sa, sb = (json.loads((o / "summary.json").read_text())["rows"] for o in (a, b))
    for x, y in zip(sa, sb):
        keys = ("pass_at_1", "kept", "accept_rate")
        line(f"row {x['stage'][:42]}", x["pass_at_1"] if x["pass_at_1"] is not None else x["kept"],
             y["pass_at_1"] if y["pass_at_1"] is not None else y["kept"], all(x[k] == y[k] for k in keys))
    print("ALL SAME" if not bad else f"{bad} DIFFERENCES")
    return bad


def demo(out: Path, threads: int, seed: int, full: bool) -> float:
    cmd = [sys.executable, "-m", "r1f", "demo", "--threads", str(threads), "--seed", str(seed), "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd + ([] if full else ["--quick"]), capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="make demo's sizes (default: --quick)")
    ap.add_argument("--keep", type=Path, help="write the runs here (default: a temporary folder, removed)")
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("OUT_A", "OUT_B"),
                    help="compare two runs already made (two `r1f demo --out` folders) instead of making two")
    args = ap.parse_args()
    if args.compare:
        sys.exit(1 if compare(*args.compare) else 0)
    with tempfile.TemporaryDirectory(prefix="r1f-repeat-") as tmp:
        root = args.keep or Path(tmp)
        bad = 0
        for threads in args.threads:
            a, b = root / f"t{threads}-a", root / f"t{threads}-b"
            took = [demo(out, threads, args.seed, args.full) for out in (a, b)]
            print(f"\n## seed {args.seed}, {threads} torch thread(s): two runs in fresh folders "
                  f"({took[0]:.0f} s, {took[1]:.0f} s)")
            bad += compare(a, b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
