"""The filters' command: `r1f filter RECIPE`."""
from __future__ import annotations

from catalogs.clikit import stage_command
from catalogs.engines import StageEngines

# Engines besides this process (`--engine ray`): the r1f face hands them down (r1f/engines.py), so the filters
# never import them.
ENGINES = StageEngines("filter")

app = stage_command(
    "filter", "YAML: `filters: [{name, params, where}]`, optional `where`. See recipes/filters_r1.yaml.",
    "Run the recipe's filters; one decision per generation and filter, with the reason and measured value. "
    "Changing one filter's params recomputes only that filter.", ENGINES, "filters.run:FilterRecipe",
    "filters.run:filter_catalog", "filter", "filters")
