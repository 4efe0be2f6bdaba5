"""The judges' command: `r1f judge RECIPE`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from catalogs.clikit import stage_command

# Engines besides this process (`--engine ray`): a package above this floor (scaleout) registers itself here when
# the r1f face loads it, so the judges never import it.
ENGINES: dict[str, Callable[..., dict[str, dict[str, int]]]] = {}


def _stage() -> tuple[Any, Callable[..., dict[str, dict[str, int]]]]:
    from judges.run import JudgeRecipe, judge_catalog

    return JudgeRecipe, judge_catalog


app = stage_command(
    "judge", "YAML: `judges: [{name, params, where}]`, optional `where`, `workers`. See recipes/judge_r1.yaml.",
    "Run the recipe's judges over every selected generation that lacks their verdict (cached by judge version "
    "and params).", ENGINES, _stage, "judge", "judged now")
