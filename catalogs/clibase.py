"""The typer-free half of the command kit: the two consoles, JSON and table output, opening the catalog, and
the one way a command's error is printed.

`catalogs/clikit.py` (the typer half) re-exports all of it. The read commands (`catalogs/readcli.py`) use this
module alone, so `r1f show`, `sql` and `stats` load neither typer nor, until they print a table, rich.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from .errors import UserError
    from .store import Catalog

    console: Console  # stdout
    err: Console  # stderr: messages, progress, logging


def __getattr__(name: str) -> Any:
    """`console` and `err` are made on first use: importing rich costs more than a JSON answer."""
    if name in ("console", "err"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _console(name: str) -> Console:
    if name not in globals():
        from rich.console import Console

        made = Console(stderr=name == "err")
        if made.color_system is None:  # no colours (a pipe, a file): highlighting styles text that prints plain
            made = Console(stderr=name == "err", highlight=False)
        globals()[name] = made
    console: Console = globals()[name]
    return console


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


def print_user_error(exc: UserError) -> None:
    """A `UserError` as `r1f` prints it: one line on stderr, never a traceback (the caller exits 2)."""
    from rich.text import Text

    _console("err").print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
