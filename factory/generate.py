"""`generate_from_recipe`: what `r1f generate RECIPE` runs.

Validates everything it can before any generation (recipe keys and types, model path, template
placeholders, judge names, prompt lengths against the model's context), registers the run, then
runs adaptive rejection sampling, resuming from whatever the catalog already holds for the run.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from backends.config import backend_kwargs
from backends.render import count_prompt_tokens
from catalogs.ids import run_id as make_run_id
from catalogs.progress import RunProgress, print_summary
from factory.recipe import (
    Recipe,
    RecipeError,
    check_model_path,
    context_length,
    load_recipe,
    load_tokenizer,
)
from factory.sampling import BoundJudge, GenerationStopped, Policy, SamplingJob, SamplingStore, run_sampling
from factory.templates import Template, template_from_recipe

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger("factory")


class GenerateStore(SamplingStore, Protocol):
    """What `r1f generate` needs of a catalog: the sampling loop's store, and the recipe's prompts, the run's
    registration and the ids a dry run counts."""

    def prompts(self, where: str | None = None, limit: int | None = None) -> pl.DataFrame: ...

    def add_run(self, params: dict[str, Any]) -> str: ...

    def generation_ids(self, run_id: str) -> set[str]: ...

    def add_usage(self, row: dict[str, Any]) -> None: ...


def usage_row(recipe: Recipe, run_id: str, summary: dict[str, Any]) -> dict[str, Any] | None:
    """This session's yield accounting, from the sampling loop's summary (None: it did no work). Engine seconds
    are the backend calls' wall time; GPU-seconds multiply them by the GPUs a local engine held; the cost is the
    recipe's price per million tokens times the tokens this session used."""
    import sys
    import uuid

    if not summary.get("backend_calls"):
        return None
    engine_s = float(summary.get("engine_s") or 0.0)
    torch = sys.modules.get("torch")  # a GPU engine has loaded it; never imported here for this
    on_gpu = recipe.backend.name == "vllm" and torch is not None and torch.cuda.is_available()
    price = recipe.price_per_mtok
    tokens_in, tokens_out = int(summary.get("tokens_in") or 0), int(summary.get("tokens_generated") or 0)
    return {"run_id": run_id, "session": uuid.uuid4().hex, "backend": recipe.backend.name,
            "generations": summary.get("samples_generated", 0), "tokens_in": tokens_in, "tokens_out": tokens_out,
            "engine_s": engine_s, "gpu_s": engine_s * (recipe.backend.tensor_parallel_size or 1) if on_gpu else None,
            "price_input_per_mtok": price.input if price else None,
            "price_output_per_mtok": price.output if price else None,
            "cost": (tokens_in * price.input + tokens_out * price.output) / 1e6 if price else None}

def resolve_judges(recipe: Recipe, judges: dict[str, Callable[..., Any]] | None) -> list[BoundJudge]:
    """Bind each recipe judge name to a callable: `judges` first, then the judges package's registry."""
    if not recipe.judges:
        return []
    registry: dict[str, Callable[..., Any]] = {}
    try:  # judges/registry.py: name -> JudgeSpec (callable, with .version)
        from judges.registry import JUDGES as registered

        registry.update(registered)
    except ImportError:
        pass
    registry.update(judges or {})
    where = recipe.source_path or "<recipe>"
    bound = []
    for i, spec in enumerate(recipe.judges):
        fn = registry.get(spec.name)
        if fn is None:
            known = ", ".join(sorted(registry)) or "(none registered)"
            raise RecipeError(f"{where}: judges[{i}].name: unknown judge {spec.name!r}; use one of: {known}")
        fixed = None
        if spec.name not in (judges or {}):  # a registry judge: verdicts keyed as `r1f judge` keys them
            from judges.run import versioned

            fixed = versioned(spec.name, dict(spec.params))
        bound.append(BoundJudge(spec.name, fn, dict(spec.params), fixed))
    return bound


def run_params(recipe: Recipe, template: Template) -> dict[str, Any]:
    return {
        "model": recipe.backend.model,
        "model_sha256": recipe.backend.model_sha256(),
        "backend": recipe.backend.name,
        "template": template.name,
        "template_version": template.run_version,
        "sampling": recipe.sampling_params(),
        "recipe": recipe.model_dump(mode="json", exclude={"source_path"}),
        "kind": "generate",
    }


def policy_of(recipe: Recipe) -> Policy:
    """The recipe's rejection-sampling policy: k accepted per prompt, in rounds, within the budget."""
    return Policy(k=recipe.k, round_size=recipe.round_size, max_samples=recipe.budget.max_samples,
                  retry_samples=recipe.retry_samples, max_round_size=recipe.max_round_size)


def sampling_job(recipe: Recipe, template: Template, judges: list[BoundJudge], run_id: str,
                 prompts: list[dict[str, Any]], resume_hint: str, **extra: Any) -> SamplingJob:
    """What the sampling loop runs for a recipe's prompts under a registered run: the one place a recipe becomes
    a job, for `r1f generate`, `r1f eval` and each Ray worker alike (so every engine samples the same way)."""
    return SamplingJob(
        run_id=run_id, prompts=prompts, render=template.render, markers=template.markers, policy=policy_of(recipe),
        temperature=recipe.sampling.temperature, top_p=recipe.sampling.top_p,
        max_tokens=recipe.sampling.max_tokens, stop=recipe.sampling.stop, judges=judges,
        chat_template_kwargs=dict(recipe.backend.chat_template_kwargs),
        chunk_prompts=recipe.output.chunk_prompts, resume_hint=resume_hint,
        commit_every=recipe.output.commit_every, commit_interval_s=recipe.output.commit_seconds, **extra)


def check_prompt_lengths(recipe: Recipe, template: Template, prompts: list[dict[str, Any]], backend: Any) -> list[int] | None:
    """Error naming the prompt if one is longer than the model's context. Returns token counts, if known."""
    tokenizer = getattr(backend, "tokenizer", None) if backend is not None else None
    tokenizer = tokenizer or load_tokenizer(recipe)
    limit = getattr(backend, "max_model_len", None) if backend is not None else None
    limit = limit or context_length(recipe)
    if tokenizer is None:
        return None
    counts = []
    for p in prompts:
        r = template.render(p)
        counts.append(count_prompt_tokens(tokenizer, r.messages, r.raw_prompt, recipe.backend.chat_template_kwargs))
    if limit:
        too_long = [(p["prompt_id"], n) for p, n in zip(prompts, counts) if n >= limit]
        if too_long:
            where = recipe.source_path or "<recipe>"
            listed = ", ".join(f"{pid} ({n} tokens)" for pid, n in too_long[:5])
            more = f" and {len(too_long) - 5} more" if len(too_long) > 5 else ""
            raise RecipeError(
                f"{where}: prompts: {len(too_long)} prompt(s) are longer than the model's context of {limit} "
                f"tokens: {listed}{more}; raise backend.max_model_len (if the model supports it) or leave them "
                f"out with prompts.where"
            )
        worst = max(counts, default=0)
        if worst + recipe.sampling.max_tokens > limit:
            log.warning("the longest prompt (%d tokens) plus sampling.max_tokens (%d) exceeds the context (%d); "
                        "its samples may be cut short", worst, recipe.sampling.max_tokens, limit)
    return counts


def prepare_recipe(recipe_path: Path | str, *, check_model: bool = True) -> Recipe:
    """Load a recipe and run every check that needs neither the catalog nor the model: keys and types, the model
    (a local folder, or a Hub id in the cache or on the Hub), the template. The CLI runs this before it opens the
    catalog, so a command that fails on its arguments writes nothing."""
    recipe = load_recipe(Path(recipe_path))
    if check_model:
        check_model_path(recipe)
    template_from_recipe(recipe)
    return recipe


def select_prompts(recipe: Recipe, catalog: GenerateStore) -> list[dict[str, Any]]:
    """The recipe's prompts from the catalog; an error naming `prompts.where` when it is bad or selects none."""
    from catalogs import CatalogError

    where = recipe.source_path or Path("<recipe>")
    try:
        df = catalog.prompts(where=recipe.prompts.where, limit=recipe.prompts.limit)
    except CatalogError as exc:
        raise RecipeError(f"{where}: prompts.where: {exc}; fix the predicate") from None
    prompts = df.to_dicts() if len(df) else []
    if not prompts:
        raise RecipeError(
            f"{where}: prompts: the selection (where={recipe.prompts.where!r}, limit={recipe.prompts.limit}) "
            f"matches no prompts in the catalog; ingest prompts first (`r1f ingest`) or widen prompts.where"
        )
    return prompts


def generate_from_recipe(
    recipe_path: Path | Recipe,
    catalog: GenerateStore,
    dry_run: bool = False,
    judges: dict[str, Callable[..., Any]] | None = None,
    backend: Any = None,
    *,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run a generation recipe (a path, or a Recipe from `prepare_recipe`) against `catalog`; returns a summary.

    `judges` maps judge names in the recipe to callables `judge(sample) -> verdict-like`. `backend`
    overrides the recipe's backend (it is not closed here); otherwise one is built from the recipe once there is
    work for it (a rerun of a finished recipe never loads the model) and closed at the end. `progress` forces
    the progress bar on/off (default: on when stdout is a terminal).
    A Ctrl-C returns a summary with status 'interrupted'; a backend that keeps failing raises
    `GenerationStopped` (with `.summary`). Either way what was finished is committed.
    """
    if isinstance(recipe_path, Recipe):
        recipe = recipe_path
        recipe_path = recipe.source_path or Path("<recipe>")
    else:
        recipe_path = Path(recipe_path)
        recipe = prepare_recipe(recipe_path, check_model=backend is None)  # a backend handed in is the model
    template = template_from_recipe(recipe)
    bound = resolve_judges(recipe, judges)

    prompts = select_prompts(recipe, catalog)
    params = run_params(recipe, template)
    policy = policy_of(recipe)
    resume_hint = (f"rerun `r1f generate {recipe_path}` with the same recipe and catalog to resume "
                   "(finished samples are kept and not generated again)")

    if dry_run:
        counts = check_prompt_lengths(recipe, template, prompts, backend)
        return _dry_run(recipe, template, prompts, counts, params, policy, catalog)

    def before_work(open_prompts: list[dict[str, Any]]) -> None:
        # Only once there is work: the length check loads a tokenizer (transformers, torch), which a rerun of a
        # finished recipe does not need. It still comes before any generation, and before the run is registered.
        check_prompt_lengths(recipe, template, open_prompts, backend)
        catalog.add_run(params)

    run_id = make_run_id(params)
    job = sampling_job(recipe, template, bound, run_id, prompts, resume_hint, before_work=before_work)
    opened: list[Any] = []

    def open_backend() -> Any:
        from backends import get_backend

        opened.append(get_backend(recipe.backend.name, **backend_kwargs(recipe.backend)))
        return opened[-1]

    log.info("run %s: %d prompts, k=%d, template %s %s, backend %s", run_id, len(prompts), recipe.k,
             template.name, template.run_version, recipe.backend.name)
    try:
        with RunProgress(len(prompts), label=recipe.name or "generate", enabled=progress) as bar:
            try:
                summary = run_sampling(job, backend if backend is not None else open_backend, catalog, bar)
            except GenerationStopped as exc:  # what the failed session used was still paid for
                _record_usage(catalog, recipe, run_id, exc.summary or {})
                raise
            _record_usage(catalog, recipe, run_id, summary)
            print_summary(summary, enabled=bar.enabled)
    finally:
        for b in opened:
            try:
                b.close()
            except Exception:
                log.exception("closing the backend failed")
    return summary


def _record_usage(catalog: GenerateStore, recipe: Recipe, run_id: str, summary: dict[str, Any]) -> None:
    row = usage_row(recipe, run_id, summary)
    if row is not None:
        catalog.add_usage(row)


def _dry_run(recipe: Recipe, template: Template, prompts: list[dict[str, Any]], counts: list[int] | None,
             params: dict[str, Any], policy: Policy, catalog: GenerateStore) -> dict[str, Any]:
    from rich.console import Console

    console = Console()
    first = template.render(prompts[0])
    run_id = make_run_id(params)
    existing = len(catalog.generation_ids(run_id))
    n = len(prompts)
    first_round = n * policy.round_size
    most = n * (policy.max_samples + policy.retry_samples)
    prompt_tokens = sum(counts) if counts else None
    avg_prompt = (prompt_tokens / n) if prompt_tokens is not None else None
    est_first = first_round * recipe.sampling.max_tokens
    plan = {
        "status": "dry_run", "run_id": run_id, "template": template.name, "template_version": template.run_version,
        "prompts": n, "samples_per_prompt": recipe.k, "first_round_samples": first_round,
        "max_samples": most, "existing_samples": existing,
        "estimated_prompt_tokens_per_sample": round(avg_prompt, 1) if avg_prompt is not None else None,
        "estimated_completion_tokens_first_round": est_first,
        "estimated_completion_tokens_max": most * recipe.sampling.max_tokens,
        "first_prompt": first.raw_prompt if first.raw_prompt is not None else first.messages,
    }
    console.rule("first rendered prompt")
    if first.raw_prompt is not None:
        console.print(first.raw_prompt, markup=False, highlight=False)
    else:
        for m in first.messages:
            console.print(f"[bold]{m['role']}[/bold]:")
            console.print(m["content"], markup=False, highlight=False)
    console.rule("plan")
    console.print(
        f"run {run_id}: {n} prompts, k={recipe.k} accepted each; first round {first_round} samples; at most "
        f"{most} samples (budget {policy.max_samples} + retry {policy.retry_samples} per prompt); "
        f"{existing} already in the catalog.\n"
        f"estimated tokens: prompts ~{avg_prompt if avg_prompt is None else round(avg_prompt)} per sample; "
        f"completions up to {est_first:,} in the first round (max_tokens {recipe.sampling.max_tokens}), "
        f"up to {most * recipe.sampling.max_tokens:,} in all. Nothing was generated (dry run).",
        markup=False, highlight=False,
    )
    return plan

