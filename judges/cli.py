"""The judges' command: `r1f judge RECIPE`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalogs.clikit import DEFAULT_CATALOG, CatalogOpt, JsonOpt, command_group, run_stage

app = command_group()


@app.command()
def judge(
    recipe: Annotated[Path, typer.Argument(help="YAML: `judges: [{name, params, where}]`, optional `where`, "
                                           "`workers`. See recipes/judge_r1.yaml.")],
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """Run the recipe's judges over every selected generation that lacks their verdict (cached by judge version
    and params)."""
    from catalogs.recipes import load_model
    from judges.run import JudgeRecipe, judge_catalog

    run_stage(judge_catalog, load_model(recipe, JudgeRecipe), catalog, as_json, "judge", "judged now")
