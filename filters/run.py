"""`r1f filter RECIPE`: run a recipe's filters and record one decision per generation and filter.

Decisions are keyed by (generation, filter, version, params hash): changing one filter's threshold and
running again recomputes that filter only. Stateful filters (dedup, decontamination) see every selected
generation in catalog order, so that their index holds the kept ones, but write decisions only for
generations that lack one.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl
from pydantic import Field, ValidationInfo, field_validator

from catalogs.ids import canonical_json
from catalogs.recipes import Strict, recipe_file_of, resolve_paths, validate_nested
from catalogs.stage import StageStore, Step, Work, keep_freed_memory, run_steps
from filters.registry import FILTERS, get_filter, make_filter, params_hash, resolve_params


class FilterStep(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    where: str | None = None

    @field_validator("params")
    @classmethod
    def _typed(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Checked against the filter's declared params as the recipe loads; an unknown name is left for
        filter_catalog, which lists the known ones."""
        spec = FILTERS.get(info.data.get("name", ""))
        if spec is None:
            return params
        validate_nested(spec.params, params)
        return resolve_paths(params, spec.path_params, recipe_file_of(info))


class FilterRecipe(Strict):
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


class FilterStore(StageStore, Protocol):
    """What filtering needs from the catalog (catalogs.store.Catalog; the Ray driver hands in the same)."""

    def require_generations(self, verb: str) -> None: ...

    def add_filter_decisions(self, rows: pl.DataFrame) -> int: ...

    def decision_counts(self, filter_name: str, version: str, phash: str) -> tuple[int, int]: ...


def filter_catalog(catalog: FilterStore, recipe: FilterRecipe,
                   progress: Callable[[str, int, int], None] | None = None,
                   executor: Any = None) -> dict[str, dict[str, int]]:
    """Decide every generation the recipe's filters select and have not decided with these params.

    All filters share one pass over the texts (see catalogs.stage). The pure filters and the pure first pass
    of a stateful one (dedup's MinHash) run in `recipe.workers` processes; the stateful ones (dedup's index,
    decontamination) run here, batch after batch in catalog order. With an `executor` (a Ray cluster's) the
    pure parts run there instead of local processes; the ordered ones still run here."""
    for step in recipe.filters:  # unknown names and bad thresholds fail before any work
        resolve_params(step.name, step.params)
    catalog.require_generations("filter")
    steps = [_stage_step(step, recipe) for step in recipe.filters]  # bad benchmark files fail here, too
    keep_freed_memory()  # this process reads, pickles and dedups batch after batch, as the workers filter them
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
    if spec.kind == "rule":
        return Step(step.name, where, done, work=Work(_pure_filter, (step.name, params.model_dump())),
                    finish=lambda batch, decisions: keyed(decisions))
    assert spec.factory is not None  # a stateful filter declares it (FilterSpec checks)
    state = spec.factory(params)
    if spec.first_pass is not None:  # pure, beside the others; the state keeps order here
        return Step(step.name, where, done, see_done=True, work=Work(_first_pass, (step.name, params.model_dump())),
                    finish=lambda batch, features: keyed(state(batch, features)))
    return Step(step.name, where, done, see_done=True, finish=lambda batch, _: keyed(state(batch)))


def _pure_filter(name: str, params: dict[str, Any]) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return make_filter(name, params)


def _first_pass(name: str, params: dict[str, Any]) -> Callable[[pl.DataFrame], Any]:
    first_pass = get_filter(name).first_pass
    assert first_pass is not None  # only steps of filters that declare one hand it out
    return first_pass(resolve_params(name, params))


if TYPE_CHECKING:  # the type checker holds the catalog to what filtering needs
    from catalogs.store import Catalog

    _catalog: type[FilterStore] = Catalog
