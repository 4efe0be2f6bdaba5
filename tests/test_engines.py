"""The engines besides this process (`--engine ray`) come from one table on the top floor (r1f/engines.py), handed
to the stage commands when `r1f` composes them: every entry resolves to its engine's function, a name the table
lacks is a clear error, and a stage's own command app, outside the composed `r1f`, offers the local engine only."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalogs.engines import EngineTable, StageEngines
from r1f.cli import app
from r1f.engines import ENGINES

# Each stage command and the keyword arguments it hands its engine (beside the recipe and catalog).
CALLS = {"generate": {"address", "workers"}, "judge": {"address", "workers", "progress"},
         "filter": {"address", "workers", "progress"},
         "eval": {"address", "workers", "run_id", "prompts", "resume_hint", "label", "progress"}}


def test_every_stage_with_an_engine_option_has_ray_and_each_entry_resolves() -> None:
    assert set(ENGINES.stages) == set(CALLS)
    for stage, engines in ENGINES.stages.items():
        assert "ray" in engines
        for name, target in engines.items():
            module, _, attr = target.partition(":")
            fn = getattr(__import__(module, fromlist=[attr]), attr)
            params = inspect.signature(fn).parameters
            assert CALLS[stage] <= set(params), (stage, name, target, sorted(params))


@pytest.mark.parametrize("stage", ["generate", "judge", "filter", "eval"])
def test_an_unknown_engine_is_a_clear_error(tmp_path: Path, tiny_model_dir: Path, stage: str) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text({"judge": "judges: [format]\n", "filter": "filters: [{name: hygiene}]\n"}.get(
        stage, f"backend: {{name: vllm, model: {tiny_model_dir}}}\n"))
    res = CliRunner().invoke(app, [stage, str(recipe), "--engine", "slurm", "--catalog", str(tmp_path / "cat")])
    assert res.exit_code != 0
    assert "--engine slurm: not available here; use one of: local, ray" in str(res.exception), res.output


def test_the_table_is_read_only_where_it_was_handed_down() -> None:
    """Outside a command line the face composed, a stage sees no engines; inside one, the face's table."""
    import typer

    assert dict(StageEngines("judge")) == {}
    table = EngineTable({"judge": {"ray": "scaleout.stages:judge_on_ray"}})
    with typer.Context(typer.main.get_command(app), obj=table):
        engines = StageEngines("judge")
        assert list(engines) == ["ray"] and engines["ray"].__name__ == "judge_on_ray"
        assert "ray" not in StageEngines("generate")


def test_a_bad_table_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="module:function"):
        EngineTable({"judge": {"ray": "scaleout.stages"}})
