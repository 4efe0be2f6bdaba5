"""The judges' command: `r1f judge RECIPE`."""
from __future__ import annotations

from collections.abc import Callable

from catalogs.clikit import stage_command

# Engines besides this process (`--engine ray`): a package above this floor (scaleout) registers itself here when
# the r1f face loads it, so the judges never import it.
ENGINES: dict[str, Callable[..., dict[str, dict[str, int]]]] = {}

app = stage_command(
    "judge", "YAML: `judges: [{name, params, where}]`, optional `where`, `workers`. See recipes/judge_r1.yaml.",
    "Run the recipe's judges over every selected generation that lacks their verdict (cached by judge version "
    "and params).", ENGINES, "judges.run:JudgeRecipe", "judges.run:judge_catalog", "judge", "judged now")
