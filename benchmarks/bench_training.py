"""`r1f train sft|grpo` and `r1f eval` against the bare scripts a user would otherwise write, in one run.

    python benchmarks/bench_training.py                       # CPU here, the tiny model built locally
    python benchmarks/bench_training.py --only eval --k 8     # one part
    python benchmarks/bench_training.py --model /path/to/Qwen2.5-0.5B-Instruct --samples 256 --steps 50

- SFT: ours is the whole `run_sft` (recipe and trl config checks, tokenizer and template checks, the release
  export, the catalog record, the model card); the bare script reads the same exported Parquet, sets the same
  chat template and runs `trl.SFTTrainer` with the same SFTConfig. Tokens per second of wall time (model load
  included in both), from trl's own `num_tokens`.
- GRPO: ours is the whole `run_grpo` (prompt selection from the catalog, the factory template, the judges as
  rewards); the bare script builds the same prompts and rewards by hand and runs `trl.GRPOTrainer`.
- Eval: ours is `run_eval` (ingest, the factory's seeded sampling loop, judging, catalog commits, answer
  classes, pass@1/cons@k in SQL) on a fresh catalog each time; the bare script calls `vllm.LLM.generate` with
  one seeded request per sample, as ours sends (the ratio printed), and with `n=k` unseeded (the second figure),
  and checks each sample with Math-Verify. All on one engine started once, outside the timings, after one
  warm-up of each; the three run interleaved. Also prints the main process's CPU seconds (the engine's own
  process is not counted: it is the same engine for all three).

Runs alternate, `--repeats` times; prints each pair and the median ratio ours/bare (targets: train >= 0.95,
eval >= 0.9). Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalogs.store import Catalog


def build_catalog(work: Path, samples: int) -> Catalog:
    from catalogs.ingest import IngestOptions, ingest
    from releases.release import create_release
    from catalogs.store import Catalog

    rows = [{"problem": f"What is {a} + {b}?", "answer": str(a + b),
             "response": f"<think>\n{a} + {b} = {a + b}. Let me check: {a + b} - {b} = {a}.\n</think>\n\n"
                         f"The answer is \\boxed{{{a + b}}}."} for a, b in ((i, 2 * i + 1) for i in range(samples))]
    src = work / "traces.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    catalog = Catalog(work / "catalog")
    ingest(catalog, src, IngestOptions(source="bench", generations=True, model="teacher"))
    create_release(catalog, "bench-v1", where="true")
    return catalog


def tokens_of(log_history: list[dict[str, Any]]) -> float:
    return max(float(e.get("num_tokens", 0)) for e in log_history)


# ------------------------------------------------------------------------------------------------ SFT
def sft_ours(catalog: Catalog, work: Path, model: Path, trl: dict[str, Any], i: int) -> float:
    import yaml

    from training.sft import run_sft

    recipe = work / f"sft-{i}.yaml"
    recipe.write_text(yaml.safe_dump({"model": str(model), "release": "bench-v1", "output_dir": str(work / f"ours-{i}"),
                                      "chat_template": "chatml", "trl": trl}))
    t0 = time.perf_counter()
    result = run_sft(catalog, recipe)
    return tokens_of(result["log_history"]) / (time.perf_counter() - t0)


def sft_bare(data: Path, model: Path, trl: dict[str, Any], work: Path, i: int) -> float:
    t0 = time.perf_counter()
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from training.chat import TEMPLATE_DIR

    tok = AutoTokenizer.from_pretrained(model)
    tok.chat_template = (TEMPLATE_DIR / "chatml.jinja").read_text()
    tok.eos_token = "<|im_end|>"
    ds = datasets.Dataset.from_parquet(str(data)).select_columns(["messages"])
    args = SFTConfig(output_dir=str(work / f"bare-{i}"), assistant_only_loss=True, use_cpu=True, report_to="none",
                     **trl)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model, dtype="float32"), args=args,
                         train_dataset=ds, processing_class=tok)
    trainer.train()
    trainer.save_model()
    return tokens_of(trainer.state.log_history) / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------ GRPO
def grpo_ours(catalog: Catalog, work: Path, model: Path, trl: dict[str, Any], i: int) -> float:
    import yaml

    from training.grpo import run_grpo

    recipe = work / f"grpo-{i}.yaml"
    recipe.write_text(yaml.safe_dump({"model": str(model), "output_dir": str(work / f"grpo-ours-{i}"),
                                      "prompts": {"release": "bench-v1"}, "template": {"name": "r1_zero"},
                                      "rewards": ["math_accuracy", "format"], "trl": trl}))
    t0 = time.perf_counter()
    result = run_grpo(catalog, recipe)
    return tokens_of(result["log_history"]) / (time.perf_counter() - t0)


def grpo_bare(catalog: Catalog, model: Path, trl: dict[str, Any], work: Path, i: int) -> float:
    t0 = time.perf_counter()
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from factory.templates import load_template
    from judges.rewards import as_reward_funcs

    template = load_template("r1_zero")
    with catalog.reader() as con:
        rows = con.execute("SELECT prompt_id, messages, problem, answer FROM prompts WHERE prompt_id IN "
                           "(SELECT prompt_id FROM release_members WHERE release_name = 'bench-v1') "
                           "ORDER BY prompt_id").fetchall()
    ds = datasets.Dataset.from_list([
        {"prompt": template.render({"prompt_id": p, "messages": json.loads(m), "problem": q, "answer": a,
                                    "domain": "math"}).raw_prompt, "answer": a} for p, m, q, a in rows])
    tok = AutoTokenizer.from_pretrained(model)
    args = GRPOConfig(output_dir=str(work / f"grpo-bare-{i}"), use_cpu=True, use_vllm=False, report_to="none",
                      logging_steps=1, **trl)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model, dtype="float32"),
                          # trl types reward functions as returning the invariant list[float | None]
                          reward_funcs=as_reward_funcs(["math_accuracy", "format"]),  # type: ignore[arg-type]
                          args=args, train_dataset=ds, processing_class=tok)
    trainer.train()
    trainer.save_model()
    return tokens_of(trainer.state.log_history) / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------ eval
def eval_ours(llm: Any, model: Path, bench: Path, k: int, max_tokens: int, work: Path, i: int
              ) -> tuple[float, float]:
    import yaml

    from backends.vllm_backend import VLLMBackend
    from catalogs.store import Catalog, one_row
    from training.evaluate import run_eval

    catalog = Catalog(work / f"eval-{i}")
    recipe = work / f"eval-{i}.yaml"
    recipe.write_text(yaml.safe_dump({"backend": {"name": "vllm", "model": str(model)},
                                      "benchmarks": [{"name": "bench", "file": str(bench)}], "k": k,
                                      "sampling": {"max_tokens": max_tokens}}))
    t0, c0 = time.perf_counter(), time.process_time()
    run_eval(catalog, recipe, backend=VLLMBackend(llm=llm))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    with catalog.reader() as con:
        tokens = one_row(con.execute("SELECT sum(completion_tokens) FROM generation_meta"))[0]
    return float(tokens) / seconds, cpu


def eval_bare(llm: Any, bench: Path, k: int, max_tokens: int, *, seeded: bool) -> tuple[float, float]:
    """Tokens per second and this process's CPU seconds. `seeded`: one request per sample with a seed of its own,
    as ours sends (reproducible samples); else one request per problem with `n=k`, unseeded."""
    from math_verify import parse, verify
    from vllm import SamplingParams

    rows = [json.loads(line) for line in bench.read_text().splitlines() if line.strip()]
    t0, c0 = time.perf_counter(), time.process_time()
    tok = llm.get_tokenizer()
    prompts = [tok.apply_chat_template([{"role": "user", "content": r["problem"]}], tokenize=False,
                                       add_generation_prompt=True) for r in rows]
    if seeded:
        params = [SamplingParams(n=1, temperature=0.6, top_p=0.95, max_tokens=max_tokens, seed=p * k + j)
                  for p in range(len(rows)) for j in range(k)]
        outs = llm.generate([q for q in prompts for _ in range(k)], params, use_tqdm=False)
        owners = [r for r in rows for _ in range(k)]
    else:
        outs = llm.generate(prompts, SamplingParams(n=k, temperature=0.6, top_p=0.95, max_tokens=max_tokens),
                            use_tqdm=False)
        owners = rows
    tokens = 0
    for r, out in zip(owners, outs):
        gold = parse("\\boxed{" + str(r["answer"]) + "}")
        for c in out.outputs:
            tokens += len(c.token_ids)
            verify(gold, parse(c.text))
    return tokens / (time.perf_counter() - t0), time.process_time() - c0


def pairs(name: str, ours: list[float], bare: list[float], *, quiet: bool = False) -> None:
    ratios = [o / b for o, b in zip(ours, bare)]
    for o, b, r in zip(ours, bare, ratios):
        if not quiet:
            print(f"  {name}: ours {o:,.0f} tok/s, bare {b:,.0f} tok/s, ratio {r:.3f}")
    print(f"{name}: median ratio ours/bare {statistics.median(ratios):.3f} over {len(ratios)} pairs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: build the tiny test model)")
    ap.add_argument("--samples", type=int, default=64, help="release size (SFT samples, GRPO prompts)")
    ap.add_argument("--steps", type=int, default=16, help="SFT steps")
    ap.add_argument("--grpo-steps", type=int, default=4)
    ap.add_argument("--k", type=int, default=4, help="eval samples per problem")
    ap.add_argument("--max-tokens", type=int, default=64, help="eval and GRPO completion length")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["sft", "grpo", "eval"], default=None)
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    work = Path(tempfile.mkdtemp(prefix="r1f-bench-train-"))
    model = args.model
    if model is None:
        from factory.tiny_model import build_tiny_model

        model = build_tiny_model(work / "tiny-model")
    catalog = build_catalog(work, args.samples)

    if args.only in (None, "sft"):
        from releases.release import export_release

        data = export_release(catalog, "bench-v1", work / "bare-data.parquet")
        trl = {"max_steps": args.steps, "per_device_train_batch_size": 8, "learning_rate": 1e-4, "logging_steps": 1,
               "save_strategy": "no", "max_length": 512}
        ours, bare = [], []
        for i in range(args.repeats):
            bare.append(sft_bare(data, model, trl, work, i))
            ours.append(sft_ours(catalog, work, model, trl, i))
        pairs("sft", ours, bare)

    if args.only in (None, "grpo"):
        trl = {"max_steps": args.grpo_steps, "per_device_train_batch_size": 8, "num_generations": 4,
               "max_completion_length": args.max_tokens, "learning_rate": 1e-5, "save_strategy": "no"}
        ours, bare = [], []
        for i in range(args.repeats):
            bare.append(grpo_bare(catalog, model, trl, work, i))
            ours.append(grpo_ours(catalog, work, model, trl, i))
        pairs("grpo", ours, bare)

    if args.only in (None, "eval"):
        import vllm

        from backends.vllm_backend import cpu_safe_engine_kwargs

        bench = work / "bench.jsonl"
        bench.write_text("".join(json.dumps({"problem": f"What is {i} * {i + 3}? Think step by step.",
                                             "answer": str(i * (i + 3))}) + "\n" for i in range(args.samples)))
        llm = vllm.LLM(model=str(model), **cpu_safe_engine_kwargs(
            {"max_model_len": 2048, "gpu_memory_utilization": 0.3, "enforce_eager": True, "seed": 0}))
        # Warm-up, shown but not counted: the bare loop's imports are outside its timing, ours are lazy (inside).
        cold = eval_bare(llm, bench, args.k, args.max_tokens, seeded=True)
        print(f"  eval, first run (imports included): ratio "
              f"{eval_ours(llm, model, bench, args.k, args.max_tokens, work, -1)[0] / cold[0]:.3f}")
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "seeded": [], "unseeded": []}
        for i in range(args.repeats):  # interleaved, so a load spike on the machine hits all three alike
            runs["seeded"].append(eval_bare(llm, bench, args.k, args.max_tokens, seeded=True))
            runs["ours"].append(eval_ours(llm, model, bench, args.k, args.max_tokens, work, i))
            runs["unseeded"].append(eval_bare(llm, bench, args.k, args.max_tokens, seeded=False))
        for (o, oc), (s, sc), (u, uc) in zip(runs["ours"], runs["seeded"], runs["unseeded"]):
            print(f"  eval: ours {o:,.0f} tok/s ({oc:.2f} CPU s), bare seeded {s:,.0f} ({sc:.2f}), bare n=k "
                  f"{u:,.0f} ({uc:.2f}); ratio {o / s:.3f}, to n=k {o / u:.3f}")
        cpu = {name: statistics.median(c for _, c in rs) for name, rs in runs.items()}
        print(f"eval: main-process CPU s (median): ours {cpu['ours']:.2f}, bare seeded {cpu['seeded']:.2f}, "
              f"bare n=k {cpu['unseeded']:.2f}")
        pairs("eval", [o for o, _ in runs["ours"]], [s for s, _ in runs["seeded"]], quiet=True)
        pairs("eval vs unseeded n=k", [o for o, _ in runs["ours"]], [u for u, _ in runs["unseeded"]], quiet=True)
        llm.llm_engine.engine_core.shutdown()


if __name__ == "__main__":
    main()
