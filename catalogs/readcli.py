"""The read commands, `r1f show`, `sql` and `stats`, without typer: what each prints, and a parser for their
plain argument lists.

`catalogs/cli.py` declares the three commands for typer (their help, options and errors) and runs them through
the functions here. The `r1f` entry point (`r1f/entry.py`) parses a plain argument list itself with `parse`
and runs the same functions, so the read commands start without loading typer; anything `parse` does not
take exactly as typer would (`--help`, `--`, a bad or unknown option, a missing argument) goes to typer,
which prints its usual answer. tests/catalogs/test_read_path.py checks `parse` against typer's own parse.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from . import clibase
from .clibase import print_json, table

if TYPE_CHECKING:
    from rich.console import Console

    from .store_prompts import PromptsAndGenerations


# ---------------------------------------------------------------------------------------------- the commands
def _open(catalog: Path, lock_timeout: float) -> PromptsAndGenerations:
    """The catalog as `open_catalog` opens it, with only the part the reads need (prompts, runs and generations,
    on the core): the other parts are code the read commands would import for nothing."""
    from .store_prompts import PromptsAndGenerations

    return PromptsAndGenerations(catalog, create=False, lock_timeout=lock_timeout)


def show(id: str, full: bool, catalog: Path, lock_timeout: float, as_json: bool) -> None:
    from .query import show as run_show

    data = run_show(_open(catalog, lock_timeout), id, full_text=full)
    if as_json:
        print_json(data)
        return
    render_show(data, clibase.console)


def render_show(data: dict[str, Any], console: Console) -> None:
    kind = data["type"]
    if kind == "generation":
        p, run = data["prompt"] or {}, data["run"] or {}
        console.rule(f"generation {data['generation_id']}")
        console.print(f"[bold]source[/]  {p.get('source')} · {p.get('source_uri')} · row {p.get('source_row')} "
                      f"({p.get('source_format')}, ingested {p.get('ingested_at')})")
        console.print(f"[bold]prompt[/]  {data['prompt_id']} · {p.get('kind')} · {p.get('domain')} · "
                      f"{p.get('language')} · reference answer: {p.get('answer')!r}")
        console.print(f"          {str(p.get('problem'))[:300]}")
        console.print(f"[bold]run[/]     {data['run_id']} · {run.get('kind')} · model {run.get('model')} · backend "
                      f"{run.get('backend')} · template {run.get('template')} {run.get('template_version') or ''} · "
                      f"sampling {json.dumps(run.get('sampling'))} · code {run.get('code_version')}")
        if data.get("imported_from"):
            published = f" · published as {data['published_id']}" if data.get("published_id") else ""
            console.print(f"[bold]imported[/] from {data['imported_from']} · row {data['source_row']} "
                          f"(ingest {data['ingest_id']}){published}", soft_wrap=True)
        console.print(f"[bold]sample[/]  index {data['sample_index']} · seed {data['seed']} · finish "
                      f"{data['finish_reason']} · tokens {data['prompt_tokens']}+{data['completion_tokens']} · "
                      f"{data['text_chars']} chars ({data['reasoning_chars']} reasoning, {data['answer_chars']} answer)")
        if data.get("edit_of"):
            console.print(f"[bold]edit[/]    of {data['edit_of']['generation_id']} by {data.get('edited_by')} at "
                          f"{data.get('edited_at')}", soft_wrap=True)
        console.print("[bold]reasoning[/]", markup=True)
        console.print(data["reasoning"], markup=False, highlight=False)
        console.print("[bold]answer[/]")
        console.print(data["answer"], markup=False, highlight=False)
        if data.get("edit_of") and "reasoning" in data["edit_of"]:
            console.print(f"[bold]original reasoning[/] ({data['edit_of']['generation_id']})")
            console.print(data["edit_of"]["reasoning"], markup=False, highlight=False)
            console.print("[bold]original answer[/]")
            console.print(data["edit_of"]["answer"], markup=False, highlight=False)
        for e in data.get("edits") or []:
            console.print(f"[bold]edited[/]  → {e['generation_id']} by {e['edited_by']} at {e['edited_at']}",
                          soft_wrap=True)
        console.print(table("verdicts", [{k: v for k, v in x.items() if k != "details"} for x in data["verdicts"]])
                      if data["verdicts"] else "[dim]verdicts: none yet (r1f judge)[/]")
        console.print(table("filter decisions", [{k: v for k, v in x.items() if k != "params"}
                                                  for x in data["filter_decisions"]])
                      if data["filter_decisions"] else "[dim]filter decisions: none yet (r1f filter)[/]")
        console.print(table("releases", data["releases"]) if data["releases"] else "[dim]releases: none[/]")
    elif kind == "prompt":
        console.rule(f"prompt {data['prompt_id']}")
        console.print(f"[bold]source[/] {data['source']} · {data['source_uri']} · row {data['source_row']}")
        console.print(f"[bold]kind[/] {data['kind']} · [bold]domain[/] {data['domain']} · [bold]language[/] "
                      f"{data['language']} · [bold]answer[/] {data['answer']!r}")
        for m in data["messages"]:
            console.print(f"[bold]{m['role']}[/]:", m["content"][:2000])
        if data["metadata"]:
            console.print("[bold]metadata[/]", json.dumps(data["metadata"], ensure_ascii=False)[:1000])
        console.print(table("generations", data["generations"]) if data["generations"] else "[dim]no generations[/]")
        if data["pass_rates"]:
            console.print(table("pass rates", data["pass_rates"]))
        console.print(f"[bold]releases[/] {', '.join(data['releases']) or 'none'}")
    else:
        print_json(data)


def sql(query: str, limit: int, csv: bool, catalog: Path, lock_timeout: float, as_json: bool) -> None:
    from .query import sql as run_sql

    cols, rows = run_sql(_open(catalog, lock_timeout), query,
                         limit=None if (as_json or csv or limit == 0) else limit + 1)
    if as_json:
        print_json([dict(zip(cols, r)) for r in rows])
    elif csv:
        import csv as csvmod

        w = csvmod.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        w.writerows(rows)
    else:
        more = limit and len(rows) > limit
        clibase.console.print(table(None, [dict(zip(cols, r)) for r in rows[: limit or None]]))
        if more:
            clibase.err.print(f"[dim]showing the first {limit} rows; --limit 0, --json or --csv for all[/]")


def stats(catalog: Path, lock_timeout: float, as_json: bool, cost: bool = False) -> None:
    if cost:
        stats_cost(catalog, lock_timeout, as_json)
        return
    from .query import stats as run_stats

    data = run_stats(_open(catalog, lock_timeout))
    if as_json:
        print_json(data)
        return
    console = clibase.console
    console.print(f"[bold]{data['catalog']}[/]: {data['sources']} sources · {data['prompts']} prompts · "
                  f"{data['runs']} runs · {data['generations']} generations · {data['judged_generations']} judged · "
                  f"{data['filtered_generations']} filtered · {data['releases']} releases")
    for key, title in (("prompts_by", "prompts"), ("generations_by_run", "generations per run"),
                       ("prompt_status", "rejection sampling"), ("judges", "judges"),
                       ("judge_reasons", "judge rejections by reason"), ("filters", "filters"),
                       ("filter_reasons", "filter drops by reason"), ("release_list", "releases")):
        if data[key]:
            console.print(table(title, data[key]))


def stats_cost(catalog: Path, lock_timeout: float, as_json: bool) -> None:
    """`r1f stats --cost`: usage per run, and the cost per accepted sample by source, domain and pass rate."""
    from .accounting import CANDIDATES_SQL, NO_PRICE, cost_facts

    with _open(catalog, lock_timeout).reader() as con:
        con.execute(f"CREATE TEMP TABLE scope AS {CANDIDATES_SQL}")
        data = cost_facts(con)
    if as_json:
        print_json(data)
        return
    console = clibase.console
    console.print(table("usage per run", data["usage"]) if data["usage"] else "no run has recorded usage yet")
    if data["total"] is None:
        console.print(NO_PRICE, soft_wrap=True)
        return
    for key, title in (("by_source", "cost per accepted sample, by source"),
                       ("by_domain", "by domain"), ("by_pass_rate", "by pass-rate bucket (difficulty)")):
        console.print(table(title, data[key]))
    console.print(table("all priced generations", [data["total"]]))


# ---------------------------------------------------------------------------------------------- the parser
# What catalogs/cli.py declares, as typer parses it: each command's argument, its flags, and its options that
# take a value, named by the parameter they set. Shared options (catalogs/clikit.py): --catalog/-c (or
# R1F_CATALOG), --lock-timeout, --json.
_SHARED_FLAGS = {"--json": "as_json"}
_SHARED_VALUES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "--catalog": ("catalog", str), "-c": ("catalog", str), "--lock-timeout": ("lock_timeout", float)}
_SHARED_DEFAULTS = {"lock_timeout": 60.0, "as_json": False}


class _Command(NamedTuple):
    function: Callable[..., None]
    argument: str | None  # the one positional argument's parameter
    flags: dict[str, str]  # option -> parameter
    values: dict[str, tuple[str, Callable[[str], Any]]]  # option -> (parameter, conversion): options with a value
    defaults: dict[str, Any]


COMMANDS = {
    "show": _Command(show, "id", {"--full": "full"}, {}, {"full": False}),
    "sql": _Command(sql, "query", {"--csv": "csv"}, {"--limit": ("limit", int)}, {"limit": 50, "csv": False}),
    "stats": _Command(stats, None, {"--cost": "cost"}, {}, {"cost": False}),
}
DEFAULT_CATALOG = "catalog"
CATALOG_ENV = "R1F_CATALOG"


def parse(argv: list[str]) -> tuple[Callable[..., None], dict[str, Any]] | None:
    """`show ID [options]`, `sql QUERY [options]` or `stats [options]` as typer would parse it: the command's
    function and its keyword arguments; None for anything else (typer then answers it)."""
    if not argv or argv[0] not in COMMANDS:
        return None
    function, argument, flags, values, defaults = COMMANDS[argv[0]]
    flags = {**flags, **_SHARED_FLAGS}
    values = {**values, **_SHARED_VALUES}
    params: dict[str, Any] = {}
    rest = argv[1:]
    while rest:
        token = rest.pop(0)
        if token.startswith("-"):  # an option, `--`, `--help`, `--opt=value`, `-cPATH`, or a negative number
            if token in flags and flags[token] not in params:
                params[flags[token]] = True
                continue
            if token not in values or values[token][0] in params or not rest or rest[0].startswith("-"):
                return None
            name, convert = values[token]
            try:
                params[name] = convert(rest.pop(0))
            except ValueError:
                return None
        elif argument is None or argument in params:
            return None  # an extra argument
        else:
            params[argument] = token
    if argument is not None and argument not in params:
        return None
    catalog = params["catalog"] if "catalog" in params else os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG
    if catalog == "" or (os.path.exists(catalog) and not os.access(catalog, os.R_OK)):
        return None  # typer's message for an unreadable path; an empty one typer reads as `.`
    params["catalog"] = Path(catalog)
    return function, {**defaults, **_SHARED_DEFAULTS, **params}
