"""Training's commands: `r1f train sft|grpo|reward RECIPE` and `r1f eval RECIPE`.

`train` takes the trainer as its first argument (`sft`, `grpo` or `reward`), so the face composes it like any other
command. Every command imports its stage lazily: `r1f --help` loads no torch.
"""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from catalogs.clikit import (
    DEFAULT_CATALOG,
    AddressOpt,
    CatalogOpt,
    EngineWorkersOpt,
    JsonOpt,
    command_group,
    console,
    engine_option,
    open_catalog,
    print_json,
    stage_runner,
)
from catalogs.engines import StageEngines
from training.runs import without_steps

app = command_group()


class Trainer(str, enum.Enum):
    sft = "sft"
    grpo = "grpo"
    reward = "reward"


@app.command()
def train(
    trainer: Annotated[Trainer, typer.Argument(help="sft: trl's SFTTrainer on a release. grpo: trl's GRPOTrainer "
                                               "with the judges as rewards. reward: trl's RewardTrainer on "
                                               "preference pairs (a JSONL file of prompt, chosen, rejected); the "
                                               "saved model is what the helpfulness and harmlessness judges load "
                                               "with params.reward_model.")],
    recipe: Annotated[Path, typer.Argument(help="YAML training recipe (see recipes/): model, release (sft), prompts "
                                           "and rewards (grpo) or pairs.file and aspect (reward), output_dir, and "
                                           "a `trl:` block passed to trl's SFTConfig/GRPOConfig/RewardConfig.")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint-* in output_dir "
                                         "(trl/transformers checkpointing).")] = False,
    check: Annotated[bool, typer.Option("--check", help="Validate the recipe, release or pairs file, model path "
                                        "and chat template; load no weights, train nothing.")] = False,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """Train with trl, and record the run in the catalog (`r1f sql "SELECT * FROM trainings"`): sft and grpo on
    catalog data, reward on a pairs file (its catalog is made if there is none yet)."""
    if trainer is Trainer.reward:
        from training.reward import prepare_reward, run_reward

        prep = prepare_reward(recipe)  # before the catalog is made: a refused recipe leaves nothing behind
        if check:
            summary = {"status": "ok", "recipe": str(recipe), "pairs": len(prep.dataset),
                       "output_dir": prep.args.output_dir}
        else:
            summary = run_reward(open_catalog(catalog, create=True), recipe, resume=resume, prepared=prep)
    elif trainer is Trainer.sft:
        from training.sft import prepare_sft, run_sft

        cat = open_catalog(catalog)
        if check:
            r, args, *_ = prepare_sft(cat, recipe)
            summary = {"status": "ok", "recipe": str(recipe), "release": r.release, "output_dir": args.output_dir}
        else:
            summary = run_sft(cat, recipe, resume=resume)
    else:
        from training.grpo import prepare_grpo, run_grpo

        cat = open_catalog(catalog)
        if check:
            prepared = prepare_grpo(cat, recipe)
            summary = {"status": "ok", "recipe": str(recipe), "prompts": len(prepared.dataset),
                       "output_dir": prepared.args.output_dir}
        else:
            summary = run_grpo(cat, recipe, resume=resume)
    summary = without_steps(summary)
    if as_json:
        print_json(summary)
    else:
        console.print_json(data=summary, default=str)


@app.command(name="eval")
def eval_(
    recipe: Annotated[Path | None, typer.Argument(help="YAML eval recipe: backend (the model), benchmarks, k, "
                                                  "sampling (temperature 0.6, top-p 0.95 by default).")] = None,
    compare: Annotated[list[str] | None, typer.Option("--compare", help="Eval run ids (or model names) to print "
                                                      "side by side; repeat the option. Samples nothing.")] = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
    engine: Annotated[str, engine_option("the benchmarks' prompts in shards on a Ray cluster, one engine per "
                                         "worker")] = "local",
    address: AddressOpt = None,
    workers: EngineWorkersOpt = None,
) -> None:
    """Sample k answers per benchmark problem, judge them, store them as an eval run; print pass@1 and cons@k
    per benchmark. The same model and recipe again adds nothing, on either engine."""
    from training.evaluate import compare_runs, print_scores, run_eval

    if recipe is None and not compare:
        raise typer.BadParameter("give an eval RECIPE, or --compare RUN ... to compare stored eval runs")
    sampler = stage_runner(None, StageEngines("eval"), engine, address, workers)  # None: this process
    rows = []
    if recipe is not None:
        # A progress display on a terminal (never mixed into --json output).
        rows = run_eval(open_catalog(catalog, create=True), recipe, sampler=sampler,
                        progress=False if as_json else None)["scores"]
    if compare:
        rows = compare_runs(open_catalog(catalog), list(compare) + sorted({r["run_id"] for r in rows}))
    if as_json:
        print_json(rows)
    else:
        print_scores(rows)
