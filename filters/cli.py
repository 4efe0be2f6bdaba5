"""The filters' command: `r1f filter RECIPE`."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from catalogs.clikit import DEFAULT_CATALOG, CatalogOpt, JsonOpt, command_group, run_stage
from catalogs.errors import UserError

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
    engine: Annotated[str, typer.Option("--engine", help="local: worker processes on this machine. ray: batches "
                                        "as tasks on a Ray cluster (see --address).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="--engine ray: the cluster to join (host:port, "
                                                "auto, ray://host:10001); default: start one on this machine.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="--engine ray: batches in flight "
                                                "(default: the cluster's CPUs).")] = None,
) -> None:
    """Run the recipe's filters; one decision per generation and filter, with the reason and measured value.
    Changing one filter's params recomputes only that filter."""
    from catalogs.recipes import load_model
    from filters.run import FilterRecipe, filter_catalog, resolve_paths

    spec = resolve_paths(load_model(recipe, FilterRecipe), recipe.resolve().parent)
    run_stage(_engine(filter_catalog, engine, address, workers), spec, catalog, as_json, "filter", "filters")


def _engine(local: Callable[..., Any], engine: str, address: str | None, workers: int | None) -> Callable[..., Any]:
    if engine == "local":
        return local
    if engine not in ENGINES:
        known = ", ".join(["local", *sorted(ENGINES)])
        raise UserError(f"--engine {engine}: not available here; use one of: {known} (the ray engine comes with "
                        f"the `r1f` command and needs Ray: pip install 'r1-factory[ray]')")
    return partial(ENGINES[engine], address=address, workers=workers)
