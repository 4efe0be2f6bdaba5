"""The Ray engine's figures: scaling from one to two workers for the CPU stages, Ray's overhead against the local
engine, and what the one committer can register (the bound of a large run).

    python benchmarks/bench_ray.py                 # all, ~5 min here
    python benchmarks/bench_ray.py --skip-generate # the CPU stages and the committer only
    python benchmarks/bench_ray.py --only-generate

Prints ratios, not speeds to trust: this machine has 2 cores shared with other work. Each figure compares
against its peer measured in the same run, on the same catalog contents:
- filters / judges, Ray with 1 CPU vs Ray with 2 CPUs (a local cluster, `ray.init(num_cpus=…)`):
  scaling efficiency = t(1) / (2 * t(2)).
- filters, local engine (2 worker processes) vs Ray (2 CPUs): Ray's overhead = t(ray) / t(local).
- generate, local engine (one vLLM engine in process) vs Ray (one actor owning one engine): overhead ratio,
  engine start included in both, and the per-engine rate (tokens/s) of each.
- the committer: shards of synthetic ~40 kB generations (about 10k tokens each, the paper's CoT length) staged,
  then registered in one transaction each, as the Ray driver does: rows/s and MB/s.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_filters import make_corpus


def corpus_catalog(n: int, work: Path) -> Path:
    """A catalog of n synthetic ~16k-character CoTs (bench_filters' corpus: planted duplicates, mixed languages,
    long paragraphs, code) with reference answers, imported as generations."""
    import polars as pl

    parquet = work / "corpus.parquet"
    make_corpus(n, parquet)
    rows = pl.read_parquet(parquet).select("problem", "text")
    src = work / "corpus.jsonl"
    with open(src, "w") as f:
        f.writelines(json.dumps({"problem": r["problem"], "answer": str(i % 1000), "response": r["text"]}) + "\n" for i, r in enumerate(rows.iter_rows(named=True)))
    cat = work / "base"
    ingest(Catalog(cat), src, IngestOptions(source="bench", generations=True, model="bench", domain="math"))
    return cat


FILTERS = {"filters": [{"name": "hygiene"}, {"name": "language_mixing"}, {"name": "long_paragraphs"},
                       {"name": "code_blocks"}, {"name": "dedup", "params": {"field": "reasoning"}}],
           "batch_rows": 250}
JUDGES = {"judges": [{"name": "math_accuracy"}, {"name": "format"}, {"name": "language_consistency"}],
          "batch_rows": 250}


def fresh(base: Path, work: Path, name: str) -> Catalog:
    dest = work / name
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(base, dest)
    return Catalog(dest)


def stage(kind: str, base: Path, work: Path, engine: str, cpus: int) -> float:
    """Seconds for one stage over a fresh copy of the catalog: `local` with `cpus` worker processes, or `ray` on a
    local cluster of `cpus` CPUs."""
    from filters.run import FilterRecipe, filter_catalog
    from judges.run import JudgeRecipe, judge_catalog

    cat = fresh(base, work, f"{kind}-{engine}-{cpus}")
    recipe: Any = (FilterRecipe(**FILTERS, workers=cpus) if kind == "filters" else JudgeRecipe(**JUDGES, workers=cpus))
    if engine == "local":
        t = time.perf_counter()
        (filter_catalog if kind == "filters" else judge_catalog)(cat, recipe)
        return time.perf_counter() - t
    import ray

    from scaleout.stages import filter_on_ray, judge_on_ray

    ray.init(num_cpus=cpus, _temp_dir=str(work / "ray"), include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    try:
        ray.get(ray.remote(lambda: 0).remote())  # the cluster is up before the clock starts
        t = time.perf_counter()
        (filter_on_ray if kind == "filters" else judge_on_ray)(cat, recipe, None, workers=cpus)
        return time.perf_counter() - t
    finally:
        ray.shutdown()


def committer(work: Path, shards: int, rows: int, chars: int) -> dict[str, float]:
    """Stage `shards` shards of `rows` generations of `chars` characters, then time registering each in its own
    transaction (what the Ray driver does per finished shard)."""
    import random

    cat = Catalog(work / "commit")
    r = random.Random(0)
    words = ["the", "answer", "is", "therefore", "we", "check", "that", "x", "equals", "wait", "so", "then"]
    staged = []
    for s in range(shards):
        staging = work / "commit" / "staging" / f"bench{s}"
        staging.mkdir(parents=True, exist_ok=True)
        batch = []
        for i in range(rows):
            body = " ".join(r.choice(words) for _ in range(chars // 5))[:chars]
            batch.append({"generation_id": f"g{s:04d}{i:05d}", "prompt_id": f"p{s:04d}{i:05d}", "run_id": "r_bench",
                          "sample_index": 0, "seed": i, "text": f"<think>\n{body}\n</think>\n\n\\boxed{{{i}}}",
                          "reasoning": body, "answer": f"\\boxed{{{i}}}", "finish_reason": "stop",
                          "prompt_tokens": 100, "completion_tokens": chars // 4})
        staged.append(cat.stage_generations(batch, staging))
    t = time.perf_counter()
    for b in staged:
        cat.register_staged([b])
    dt = time.perf_counter() - t
    n = shards * rows
    return {"rows": n, "seconds": dt, "rows_per_s": n / dt, "mb_per_s": n * chars / 1e6 / dt,
            "shard_rows": rows}


def generate(work: Path, model: Path, prompts: int, max_tokens: int) -> dict[str, Any]:
    """The same recipe, local engine vs one Ray actor owning one engine; each on a fresh catalog."""
    import ray

    from factory.generate import generate_from_recipe, prepare_recipe
    from scaleout.generate import generate_on_ray

    src = work / "prompts.jsonl"
    src.write_text("".join(json.dumps({"problem": f"Compute {i} + {2 * i}.", "answer": str(3 * i)}) + "\n"
                           for i in range(prompts)))
    recipe_path = work / "gen.yaml"
    recipe_path.write_text(
        f"backend: {{name: vllm, model: {model}, max_model_len: 2048, gpu_memory_utilization: 0.3, "
        "enforce_eager: true, kv_cache_gb: 1}\n"
        f"sampling: {{temperature: 1.0, top_p: 1.0, max_tokens: {max_tokens}}}\n"
        "samples_per_prompt: 4\nbudget: {max_samples: 4, round_size: 4, retry_samples: 0}\njudges: []\n")
    out = {}
    for engine in ("local", "ray"):
        path = work / f"gen-{engine}"
        cat = Catalog(path)
        ingest(cat, src, IngestOptions(source="bench", kind="reasoning", domain="math"))
        recipe = prepare_recipe(recipe_path)
        if engine == "local":
            t = time.perf_counter()
            summary = generate_from_recipe(recipe, cat, progress=False)
            dt = time.perf_counter() - t
        else:
            ray.init(num_cpus=1, _temp_dir=str(work / "ray"), include_dashboard=False,
                     logging_level=logging.ERROR, log_to_driver=False)
            try:
                ray.get(ray.remote(lambda: 0).remote())  # the cluster is up before the clock starts, as above
                t = time.perf_counter()
                summary = generate_on_ray(recipe, cat, workers=1, shard_prompts=prompts, progress=False)
                dt = time.perf_counter() - t
            finally:
                ray.shutdown()
        out[engine] = {"seconds": dt, "tokens": summary["tokens_generated"],
                       "tokens_per_s": summary["tokens_generated"] / dt}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="generations in the stage corpus")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--only-generate", action="store_true")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--commit-shards", type=int, default=20)
    ap.add_argument("--commit-rows", type=int, default=256)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="r1f-bench-ray-", dir="/tmp"))
    results: dict[str, Any] = {"n": args.n}
    try:
        base = corpus_catalog(args.n, work) if not args.only_generate else work
        for kind in () if args.only_generate else ("filters", "judges"):
            times: dict[str, list[float]] = {"ray1": [], "ray2": [], "local2": []}
            for _ in range(args.repeats):
                times["ray1"].append(stage(kind, base, work, "ray", 1))
                times["ray2"].append(stage(kind, base, work, "ray", 2))
                times["local2"].append(stage(kind, base, work, "local", 2))
            med = {k: statistics.median(v) for k, v in times.items()}
            results[kind] = {**{f"{k}_s": round(v, 2) for k, v in med.items()},
                             "scaling_efficiency_1_to_2": round(med["ray1"] / (2 * med["ray2"]), 3),
                             "speedup_1_to_2": round(med["ray1"] / med["ray2"], 3),
                             "ray_overhead_vs_local": round(med["ray2"] / med["local2"], 3),
                             "generations_per_s_ray2": round(args.n / med["ray2"], 1)}
            print(kind, json.dumps(results[kind]), flush=True)
        if not args.only_generate:
            results["committer"] = committer(work, args.commit_shards, args.commit_rows, 40_000)
            print("committer", json.dumps(results["committer"]), flush=True)
        if not args.skip_generate:
            from factory.tiny_model import build_tiny_model

            model = build_tiny_model(work / "tiny-model")
            gen = generate(work, model, args.prompts, args.max_tokens)
            gen["ray_overhead_vs_local"] = round(gen["ray"]["seconds"] / gen["local"]["seconds"], 3)
            results["generate"] = gen
            print("generate", json.dumps(gen), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":  # vLLM and Ray spawn processes
    main()
