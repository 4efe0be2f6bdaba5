"""The factory's command: `r1f generate RECIPE`."""
from __future__ import annotations

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
    engine_option,
    open_catalog,
    pick_engine,
    print_json,
)
from catalogs.engines import StageEngines

app = command_group()

# Engines besides this process (`--engine ray`): the r1f face hands them down (r1f/engines.py), so the factory
# never imports them.
ENGINES = StageEngines("generate")


@app.command()
def generate(
    recipe: Annotated[Path, typer.Argument(help="YAML generation recipe: prompts, backend, template, sampling, "
                                           "samples_per_prompt, budget, judges. See recipes/.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the first rendered prompt and the plan "
                                          "(prompts, samples, estimated tokens); generate nothing.")] = False,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
    engine: Annotated[str, engine_option("shards of prompts on a Ray cluster, one engine per worker")] = "local",
    address: AddressOpt = None,
    workers: EngineWorkersOpt = None,
) -> None:
    """Rejection sampling: sample each selected prompt in rounds until k samples pass the recipe's judges or its
    budget is spent. Killed or interrupted, the same command resumes without paying twice for a sample."""
    from factory.generate import generate_from_recipe, prepare_recipe

    # Arguments first: a recipe or model that cannot work fails here, before the catalog is opened, so a failed
    # command writes nothing. Generation needs ingested prompts, so it never creates a catalog either.
    checked = prepare_recipe(recipe)
    runner = pick_engine(ENGINES, engine)
    if runner is not None and not dry_run:  # a dry run starts no cluster: it prints the same plan either way
        summary = runner(checked, open_catalog(catalog, create=False), address=address, workers=workers)
    else:
        summary = generate_from_recipe(checked, open_catalog(catalog, create=False), dry_run=dry_run)
    if as_json:
        print_json(summary)


@app.command()
def rewrite(
    recipe: Annotated[Path, typer.Argument(help="YAML rewrite recipe: rewriter (e.g. readable), where (the "
                                           "generations to rewrite).")],
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """Post-processing: a declared rewriter reformats the selected generations (tags, the summary line; the
    reasoning stays verbatim) into new generations that name their parent (`r1f show` prints it). Judge them next."""
    from factory.rewrite import load_rewrite_recipe, rewrite_catalog

    summary = rewrite_catalog(open_catalog(catalog, create=False), load_rewrite_recipe(recipe))
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"{summary['rewritten']} of {summary['parents']} generations rewritten by {summary['rewriter']} "
                   f"({summary['added']} new); skipped: {summary['skipped'] or 'none'}")
