"""The judges' command: `r1f judge RECIPE`."""
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
# the r1f face loads it, so the judges never import it.
ENGINES: dict[str, Callable[..., dict[str, dict[str, int]]]] = {}


@app.command()
def judge(
    recipe: Annotated[Path, typer.Argument(help="YAML: `judges: [{name, params, where}]`, optional `where`, "
                                           "`workers`. See recipes/judge_r1.yaml.")],
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
    engine: Annotated[str, typer.Option("--engine", help="local: worker processes on this machine. ray: batches "
                                        "as tasks on a Ray cluster (see --address).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="--engine ray: the cluster to join (host:port, "
                                                "auto, ray://host:10001); default: start one on this machine.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="--engine ray: batches in flight "
                                                "(default: the cluster's CPUs).")] = None,
) -> None:
    """Run the recipe's judges over every selected generation that lacks their verdict (cached by judge version
    and params)."""
    from catalogs.recipes import load_model
    from judges.run import JudgeRecipe, judge_catalog

    run_stage(_engine(judge_catalog, engine, address, workers), load_model(recipe, JudgeRecipe), catalog, as_json,
              "judge", "judged now")


def _engine(local: Callable[..., Any], engine: str, address: str | None, workers: int | None) -> Callable[..., Any]:
    if engine == "local":
        return local
    if engine not in ENGINES:
        known = ", ".join(["local", *sorted(ENGINES)])
        raise UserError(f"--engine {engine}: not available here; use one of: {known} (the ray engine comes with "
                        f"the `r1f` command and needs Ray: pip install 'r1-factory[ray]')")
    return partial(ENGINES[engine], address=address, workers=workers)
