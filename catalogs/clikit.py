"""What every package's commands share: the common options, JSON and table output, opening the catalog,
and running a judge or filter recipe with one progress display.

Each package owns its commands (`catalogs/cli.py`, `factory/cli.py`, `judges/cli.py`, ...); the `r1f`
face composes them. This module imports only typer and rich, so `r1f --help` stays fast.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.table import Table

    from .store import Catalog

console = Console()
err = Console(stderr=True)

CatalogOpt = Annotated[Path, typer.Option("--catalog", "-c", envvar="R1F_CATALOG",
                                          help="Catalog folder (created by the first ingest).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
LockOpt = Annotated[float, typer.Option("--lock-timeout", help="Seconds to wait while another process commits.")]
DEFAULT_CATALOG = Path("catalog")


def command_group() -> typer.Typer:
    """A package's own Typer app; the face copies its commands into `r1f`."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def open_catalog(catalog: Path, create: bool = False, lock_timeout: float = 60.0) -> Catalog:
    from .store import Catalog

    return Catalog(catalog, create=create, lock_timeout=lock_timeout)


def table(title: str | None, rows: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    out = Table(title=title, title_justify="left")
    for col in (rows[0].keys() if rows else []):
        out.add_column(str(col), overflow="fold")
    for r in rows:
        out.add_row(*("" if v is None else str(v) for v in r.values()))
    return out


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
