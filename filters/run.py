"""`r1f filter RECIPE`: run a recipe's filters and record one decision per generation and filter.

Decisions are keyed by (generation, filter, version, params hash): changing one filter's threshold and
running again recomputes that filter only. Stateful filters (dedup, decontamination) see every selected
generation in catalog order, so that their index holds the kept ones, but write decisions only for
generations that lack one.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from catalogs.ids import canonical_json
from catalogs.stage import Step, Work, run_steps
from filters.base import prepare_batch
from filters.dedup import DedupIndex, DedupParams, dedup_features
from filters.registry import get_filter, make_filter, params_hash, resolve_params


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FilterStep(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    where: str | None = None


class FilterRecipe(_Strict):
    name: str | None = None
    description: str | None = None
    where: str | None = None
    filters: list[FilterStep]
    # Rows per batch: 1000 texts of 16 KB keep each process under ~0.9 GB with no loss of speed (2000: ~1.2 GB).
    batch_rows: int = Field(default=1000, ge=1)
    # Worker processes for the pure filters (1: all in this process). Beyond one batch only.
    workers: int = Field(default=2, ge=1)
    # Decisions are written at least every this many rows (and every 30 s).
    flush_rows: int = Field(default=50_000, ge=1)


# Params that name files; relative paths in a recipe are read from the recipe's folder.
PATH_PARAMS = {"benchmark_files"}


def resolve_paths(recipe: FilterRecipe, base: Path) -> FilterRecipe:
    steps = []
    for step in recipe.filters:
        params = dict(step.params)
        for key in PATH_PARAMS & set(params):
            value = params[key]
            paths = [value] if isinstance(value, str) else value
            if isinstance(paths, list):
                resolved = [str(p if Path(p).is_absolute() else (base / p).resolve()) for p in paths]
                params[key] = resolved[0] if isinstance(value, str) else resolved
        steps.append(step.model_copy(update={"params": params}))
    return recipe.model_copy(update={"filters": steps})



def filter_catalog(catalog: Any, recipe: FilterRecipe,
                   progress: Callable[[str, int, int], None] | None = None,
                   executor: Any = None) -> dict[str, dict[str, int]]:
    """Decide every generation the recipe's filters select and have not decided with these params.

    All filters share one pass over the texts (see catalogs.stage). The pure filters and dedup's MinHash run
    in `recipe.workers` processes; dedup's index and decontamination run here, batch after batch in
    catalog order. With an `executor` (a Ray cluster's) the pure parts run there instead of local processes;
    the ordered ones still run here."""
    for step in recipe.filters:  # unknown names and bad thresholds fail before any work
        resolve_params(step.name, step.params)
    catalog.require_generations("filter")
    steps = [_stage_step(step, recipe) for step in recipe.filters]  # bad benchmark files fail here, too
    done = run_steps(catalog, steps, write=lambda frames: catalog.add_filter_decisions(pl.concat(frames)),
                     batch_rows=recipe.batch_rows, progress=progress, workers=recipe.workers,
                     flush_rows=recipe.flush_rows, flush_s=30.0, executor=executor)
    summary: dict[str, dict[str, int]] = {}
    for step in recipe.filters:
        spec = get_filter(step.name)
        passed, total = catalog.decision_counts(step.name, spec.version, params_hash(step.name, step.params))
        summary[step.name] = {"decided": done[step.name]["done"], "passed": passed, "total": total}
    return summary


def _stage_step(step: FilterStep, recipe: FilterRecipe) -> Step:
    spec = get_filter(step.name)
    phash = params_hash(step.name, step.params)
    params = resolve_params(step.name, step.params)
    params_json = canonical_json(params.model_dump(mode="json"))

    def keyed(decisions: pl.DataFrame) -> pl.DataFrame:
        return decisions.with_columns(pl.lit(phash).alias("params_hash"), pl.lit(params_json).alias("params"))

    where = [recipe.where, step.where]
    done = ("filter", step.name, spec.version, phash)
    if not spec.stateful:
        return Step(step.name, where, done, work=Work(_pure_filter, (step.name, params.model_dump())),
                    finish=lambda batch, decisions: keyed(decisions))
    if step.name == "dedup":  # its MinHash is pure and runs beside the others; its index keeps order here
        index = DedupIndex(params)
        return Step(step.name, where, done, see_done=True, work=Work(_dedup_features, (params.model_dump(),)),
                    finish=lambda batch, features: keyed(index.apply(batch, features)))
    run = make_filter(step.name, step.params)
    return Step(step.name, where, done, see_done=True, finish=lambda batch, _: keyed(run(batch)))


def _pure_filter(name: str, params: dict[str, Any]) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return make_filter(name, params)


def _dedup_features(params: dict[str, Any]) -> Callable[[pl.DataFrame], Any]:
    p = DedupParams(**params)

    def features(batch: pl.DataFrame) -> Any:
        return dedup_features(prepare_batch(batch)[p.field].fill_null(""), p)

    return features
