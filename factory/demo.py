"""`r1f demo`: the pipeline end to end on this machine's CPU, through the same commands a user types.

1. build the tiny test model (nothing is downloaded);
2. ingest math prompts (English and Chinese) from the shipped demo data;
3. generate with the real vLLM engine and rejection sampling (the tiny model is random, so its samples
   fail the math judge, and the prompts end up marked unsolved: the machinery, honestly);
4. import reasoning traces and chat responses "made elsewhere" (`ingest --generations`), among them five
   planted for the filters (benchmark leaks, a CoT switching to Chinese, one with code, a duplicate);
5. judge, filter, release the paper's mix, export for trl, and show one sample's whole lineage.

Running it again adds nothing twice: every stage is idempotent.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from pathlib import Path

import yaml
from rich.console import Console

DATA = Path(__file__).resolve().parent / "demo_data"
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
console = Console()


def _r1f(*args: str) -> None:
    from catalogs.cli import app

    console.rule(f"[bold]$ r1f {' '.join(shlex.quote(a) for a in args)}", align="left")
    t0 = time.perf_counter()
    app(list(args), standalone_mode=False)
    console.print(f"[dim]({time.perf_counter() - t0:.1f}s)[/]")


def _recipe(out: Path, name: str, data: dict) -> str:
    path = out / "recipes" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return str(path)


def run_demo(out: Path, keep: bool = True) -> Path:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    catalog = out / "catalog"
    os.environ["R1F_CATALOG"] = str(catalog)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # the demo's own output is the story
    model = out / "tiny-model"
    if not (model / "config.json").exists():
        from factory.tiny_model import build_tiny_model

        console.rule("[bold]building the tiny test model (random weights, local BPE tokenizer)", align="left")
        build_tiny_model(model)

    _r1f("ingest", str(DATA / "gsm8k_prompts.jsonl"), "--source", "gsm8k")
    _r1f("ingest", str(DATA / "gsm_zh_prompts.jsonl"), "--source", "gsm_zh")

    generate = yaml.safe_load((RECIPES / "generate_cpu_tiny.yaml").read_text())
    generate.update(name="demo-rejection-sampling",
                    prompts={"where": "source IN ('gsm8k', 'gsm_zh')", "limit": 8},
                    judges=[{"name": "math_accuracy"}], samples_per_prompt=1,
                    budget={"max_samples": 4, "round_size": 2, "retry_samples": 2})
    generate["backend"]["model"] = str(model)
    _r1f("generate", _recipe(out, "generate.yaml", generate), "--dry-run")
    _r1f("generate", _recipe(out, "generate.yaml", generate))

    _r1f("ingest", str(DATA / "gsm8k_traces.jsonl"), "--generations", "--model", "reference-solutions",
         "--source", "gsm8k")
    _r1f("ingest", str(DATA / "planted_traces.jsonl"), "--generations", "--model", "reference-solutions",
         "--source", "planted")
    _r1f("ingest", str(DATA / "chat_responses.jsonl"), "--generations", "--model", "alpaca-demo",
         "--source", "chat")

    _r1f("judge", str(RECIPES / "judge_r1.yaml"))
    _r1f("filter", str(RECIPES / "filters_r1.yaml"))

    release = yaml.safe_load((RECIPES / "release_r1.yaml").read_text())
    release.update(reasoning=None, non_reasoning=None, reasoning_share=0.75)  # as much as we have, at 3:1
    _r1f("release", "demo-r1-mix", "--recipe", _recipe(out, "release.yaml", release))
    export = out / "demo-r1-mix"
    _r1f("export", "demo-r1-mix", "--format", "hf", "--out", str(export), "--overwrite")

    from catalogs import Catalog
    from catalogs.query import sql

    cat = Catalog(catalog, create=False)
    _, rows = sql(cat, "SELECT m.generation_id FROM release_members m JOIN prompts p ON p.prompt_id = m.prompt_id "
                       "WHERE m.release_name = 'demo-r1-mix' AND p.kind = 'reasoning' ORDER BY m.position LIMIT 1")
    if rows:
        _r1f("show", rows[0][0])
    _, dropped = sql(cat, "SELECT generation_id FROM filter_decisions WHERE NOT passed AND filter IN "
                          "('decontamination', 'language_mixing') ORDER BY filter, generation_id LIMIT 1")
    if dropped:
        _r1f("show", dropped[0][0])
    _r1f("stats")

    import datasets

    ds = datasets.load_dataset(str(export), split="train")
    console.rule("[bold]done", align="left")
    console.print(f"catalog: {catalog}\nrelease exported to {export}: {len(ds)} rows, columns {ds.column_names}")
    console.print(json.dumps(ds[0]["messages"], ensure_ascii=False)[:400] + " …")
    console.print("Try: [bold]r1f sql \"SELECT filter, reason, count(*) FROM filter_decisions WHERE NOT passed "
                  "GROUP BY ALL\" --catalog " + str(catalog) + "[/]")
    if not keep:
        shutil.rmtree(out)
    return out
