"""The filters' command: `r1f filter RECIPE`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalogs.clikit import DEFAULT_CATALOG, CatalogOpt, JsonOpt, command_group, run_stage

app = command_group()


@app.command(name="filter")
def filter_(
    recipe: Annotated[Path, typer.Argument(help="YAML: `filters: [{name, params, where}]`, optional `where`. "
                                           "See recipes/filters_r1.yaml.")],
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """Run the recipe's filters; one decision per generation and filter, with the reason and measured value.
    Changing one filter's params recomputes only that filter."""
    from catalogs.recipes import load_model
    from filters.run import FilterRecipe, filter_catalog, resolve_paths

    spec = resolve_paths(load_model(recipe, FilterRecipe), recipe.resolve().parent)
    run_stage(filter_catalog, spec, catalog, as_json, "filter", "filters")
