"""Adaptive rejection sampling vs a fixed n per prompt: generated tokens per accepted sample.

SIMULATED: the tiny test model cannot solve anything, so the backend here is simulated. Each prompt
has a true pass rate (mixed difficulty: easy, medium, hard, impossible), and each sample's outcome and
length are drawn from its per-sample seed, so both strategies see exactly the same sample for the same
(prompt, index). The adaptive side runs the real factory loop (`generate_from_recipe`: rounds, budget,
retry, resume bookkeeping) against a real catalog on disk; only the model is simulated.

Both sides are compared at the same number of accepted samples (each prompt needs k; accepted
samples beyond k are not counted as useful). The fixed side uses the smallest n whose accepted
count reaches the adaptive side's.

    python benchmarks/bench_sampling.py [--prompts 400] [--k 4]
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from pathlib import Path

from catalogs import Catalog
from catalogs.ids import generation_id, sample_seed
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql
from backends.base import ChatRequest, Completion
from factory.generate import generate_from_recipe

# (share of prompts, true pass rate)
DIFFICULTY = [(0.35, 0.8), (0.30, 0.4), (0.20, 0.1), (0.15, 0.0)]


def outcome(seed: int, pass_rate: float) -> tuple[bool, int]:
    """The simulated sample for a seed: does it pass, and how many tokens it has (400..1600)."""
    rng = random.Random(seed)
    return rng.random() < pass_rate, rng.randint(400, 1600)


class SimulatedBackend:
    name = "simulated"

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates  # problem text -> pass rate
        self.calls = 0

    def generate(self, requests: list[ChatRequest]) -> list[list[Completion]]:
        self.calls += 1
        out = []
        for r in requests:
            rate = self.rates[r.messages[-1]["content"].split("\n")[0]]
            comps = []
            for seed in r.seeds or []:
                ok, n = outcome(seed, rate)
                comps.append(Completion(text=f"<think>simulated</think>{'PASS' if ok else 'FAIL'}",
                                        finish_reason="stop", prompt_tokens=50, completion_tokens=n))
            out.append(comps)
        return out

    def close(self) -> None:
        pass


def judge(sample) -> bool:
    return sample.answer == "PASS"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=400)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-samples", type=int, default=32)
    ap.add_argument("--retry-samples", type=int, default=8)
    args = ap.parse_args()
    logging.getLogger("factory").setLevel(logging.WARNING)  # figures only, not per-round lines

    rng = random.Random(0)
    rates: dict[str, float] = {}
    for i in range(args.prompts):
        x, acc = rng.random(), 0.0
        for share, rate in DIFFICULTY:
            acc += share
            if x < acc:
                break
        rates[f"problem {i} (pass rate {rate})"] = rate

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "prompts.jsonl"
        src.write_text("\n".join(json.dumps({"problem": p}) for p in rates) + "\n")
        cat = Catalog(tmp_path / "catalog")
        ingest(cat, src, IngestOptions(source="bench", kind="reasoning", domain="other"))
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(
            "backend: {name: vllm, model: simulated/model}\n"
            "sampling: {max_tokens: 1600}\n"
            f"samples_per_prompt: {args.k}\n"
            f"budget: {{max_samples: {args.max_samples}, round_size: {args.k}, retry_samples: {args.retry_samples}}}\n"
            "judges: [simulated]\n"
        )
        backend = SimulatedBackend(rates)
        t0 = time.perf_counter()
        summary = generate_from_recipe(recipe, cat, judges={"simulated": judge}, backend=backend, progress=False)
        wall = time.perf_counter() - t0
        run_id = summary["run_id"]
        _, rows = sql(cat, "select samples, accepted, tokens from prompt_stats")
        adaptive_tokens = sum(r[2] for r in rows)
        adaptive_useful = sum(min(r[1], args.k) for r in rows)
        adaptive_samples = sum(r[0] for r in rows)
        prompt_ids = {r["problem"]: r["prompt_id"] for r in cat.prompts().to_dicts()}

    # Fixed n per prompt, same samples (same ids, so same seeds and outcomes).
    def fixed(n: int) -> tuple[int, int, int]:
        tokens = useful = accepted = 0
        for problem, rate in rates.items():
            a = 0
            for idx in range(n):
                ok, t = outcome(sample_seed(generation_id(prompt_ids[problem], run_id, idx)), rate)
                tokens += t
                a += ok
            useful += min(a, args.k)
            accepted += a
        return tokens, useful, accepted

    n, (f_tokens, f_useful, f_accepted) = 1, fixed(1)
    while f_useful < adaptive_useful and n < 256:
        n += 1
        f_tokens, f_useful, f_accepted = fixed(n)

    a_per = adaptive_tokens / adaptive_useful
    f_per = f_tokens / f_useful
    print("adaptive rejection sampling vs fixed n (SIMULATED backend: per-prompt pass rates "
          f"{[r for _, r in DIFFICULTY]} in shares {[s for s, _ in DIFFICULTY]}; real factory loop and catalog)")
    print(f"prompts {args.prompts}, k {args.k}, budget {args.max_samples} + retry {args.retry_samples}")
    print(f"adaptive : {adaptive_samples} samples in {summary['rounds']} rounds ({backend.calls} backend calls), "
          f"{adaptive_useful} accepted (<= k per prompt), {adaptive_tokens:,} tokens, "
          f"{a_per:,.0f} tokens per accepted sample; solved {summary['solved']}, unsolved {summary['unsolved']}, "
          f"open {summary['open']}; loop wall time {wall:.2f} s")
    print(f"fixed n={n}: {n * args.prompts} samples, {f_useful} accepted (<= k per prompt; {f_accepted} passing "
          f"in all), {f_tokens:,} tokens, {f_per:,.0f} tokens per accepted sample")
    print(f"ratio (fixed / adaptive tokens per accepted sample): {f_per / a_per:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
