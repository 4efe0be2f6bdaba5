"""`r1f train grpo RECIPE`: trl's GRPOTrainer with the judges as rewards, on prompts from the catalog.

Prompts come from a release (each prompt once) or a `where` clause over the catalog's prompts, optionally
narrowed to the pass-rate window rejection sampling recorded in `prompt_stats` (0.1-0.9 keeps the prompts a
policy can still learn from). Each is shown through a factory template (R1-Zero's plain prompt for a base
model), and the reference answer, tests and language travel as columns, which trl hands to the reward
functions: the judges, through `judges.rewards.reward_func`, one named function per judge, so trl logs
`rewards/<judge>/mean` each step beside completion lengths and KL. A reward with a `where` scores only the prompts
it selects (None elsewhere, which trl leaves out of the sum); a model judge (a reward model, the LLM judge) gets its
model from training/model_rewards.py, once per training.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalogs.errors import CatalogError, RecipeError
from training.model_rewards import ModelReward, open_all
from training.recipe import GRPORecipe, load_recipe
from training.runs import (
    TrainingStore,
    check_model,
    final_metrics,
    last_checkpoint,
    manifest_sha256,
    now,
    record,
    release_manifest,
    torch_dtype,
    training_id,
    write_model_card,
)

if TYPE_CHECKING:
    from catalogs.store import Catalog

log = logging.getLogger("training")


@dataclass
class Prepared:
    recipe: GRPORecipe
    args: Any
    tokenizer: Any
    dataset: Any
    reward_funcs: list[Any]
    selection: str
    release_sha: str | None
    # The model judges among the rewards: opened (their models loaded) when training starts, closed after.
    model_rewards: list[ModelReward]


def selection_sql(recipe: GRPORecipe) -> tuple[str, str]:
    """(SQL over the reader's views, a one-line description for the trainings record)."""
    p = recipe.prompts
    if p.release:
        lit = p.release.replace("'", "''")
        sql = f"prompt_id IN (SELECT prompt_id FROM release_members WHERE release_name = '{lit}')"
        desc = f"release {p.release}"
    elif p.where:
        sql, desc = f"({p.where})", p.where
    else:
        sql, desc = "true", "all prompts"
    if p.pass_rate is not None:
        lo, hi = p.pass_rate
        run = f"WHERE run_id = '{p.pass_rate_run.replace(chr(39), '')}' " if p.pass_rate_run else ""
        sql += (f" AND prompt_id IN (SELECT prompt_id FROM prompt_stats {run}GROUP BY prompt_id "
                f"HAVING avg(pass_rate) BETWEEN {float(lo)} AND {float(hi)})")
        desc += f", pass rate in [{lo}, {hi}]"
    return sql, desc


def applies_column(index: int) -> str:
    """The dataset column saying whether rewards[index] (one with a `where`) scores a row's completions."""
    return f"reward_{index}_applies"


def prompt_rows(catalog: TrainingStore, recipe: GRPORecipe) -> tuple[list[dict[str, Any]], str]:
    import duckdb

    sql, desc = selection_sql(recipe)
    applies = "".join(f", coalesce(({reward.where}), false) AS {applies_column(i)}"
                      for i, reward in enumerate(recipe.rewards) if reward.where)
    query = (f"SELECT prompt_id, source, messages, problem, answer, tests, kind, domain, language{applies} "
             f"FROM prompts WHERE {sql} ORDER BY prompt_id")
    if recipe.prompts.limit:
        query += f" LIMIT {int(recipe.prompts.limit)}"
    with catalog.reader() as con:
        for i, reward in enumerate(recipe.rewards):
            try:
                if reward.where:
                    con.execute(f"SELECT coalesce(({reward.where}), false) FROM prompts LIMIT 0")
            except duckdb.Error as exc:
                raise RecipeError(f"{recipe.where}: rewards[{i}].where: `{reward.where}` is not a valid SQL predicate "
                                  f"over the prompts view ({str(exc).splitlines()[0]}); fix it") from None
        try:
            cur = con.execute(query)
        except duckdb.Error as exc:
            raise RecipeError(f"{recipe.where}: prompts.where: `{recipe.prompts.where}` is not a valid SQL predicate "
                              f"over the prompts view ({str(exc).splitlines()[0]}); fix it") from None
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    if not rows:
        raise RecipeError(f"{recipe.where}: prompts: the selection ({desc}) matches no prompts in the catalog; "
                          f"ingest prompts (`r1f ingest`), run rejection sampling for pass rates, or widen it")
    if all(reward.where for reward in recipe.rewards):
        unscored = [row for row in rows if not any(row[applies_column(i)] for i in range(len(recipe.rewards)))]
        if unscored:
            first = unscored[0]
            raise RecipeError(f"{recipe.where}: rewards: no reward's `where` selects {len(unscored)} of the "
                              f"{len(rows)} prompts (first: {first['prompt_id']}, kind {first['kind']!r}, domain "
                              f"{first['domain']!r}); widen a reward's `where`, or narrow prompts.where")
    for r in rows:
        r["messages"] = json.loads(r["messages"]) if isinstance(r["messages"], str) else r["messages"]
    return rows, desc


def build_dataset(rows: list[dict[str, Any]], recipe: GRPORecipe) -> Any:
    import datasets

    from factory.templates import template_from_recipe

    template = template_from_recipe(recipe)
    records = []
    for row in rows:
        rendered = template.render(row)
        records.append({
            # A plain-mode template (R1-Zero, base models) gives the exact text; else chat messages.
            "prompt": rendered.raw_prompt if rendered.raw_prompt is not None else rendered.messages,
            "answer": row.get("answer") or "", "tests": row.get("tests") or "",
            "language": row.get("language") or "en", "prompt_id": row["prompt_id"], "problem": row.get("problem") or "",
            **{applies_column(i): bool(row[applies_column(i)]) for i, r in enumerate(recipe.rewards) if r.where}})
    kinds = {isinstance(r["prompt"], str) for r in records}
    if len(kinds) > 1:
        # trl needs one prompt format per dataset; keep the plain ones (a template mixing both is rare).
        records = [r for r in records if isinstance(r["prompt"], str)]
    return datasets.Dataset.from_list(records)


def prepare_grpo(catalog: Catalog, recipe_path: str | Path) -> Prepared:
    """Every check that needs no weights: recipe, trl config, group size, release, model path, prompts."""
    from judges.registry import get_judge
    from judges.rewards import gated_reward, reward_func

    recipe: GRPORecipe = load_recipe(recipe_path, GRPORecipe)
    sha = None
    if recipe.prompts.release:
        release_manifest(catalog, recipe, recipe.prompts.release, "prompts.release")
        sha = manifest_sha256(catalog, recipe.prompts.release)
    check_model(recipe)
    try:
        rows, desc = prompt_rows(catalog, recipe)
    except CatalogError as exc:
        raise RecipeError(f"{recipe.where}: prompts: {exc}") from None
    dataset = build_dataset(rows, recipe)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(recipe.model)
    if recipe.chat_template is not None:
        from training.chat import apply_template, resolve_chat_template

        apply_template(tokenizer, *resolve_chat_template(tokenizer, recipe.chat_template, recipe))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    funcs, model_rewards = [], []
    for i, r in enumerate(recipe.rewards):
        applies = applies_column(i) if r.where else None
        if get_judge(r.judge).kind == "model":
            judge = ModelReward(r, i, recipe.where)
            judge.check()
            model_rewards.append(judge)
            funcs.append(reward_func(r.judge, weight=r.weight, batch=judge, applies=applies))
        else:
            funcs.append(reward_func(r.judge, weight=r.weight, params=r.params, applies=applies))
        if r.gated_by:
            funcs[-1] = gated_reward(funcs[-1], [(g.judge, g.params) for g in r.gated_by])
    return Prepared(recipe, recipe.training_args(), tokenizer, dataset, funcs, desc, sha, model_rewards)


def run_grpo(catalog: Catalog, recipe_path: str | Path, *, resume: bool = False) -> dict[str, Any]:
    prep = prepare_grpo(catalog, recipe_path)
    recipe, args = prep.recipe, prep.args
    out = Path(args.output_dir)
    checkpoint = last_checkpoint(str(out), recipe) if resume else None
    out.mkdir(parents=True, exist_ok=True)

    tid = training_id("grpo", recipe, prep.release_sha)
    open_all(prep.model_rewards)  # before anything is recorded: a judge whose model does not load trains nothing
    started = now()
    common: dict[str, Any] = {"tid": tid, "kind": "grpo", "recipe": recipe,
                              "release": recipe.prompts.release, "release_sha": prep.release_sha,
                              "prompts_where": prep.selection}
    record(catalog, **common, status="running", metrics=None, started_at=started)

    from transformers import AutoModelForCausalLM
    from trl import GRPOTrainer

    model = AutoModelForCausalLM.from_pretrained(recipe.model, dtype=torch_dtype(recipe.dtype))
    log.info("grpo %s: %s on %d prompts (%s), rewards %s -> %s", tid, recipe.model, len(prep.dataset),
             prep.selection, ", ".join(r.judge for r in recipe.rewards), out)
    trainer = GRPOTrainer(model=model, reward_funcs=prep.reward_funcs, args=args, train_dataset=prep.dataset,
                          processing_class=prep.tokenizer)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except BaseException:
        record(catalog, **common, status="failed", metrics=None, started_at=started, finished_at=now())
        raise
    finally:
        for judge in prep.model_rewards:
            judge.close()
    trainer.save_model(str(out))
    prep.tokenizer.save_pretrained(str(out))
    write_model_card(trainer, str(out), **common)
    metrics = final_metrics(trainer, result)
    for key in list(trainer.state.log_history[-2].keys()) if len(trainer.state.log_history) > 1 else []:
        if key.startswith(("rewards/", "reward", "completions/mean_length", "kl")):
            metrics[key] = trainer.state.log_history[-2][key]
    record(catalog, **common, status="finished", metrics=metrics, started_at=started, finished_at=now())
    return {"training_id": tid, "output_dir": str(out.resolve()), "prompts": len(prep.dataset),
            "selection": prep.selection, "metrics": metrics, "log_history": trainer.state.log_history}
