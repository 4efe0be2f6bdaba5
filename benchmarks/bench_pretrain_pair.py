"""The demo's two pretrainings, one after the other (as before) vs at once (the student in a spawned process), printed.

Each round pretrains the base and the student base from scratch on the same world, both ways, alternating which
way goes first, each in a fresh Python process (imports counted, as in `r1f demo`); one torch thread, deterministic
algorithms, as the demo runs. Printed: each way's wall time per round, their medians and ratio, and the sha256 of
every model.safetensors, which must be the same both ways (the models do not depend on how they were trained).
The machine may be shared: compare the ratio, not the seconds.

Usage: python benchmarks/bench_pretrain_pair.py [--rounds 2] [--base-steps 1000] [--student-steps 600] [--seed 0]
       [--out DIR] [--reference DIR]
--reference names a finished demo's output folder (e.g. demo-out): its models/*/model.safetensors hashes are
compared too (they match only at the demo's own steps and seed).
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAMES = ("base", "student-base")


def pair(out: Path, corpus: Path, way: str, base_steps: int, student_steps: int, seed: int) -> None:
    """Pretrain both bases into `out/models` one way: `sequential` (here, one after the other) or `apart`."""
    from pipelines.recipe import TorchSettings
    from pipelines.run import set_torch
    from r1f.mini.model import BASE, STUDENT, pretrain, pretrain_apart

    torch_settings = TorchSettings(threads=1, deterministic=True)
    set_torch(torch_settings)
    models = out / "models"
    if way == "apart":
        student = pretrain_apart(models / "student-base", corpus, STUDENT, torch_settings, steps=student_steps,
                                 seed=seed)
        try:
            pretrain(models / "base", corpus, BASE, steps=base_steps, seed=seed)
            student.result()
        finally:
            student.stop()
    else:
        pretrain(models / "base", corpus, BASE, steps=base_steps, seed=seed)
        pretrain(models / "student-base", corpus, STUDENT, steps=student_steps, seed=seed)


def hashes(out: Path) -> dict[str, str]:
    return {n: hashlib.sha256((out / "models" / n / "model.safetensors").read_bytes()).hexdigest() for n in NAMES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--base-steps", type=int, default=1000)
    ap.add_argument("--student-steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--reference", type=Path, default=None)
    ap.add_argument("--way", choices=("sequential", "apart"), default=None, help=argparse.SUPPRESS)  # one run
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    corpus = root / "world" / "pretrain.jsonl"
    if args.way:  # the child: one way, once
        pair(root, corpus, args.way, args.base_steps, args.student_steps, args.seed)
        return
    from r1f.mini.world import WorldSpec, write_world

    write_world(root / "world", WorldSpec(seed=args.seed))
    times: dict[str, list[float]] = {"sequential": [], "apart": []}
    seen: dict[str, set[str]] = {n: set() for n in NAMES}
    for r in range(args.rounds):
        for way in (("sequential", "apart") if r % 2 == 0 else ("apart", "sequential")):
            out = root / f"r{r}-{way}"
            (out / "world").mkdir(parents=True, exist_ok=True)
            (out / "world" / "pretrain.jsonl").write_bytes(corpus.read_bytes())
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--way", way, "--out", str(out), "--base-steps",
                            str(args.base_steps), "--student-steps", str(args.student_steps), "--seed",
                            str(args.seed)], check=True, stdout=subprocess.DEVNULL)
            took = time.perf_counter() - start
            times[way].append(took)
            got = hashes(out)
            for n in NAMES:
                seen[n].add(got[n])
            print(f"round {r + 1} {way:10s} {took:7.1f} s  " + "  ".join(f"{n} {h[:12]}" for n, h in got.items()),
                  flush=True)
    seq, apart = statistics.median(times["sequential"]), statistics.median(times["apart"])
    print(f"median: sequential {seq:.1f} s, apart {apart:.1f} s; apart/sequential {apart / seq:.2f} "
          f"(base {args.base_steps} steps, student {args.student_steps}, seed {args.seed}, 1 torch thread)")
    same = all(len(h) == 1 for h in seen.values())
    print(f"model.safetensors the same every round and both ways: {same}")
    if args.reference is not None:
        ref = hashes(args.reference)
        print("the same as the reference's: " + ", ".join(f"{n} {ref[n] in seen[n] and len(seen[n]) == 1}"
                                                            for n in NAMES))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
