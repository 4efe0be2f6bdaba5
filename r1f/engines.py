"""The one table of engines besides this process, per stage command: `--engine NAME` -> "module:function".

The face gives it to the command line's root context when it composes the commands (`r1f/cli.py`), and each stage
command finds its own row there (`catalogs.engines.StageEngines`), so no stage imports the engines above it and
no module writes into another's registry. A function is imported only when a command runs on its engine. A new
engine is one line per stage it serves.
"""
from __future__ import annotations

from catalogs.engines import EngineTable

ENGINES = EngineTable({
    # generate(recipe, catalog, *, address, workers): a prepared generation recipe
    "generate": {"ray": "scaleout.generate:generate_on_ray"},
    # sampler(recipe, catalog, *, run_id, prompts, resume_hint, label, progress, address, workers): `r1f eval`
    # hands in its benchmarks' prompts under the eval run it registered
    "eval": {"ray": "scaleout.generate:sample_on_ray"},
    # runner(catalog, recipe, progress, *, address, workers), as judges.run.judge_catalog and filters.run.filter_catalog
    "judge": {"ray": "scaleout.stages:judge_on_ray"},
    "filter": {"ray": "scaleout.stages:filter_on_ray"},
})
