"""The judges' command: `r1f judge RECIPE`."""
from __future__ import annotations

from catalogs.clikit import stage_command
from catalogs.engines import StageEngines

# Engines besides this process (`--engine ray`): the r1f face hands them down (r1f/engines.py), so the judges
# never import them.
ENGINES = StageEngines("judge")

app = stage_command(
    "judge", "YAML: `judges: [{name, params, where}]`, optional `where`, `workers`. See recipes/judge_r1.yaml.",
    "Run the recipe's judges over every selected generation that lacks their verdict (cached by judge version "
    "and params).", ENGINES, "judges.run:JudgeRecipe", "judges.run:judge_catalog", "judge", "judged now")
