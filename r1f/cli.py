"""`r1f`: one command line composed from the packages' own commands.

Each package owns its commands in its `cli` module (a Typer app of its own); this module copies them
into one app, so the catalog never imports a stage. Importing a package's `cli` module loads only typer
and rich: every command imports its stage lazily, so `r1f --help`, `show`, `sql` and `stats` start fast.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from catalogs.clikit import err, print_user_error
from catalogs.errors import UserError
from r1f.engines import ENGINES

# Order is the order of `r1f --help`: the catalog's commands (ingest, show, sql, stats) and what a release
# becomes (release, export, publish, report), then the stages (generate, judge, filter, train, eval, review), then
# the pipeline runner (run, status).
COMMAND_MODULES = ("catalogs.cli", "releases.cli", "factory.cli", "judges.cli", "filters.cli", "training.cli",
                   "review.cli", "pipelines.cli")

app = typer.Typer(
    name="r1f",
    help="r1-factory: build DeepSeek-R1-style reasoning datasets, with every sample's provenance in a catalog.\n\n"
    "Typical flow: ingest → generate → judge → filter → release → export. "
    "Every command takes --catalog DIR (or R1F_CATALOG; default ./catalog).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # The stage commands find their `--engine` choices (ray) here; see r1f/engines.py.
    context_settings={"obj": ENGINES},
)
for _name in COMMAND_MODULES:
    _sub = importlib.import_module(_name).app
    app.registered_commands.extend(_sub.registered_commands)
    app.registered_groups.extend(_sub.registered_groups)  # e.g. `r1f train sft`


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's world, models, recipes and catalog.")] = Path(
        "demo-out"),
    quick: Annotated[bool, typer.Option("--quick", help="A shortened run (fewer problems and steps, one R1-Zero "
                                        "seed): every stage, in a few minutes; the numbers mean little.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the task world and every training run.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch threads; the numbers depend on it, so it is part of the "
                                         "run's key.")] = 1,
) -> None:
    """Mini-R1: the DeepSeek-R1 pipeline in miniature on this machine's CPU. A task world, a tiny base model
    trained from scratch, R1-Zero, cold start, reasoning RL, rejection sampling with vLLM, the 3:1 release,
    distillation into a smaller student; a summary table and one released sample's lineage."""
    from r1f.demo import run_demo

    run_demo(out, quick=quick, seed=seed, threads=threads)


def _setup_logging() -> None:
    """INFO lines on stderr: through rich on a terminal (so they do not break progress bars), plain otherwise."""
    import logging

    if logging.getLogger().handlers:
        return
    level = os.environ.get("R1F_LOG_LEVEL", "INFO").upper()
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    else:
        logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Entry point: a `UserError` prints one clear message and exits 2, never a traceback; anything else is a
    bug and keeps its traceback."""
    _setup_logging()
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except UserError as exc:
        print_user_error(exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
