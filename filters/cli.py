"""The filters' command: `r1f filter RECIPE`."""
from __future__ import annotations

from collections.abc import Callable

from catalogs.clikit import stage_command

# Engines besides this process (`--engine ray`): a package above this floor (scaleout) registers itself here when
# the r1f face loads it, so the filters never import it.
ENGINES: dict[str, Callable[..., dict[str, dict[str, int]]]] = {}

app = stage_command(
    "filter", "YAML: `filters: [{name, params, where}]`, optional `where`. See recipes/filters_r1.yaml.",
    "Run the recipe's filters; one decision per generation and filter, with the reason and measured value. "
    "Changing one filter's params recomputes only that filter.", ENGINES, "filters.run:FilterRecipe",
    "filters.run:filter_catalog", "filter", "filters")
