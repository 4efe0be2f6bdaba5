"""The filters' command: `r1f filter RECIPE`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from catalogs.clikit import (
    DEFAULT_CATALOG,
    AddressOpt,
    CatalogOpt,
    JsonOpt,
    command_group,
    engine_option,
    run_stage,
    stage_runner,
)

app = command_group()

# Engines besides this process (`--engine ray`): a package above this floor (scaleout) registers itself here when
# the r1f face loads it, so the filters never import it.
ENGINES: dict[str, Callable[..., dict[str, dict[str, int]]]] = {}


@app.command(name="filter")
def filter_(
    recipe: Annotated[Path, typer.Argument(help="YAML: `filters: [{name, params, where}]`, optional `where`. "
                                           "See recipes/filters_r1.yaml.")],
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
    engine: Annotated[str, engine_option("batches as tasks on a Ray cluster")] = "local",
    address: AddressOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="--engine ray: batches in flight "
                                                "(default: the cluster's CPUs).")] = None,
) -> None:
    """Run the recipe's filters; one decision per generation and filter, with the reason and measured value.
    Changing one filter's params recomputes only that filter."""
    from catalogs.recipes import load_model
    from filters.run import FilterRecipe, filter_catalog, resolve_paths

    spec = resolve_paths(load_model(recipe, FilterRecipe), recipe.resolve().parent)
    run_stage(stage_runner(filter_catalog, ENGINES, engine, address, workers), spec, catalog, as_json, "filter", "filters")
