"""Engines besides this process (`--engine ray`), as the `r1f` face hands them down to the stage commands.

A stage command (generate, judge, filter, eval) stands on a floor below the engine that runs it elsewhere
(scaleout), so it may not import it, and no module writes into another's registry. The face, on the top floor,
holds the one table of engines (stage -> engine name -> "module:function") and gives it to the command line's
root context when it composes the commands; a command looks its engine up by name through `StageEngines`, and
the function is imported only then, so `r1f --help` loads no engine.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class EngineTable:
    """For each stage command, its engines: name -> "module:function", imported when a command runs on it.
    (A plain class, not a dataclass: `r1f --help` builds it, and a dataclass costs a millisecond to define.)"""

    def __init__(self, stages: Mapping[str, Mapping[str, str]]) -> None:
        self.stages = stages
        for stage, engines in stages.items():
            for name, target in engines.items():
                module, _, attr = target.partition(":")
                if not module or not attr or name == "local":
                    raise ValueError(f"engine table: {stage}.{name} = {target!r}; give a name other than local "
                                     "and a target as module:function")

    def __repr__(self) -> str:
        return f"EngineTable({dict(self.stages)!r})"


def _current_context() -> Any:
    """The running command's context, or None. Typer passes it only to a command that asks for a `ctx` parameter;
    reading it here keeps the stage commands' signatures as they are. Typer 0.2x runs on its own copy of click."""
    try:
        globals_ = importlib.import_module("typer._click.globals")
    except ImportError:  # a typer before 0.2x, which runs on click itself
        globals_ = importlib.import_module("click.globals")
    return globals_.get_current_context(silent=True)


class StageEngines(Mapping[str, Callable[..., Any]]):
    """The engines of one stage command, read from the table the face handed down (none when the command runs
    outside the composed `r1f`, e.g. from its package's own Typer app)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def _targets(self) -> Mapping[str, str]:
        ctx = _current_context()
        table = ctx.find_object(EngineTable) if ctx is not None else None
        return table.stages.get(self.stage, {}) if table is not None else {}

    def __getitem__(self, name: str) -> Callable[..., Any]:
        from catalogs.clikit import _attr  # the one "module:attr" import (stage_command's recipe and runner too)

        fn: Callable[..., Any] = _attr(self._targets()[name])
        return fn

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets())

    def __len__(self) -> int:
        return len(self._targets())

    def __repr__(self) -> str:
        return f"StageEngines({self.stage!r})"
