"""`r1f demo`: the pipeline end to end on this machine's CPU, through the same functions the commands call.

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
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from catalogs import cli as catalog_cli
from factory import cli as factory_cli
from filters import cli as filters_cli
from judges import cli as judges_cli

DATA = Path(__file__).resolve().parent / "demo_data"
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
console = Console()


def _step(command: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Print the `r1f` command a user would type, then call the function behind it (never the CLI app)."""
    console.rule(f"[bold]$ r1f {command}", align="left")
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    console.print(f"[dim]({time.perf_counter() - t0:.1f}s)[/]")
    return result


def _recipe(out: Path, name: str, data: dict) -> str:
    path = out / "recipes" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return str(path)


def run_demo(out: Path, keep: bool = True) -> Path:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    catalog = out / "catalog"
    model = out / "tiny-model"
    if not (model / "config.json").exists():
        from factory.tiny_model import build_tiny_model

        console.rule("[bold]building the tiny test model (random weights, local BPE tokenizer)", align="left")
        build_tiny_model(model)
    c = str(catalog)

    for name, source in (("gsm8k_prompts.jsonl", "gsm8k"), ("gsm_zh_prompts.jsonl", "gsm_zh")):
        _step(f"ingest {DATA / name} --source {source}", catalog_cli.ingest, DATA / name, source=source,
              catalog=catalog)

    generate = yaml.safe_load((RECIPES / "generate_cpu_tiny.yaml").read_text())
    generate.update(name="demo-rejection-sampling",
                    prompts={"where": "source IN ('gsm8k', 'gsm_zh')", "limit": 8},
                    judges=[{"name": "math_accuracy"}], samples_per_prompt=1,
                    budget={"max_samples": 4, "round_size": 2, "retry_samples": 2})
    generate["backend"]["model"] = str(model)
    recipe = _recipe(out, "generate.yaml", generate)
    _step(f"generate {recipe} --dry-run", factory_cli.generate, recipe, dry_run=True, catalog=catalog)
    _step(f"generate {recipe}", factory_cli.generate, recipe, catalog=catalog)

    for name, model_name, source in (("gsm8k_traces.jsonl", "reference-solutions", "gsm8k"),
                                     ("planted_traces.jsonl", "reference-solutions", "planted"),
                                     ("chat_responses.jsonl", "alpaca-demo", "chat")):
        _step(f"ingest {DATA / name} --generations --model {model_name} --source {source}", catalog_cli.ingest,
              DATA / name, generations=True, model=model_name, source=source, catalog=catalog)

    _step(f"judge {RECIPES / 'judge_r1.yaml'}", judges_cli.judge, RECIPES / "judge_r1.yaml", catalog=catalog)
    _step(f"filter {RECIPES / 'filters_r1.yaml'}", filters_cli.filter_, RECIPES / "filters_r1.yaml",
          catalog=catalog)

    release = yaml.safe_load((RECIPES / "release_r1.yaml").read_text())
    release.update(reasoning=None, non_reasoning=None, reasoning_share=0.75)  # as much as we have, at 3:1
    release_recipe = _recipe(out, "release.yaml", release)
    _step(f"release demo-r1-mix --recipe {release_recipe}", catalog_cli.release, "demo-r1-mix",
          recipe=release_recipe, catalog=catalog)
    export = out / "demo-r1-mix"
    _step(f"export demo-r1-mix --format hf --out {export} --overwrite", catalog_cli.export, "demo-r1-mix",
          out=export, format="hf", overwrite=True, catalog=catalog)

    from catalogs import Catalog
    from catalogs.query import sql

    cat = Catalog(catalog, create=False)
    _, rows = sql(cat, "SELECT m.generation_id FROM release_members m JOIN prompts p ON p.prompt_id = m.prompt_id "
                       "WHERE m.release_name = 'demo-r1-mix' AND p.kind = 'reasoning' ORDER BY m.position LIMIT 1")
    _, dropped = sql(cat, "SELECT generation_id FROM filter_decisions WHERE NOT passed AND filter IN "
                          "('decontamination', 'language_mixing') ORDER BY filter, generation_id LIMIT 1")
    for (gid,) in rows[:1] + dropped[:1]:
        _step(f"show {gid}", catalog_cli.show, gid, catalog=catalog)
    _step("stats", catalog_cli.stats, catalog=catalog)

    import datasets

    ds = datasets.load_dataset(str(export), split="train")
    console.rule("[bold]done", align="left")
    console.print(f"catalog: {catalog}\nrelease exported to {export}: {len(ds)} rows, columns {ds.column_names}")
    console.print(json.dumps(ds[0]["messages"], ensure_ascii=False)[:400] + " …")
    console.print("Try: [bold]r1f sql \"SELECT filter, reason, count(*) FROM filter_decisions WHERE NOT passed "
                  "GROUP BY ALL\" --catalog " + c + "[/]")
    if not keep:
        shutil.rmtree(out)
    return out
