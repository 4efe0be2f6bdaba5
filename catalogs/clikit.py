"""What every package's commands share: the common options, JSON and table output, opening the catalog,
and running a judge or filter recipe with one progress display.

Each package owns its commands (`catalogs/cli.py`, `factory/cli.py`, `judges/cli.py`, ...); the `r1f`
face composes them. This module imports only typer and rich; its typer-free half (the consoles, JSON and
tables, opening the catalog) is `catalogs/clibase.py`, re-exported here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .clibase import console as console
from .clibase import err as err
from .clibase import open_catalog as open_catalog
from .clibase import print_json as print_json
from .clibase import print_user_error as print_user_error
from .clibase import table as table

_Local = TypeVar("_Local", bound="Callable[..., Any] | None")  # the local runner: None when the caller is it

CatalogOpt = Annotated[Path, typer.Option("--catalog", "-c", envvar="R1F_CATALOG",
                                          help="Catalog folder (created by the first ingest).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
LockOpt = Annotated[float, typer.Option("--lock-timeout", help="Seconds to wait while another process commits.")]
DEFAULT_CATALOG = Path("catalog")
AddressOpt = Annotated[str | None, typer.Option("--address", help="--engine ray: the cluster to join (host:port, "
                                                "auto, ray://host:10001); default: start one on this machine.")]
# --workers of the commands that sample (generate, eval): each Ray worker owns one engine.
EngineWorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="--engine ray: how many engines "
                                                      "(default: one per GPU; one per CPU on a cluster without "
                                                      "GPUs).")]


def engine_option(ray_help: str) -> Any:
    """The `--engine` option of a stage command; `ray_help` says what the ray engine does for that stage."""
    return typer.Option("--engine", help=f"local: on this machine. ray: {ray_help} (see --address).")


def pick_engine(engines: Mapping[str, Callable[..., Any]], engine: str) -> Callable[..., Any] | None:
    """None for the local engine; else the runner the r1f face handed down under that name (its table of engines,
    r1f/engines.py, so no stage imports them); a clear error for a name it does not know."""
    if engine == "local":
        return None
    if engine not in engines:
        from .errors import UserError

        known = ", ".join(["local", *sorted(engines)])
        raise UserError(f"--engine {engine}: not available here; use one of: {known} (the ray engine comes with "
                        f"the `r1f` command and needs Ray: pip install 'r1-factory[ray]')")
    return engines[engine]


def stage_runner(local: _Local, engines: Mapping[str, Callable[..., Any]], engine: str,
                 address: str | None, workers: int | None) -> _Local | Callable[..., Any]:
    """The stage's runner for `--engine`: the local one, or a registered engine bound to its cluster."""
    runner = pick_engine(engines, engine)
    if runner is None:
        return local
    from functools import partial

    return partial(runner, address=address, workers=workers)


def command_group() -> typer.Typer:
    """A package's own Typer app; the face copies its commands into `r1f`."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def stage_command(name: str, recipe_help: str, doc: str, engines: Mapping[str, Callable[..., Any]],
                  recipe_model: str, runner: str, key: str, title: str) -> typer.Typer:
    """The command group of a stage that runs a recipe over the catalog's generations (`r1f judge`, `r1f filter`):
    one command `name RECIPE` with --catalog, --json, --engine, --address and --workers. `recipe_model` and the
    local `runner` are "module:attr" names, imported when the command runs (so `r1f --help` imports no stage);
    `engines` are the stage's other engines (see pick_engine); `key` and `title` head the table of counts."""
    app = command_group()

    def command(
        recipe: Path = typer.Argument(..., help=recipe_help),
        catalog: CatalogOpt = DEFAULT_CATALOG,
        as_json: JsonOpt = False,
        engine: Annotated[str, engine_option("batches as tasks on a Ray cluster")] = "local",
        address: AddressOpt = None,
        workers: Annotated[int | None, typer.Option("--workers", min=1, help="--engine ray: batches in flight "
                                                    "(default: the cluster's CPUs).")] = None,
    ) -> None:
        from .recipes import load_model

        model, local = (_attr(ref) for ref in (recipe_model, runner))
        run_stage(stage_runner(local, engines, engine, address, workers), load_model(recipe, model), catalog,
                  as_json, key, title)

    command.__doc__ = doc
    app.command(name=name)(command)
    return app


def _attr(ref: str) -> Any:
    from importlib import import_module

    module, _, attr = ref.partition(":")
    return getattr(import_module(module), attr)


def run_stage(runner: Callable[..., dict[str, dict[str, int]]], spec: Any, catalog: Path, as_json: bool,
              key: str, title: str) -> dict[str, dict[str, int]]:
    """Run a judge or filter recipe over the catalog with the stage progress display, then print its counts."""
    from .progress import StageProgress

    with StageProgress(err) as progress:
        summary = runner(open_catalog(catalog), spec, progress=progress)
    if as_json:
        print_json(summary)
    else:
        console.print(table(title, [{key: k, **v} for k, v in summary.items()]))
    return summary
