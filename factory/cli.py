"""The factory's command: `r1f generate RECIPE`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from catalogs.clikit import DEFAULT_CATALOG, CatalogOpt, JsonOpt, command_group, open_catalog, print_json
from catalogs.errors import UserError

app = command_group()

# Engines besides this process (`--engine ray`): a package above this floor (scaleout) registers itself here when
# the r1f face loads it, so the factory never imports it.
ENGINES: dict[str, Callable[..., dict[str, Any]]] = {}


def engine_runner(engine: str) -> Callable[..., dict[str, Any]] | None:
    """None for the local engine; the registered runner otherwise; a clear error for an unknown name."""
    if engine == "local":
        return None
    if engine not in ENGINES:
        known = ", ".join(["local", *sorted(ENGINES)])
        raise UserError(f"--engine {engine}: not available here; use one of: {known} (the ray engine comes with "
                        f"the `r1f` command and needs Ray: pip install 'r1-factory[ray]')")
    return ENGINES[engine]


@app.command()
def generate(
    recipe: Annotated[Path, typer.Argument(help="YAML generation recipe: prompts, backend, template, sampling, "
                                           "samples_per_prompt, budget, judges. See recipes/.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the first rendered prompt and the plan "
                                          "(prompts, samples, estimated tokens); generate nothing.")] = False,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
    engine: Annotated[str, typer.Option("--engine", help="local: in this process. ray: shards of prompts on a Ray "
                                        "cluster, one engine per worker (see --address).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="--engine ray: the cluster to join (host:port, "
                                                "auto, ray://host:10001); default: start one on this machine.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="--engine ray: how many engines (default: "
                                                "one per GPU; one per CPU on a cluster without GPUs).")] = None,
) -> None:
    """Rejection sampling: sample each selected prompt in rounds until k samples pass the recipe's judges or its
    budget is spent. Killed or interrupted, the same command resumes without paying twice for a sample."""
    from factory.generate import generate_from_recipe, prepare_recipe

    # Arguments first: a recipe or model that cannot work fails here, before the catalog is opened, so a failed
    # command writes nothing. Generation needs ingested prompts, so it never creates a catalog either.
    checked = prepare_recipe(recipe)
    runner = engine_runner(engine)
    if runner is not None and not dry_run:  # a dry run starts no cluster: it prints the same plan either way
        summary = runner(checked, open_catalog(catalog, create=False), address=address, workers=workers)
    else:
        summary = generate_from_recipe(checked, open_catalog(catalog, create=False), dry_run=dry_run)
    if as_json:
        print_json(summary)
