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
    batch_rows: int = Field(default=2000, ge=1)


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
                   progress: Callable[[str, int, int], None] | None = None) -> dict[str, dict[str, int]]:
    for step in recipe.filters:  # unknown names and bad thresholds fail before any work
        resolve_params(step.name, step.params)
    catalog.require_generations("filter")
    summary: dict[str, dict[str, int]] = {}
    for step in recipe.filters:
        spec = get_filter(step.name)
        phash = params_hash(step.name, step.params)
        params_json = resolve_params(step.name, step.params).model_dump(mode="json")
        run = make_filter(step.name, step.params)
        counts = {"decided": 0, "passed": 0}
        total = {"n": 0}

        def on_total(n: int, _t: dict[str, int] = total, _name: str = step.name) -> None:
            _t["n"] = n
            if progress:
                progress(_name, 0, n)

        without = None if spec.stateful else ("filter", step.name, spec.version, phash)
        for batch in catalog.iter_samples(where=[recipe.where, step.where], without=without,
                                          batch_rows=recipe.batch_rows, on_total=on_total):
            decisions: pl.DataFrame = run(batch)
            rows = [dict(d, params_hash=phash, params=params_json) for d in decisions.iter_rows(named=True)]
            counts["decided"] += catalog.add_filter_decisions(rows)
            if progress:
                progress(step.name, counts["decided"], total["n"])
        counts["passed"], counts["total"] = catalog.decision_counts(step.name, spec.version, phash)
        summary[step.name] = counts
    return summary
