"""The judges' command: `r1f judge RECIPE`."""
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
# the r1f face loads it, so the judges never import it.
ENGINES: dict[str, Callable[..., dict[str, dict[str, int]]]] = {}


@app.command()
def judge(
    recipe: Annotated[Path, typer.Argument(help="YAML: `judges: [{name, params, where}]`, optional `where`, "
                                           "`workers`. See recipes/judge_r1.yaml.")],
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
    engine: Annotated[str, engine_option("batches as tasks on a Ray cluster")] = "local",
    address: AddressOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="--engine ray: batches in flight "
                                                "(default: the cluster's CPUs).")] = None,
) -> None:
    """Run the recipe's judges over every selected generation that lacks their verdict (cached by judge version
    and params)."""
    from catalogs.recipes import load_model
    from judges.run import JudgeRecipe, judge_catalog

    run_stage(stage_runner(judge_catalog, ENGINES, engine, address, workers), load_model(recipe, JudgeRecipe), catalog, as_json,
              "judge", "judged now")
