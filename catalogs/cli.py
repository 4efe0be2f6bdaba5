"""The catalog's commands: ingest, show, sql, stats. The `r1f` face composes them.

Imports are lazy so that `r1f show` and `r1f sql` start fast: nothing heavier than DuckDB loads on the
read path, and pyarrow, datasets and polars load only in the commands that need them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .clikit import (
    DEFAULT_CATALOG,
    CatalogOpt,
    JsonOpt,
    LockOpt,
    command_group,
    console,
    err,
    print_json,
    table,
)
from .clikit import open_catalog as _open
from .errors import CatalogError

app = command_group()


# ---------------------------------------------------------------------------------------------- ingest
@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="JSONL, JSON, Parquet, or a folder saved with datasets' save_to_disk.")],
    source: Annotated[str | None, typer.Option(help="Name of this source (default: the file name).")] = None,
    generations: Annotated[bool, typer.Option("--generations", help="Import responses made elsewhere as a run of "
                                              "their own (needs --model).")] = False,
    model: Annotated[str | None, typer.Option(help="With --generations: the model that wrote them.")] = None,
    rename: Annotated[list[str] | None, typer.Option(help="Map a column: OLD=NEW, e.g. question=problem. "
                                                        "Repeatable.")] = None,
    kind: Annotated[str | None, typer.Option(help="Default kind for rows without one: reasoning or "
                                                "non_reasoning.")] = None,
    domain: Annotated[str | None, typer.Option(help="Default domain for rows without one.")] = None,
    language: Annotated[str | None, typer.Option(help="Default language for rows without one "
                                                    "(else guessed from the script).")] = None,
    split: Annotated[str | None, typer.Option(help="Split to read from a saved DatasetDict.")] = None,
    max_record_mb: Annotated[float, typer.Option(help="Largest record accepted, in MiB.")] = 16.0,
    choices: Annotated[list[str] | None, typer.Option(help="Multiple choice (GPQA-style): the field holding a list "
                                                      "of options, or one field per option (repeat the option); "
                                                      "the prompt lists them as A), B), ... and the answer (a "
                                                      "letter or an option's text) becomes the letter.")] = None,
    shuffle_choices: Annotated[bool, typer.Option("--shuffle-choices", help="With --choices: order the options by a "
                                                  "seed from the question (for files that list the correct "
                                                  "option first, as GPQA does).")] = False,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """Add prompts (fields problem | prompt | messages, optional answer, tests, kind, domain, language; other
    columns kept as metadata) or, with --generations, responses made elsewhere. All or nothing: a bad record
    leaves the catalog unchanged."""
    from .ingest import IngestOptions
    from .ingest import ingest as run_ingest

    mapping = {}
    for item in rename or []:
        if "=" not in item:
            raise CatalogError(f"--rename {item!r}: write OLD=NEW, e.g. --rename question=problem")
        old, new = item.split("=", 1)
        mapping[old.strip()] = new.strip()
    if shuffle_choices and not choices:
        raise CatalogError("--shuffle-choices needs --choices FIELD: the field holding the options, or one "
                           "--choices per option field")
    opts = IngestOptions(source=source or file.name.split(".")[0], generations=generations, model=model,
                         rename=mapping, kind=kind, domain=domain, language=language, split=split,
                         max_record_bytes=int(max_record_mb * 2**20), choices=tuple(choices or ()),
                         shuffle_choices=shuffle_choices)
    folder_existed, fresh = catalog.exists(), not (catalog / "catalog.duckdb").exists()
    try:
        report = _ingest_with_progress(catalog, file, opts, run_ingest)
    except BaseException:
        if fresh:  # a failed first ingest leaves no empty catalog behind, and removes only what it made
            _remove_new_catalog(catalog, folder_existed)
        raise
    if as_json:
        print_json(report.as_dict())
        return
    what = "generations" if generations else "prompts"
    added = report.generations_added if generations else report.prompts_added
    present = report.generations_already_present if generations else report.prompts_already_present
    console.print(f"[green]ingested[/] {file} as source [bold]{report.source}[/]: {report.rows_read} rows read, "
                  f"{added} {what} added, {present} already in the catalog "
                  f"({report.seconds:.1f}s) → {catalog.resolve()}")
    if report.run_id:
        console.print(f"run {report.run_id} (model {model}); prompts added: {report.prompts_added}")


def _remove_new_catalog(catalog: Path, folder_existed: bool) -> None:
    import shutil

    if not folder_existed:
        shutil.rmtree(catalog, ignore_errors=True)
        return
    for name in ("catalog.duckdb", "catalog.duckdb.wal"):
        (catalog / name).unlink(missing_ok=True)
    for name in ("shards", "staging"):
        shutil.rmtree(catalog / name, ignore_errors=True)


def _ingest_with_progress(catalog: Path, file: Path, opts: Any, run_ingest: Any) -> Any:
    if not file.exists():
        raise CatalogError(f"{file}: no such file or folder.")
    cat = _open(catalog, create=True)
    if sys.stderr.isatty() and file.name.endswith((".jsonl", ".ndjson")):  # bytes read are known for JSONL
        from .progress import ByteProgress

        with ByteProgress(f"ingest {file.name}", file.stat().st_size, err) as progress:
            return run_ingest(cat, file, opts, progress=progress)
    return run_ingest(cat, file, opts)


# ---------------------------------------------------------------------------------------------- read side
@app.command()
def show(
    id: Annotated[str, typer.Argument(help="A prompt (p_…), generation (g_…) or run (r_…) id, or a release name.")],
    full: Annotated[bool, typer.Option("--full", help="Print whole texts instead of previews.")] = False,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    lock_timeout: LockOpt = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """The full lineage of one sample: source row, run parameters, every verdict, every filter decision, every
    release it is in."""
    from .query import show as run_show

    data = run_show(_open(catalog, lock_timeout=lock_timeout), id, full_text=full)
    if as_json:
        print_json(data)
        return
    _render_show(data)


def _render_show(data: dict[str, Any]) -> None:
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
            console.print(f"[bold]imported[/] from {data['imported_from']} · row {data['source_row']} "
                          f"(ingest {data['ingest_id']})")
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


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SELECT over the views prompts, runs, generations, "
                                         "generation_meta, verdicts, filter_decisions, prompt_stats, releases, "
                                         "release_members, sources, ingests.")],
    limit: Annotated[int, typer.Option(help="Rows to print in a table (0 = all). --json and --csv print all.")] = 50,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    lock_timeout: LockOpt = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Read-only SQL over the catalog's documented views (see README, "Querying the catalog")."""
    from .query import sql as run_sql

    cols, rows = run_sql(_open(catalog, lock_timeout=lock_timeout), query,
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
        console.print(table(None, [dict(zip(cols, r)) for r in rows[: limit or None]]))
        if more:
            err.print(f"[dim]showing the first {limit} rows; --limit 0, --json or --csv for all[/]")


@app.command()
def stats(catalog: CatalogOpt = DEFAULT_CATALOG, lock_timeout: LockOpt = 60.0, as_json: JsonOpt = False,
          cost: Annotated[bool, typer.Option("--cost", help="Yield accounting instead: tokens in and out and "
                                             "engine seconds per run, and the cost per accepted sample by source, "
                                             "domain and pass-rate bucket, with what the filters' drops cost.")]
          = False) -> None:
    """Counts per stage, accept rates, and drop reasons per judge and filter."""
    if cost:
        _stats_cost(catalog, lock_timeout, as_json)
        return
    from .query import stats as run_stats

    data = run_stats(_open(catalog, lock_timeout=lock_timeout))
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{data['catalog']}[/]: {data['sources']} sources · {data['prompts']} prompts · "
                  f"{data['runs']} runs · {data['generations']} generations · {data['judged_generations']} judged · "
                  f"{data['filtered_generations']} filtered · {data['releases']} releases")
    for key, title in (("prompts_by", "prompts"), ("generations_by_run", "generations per run"),
                       ("prompt_status", "rejection sampling"), ("judges", "judges"),
                       ("judge_reasons", "judge rejections by reason"), ("filters", "filters"),
                       ("filter_reasons", "filter drops by reason"), ("release_list", "releases")):
        if data[key]:
            console.print(table(title, data[key]))


def _stats_cost(catalog: Path, lock_timeout: float, as_json: bool) -> None:
    from .accounting import CANDIDATES_SQL, NO_PRICE, cost_facts

    with _open(catalog, lock_timeout=lock_timeout).reader() as con:
        con.execute(f"CREATE TEMP TABLE scope AS {CANDIDATES_SQL}")
        data = cost_facts(con)
    if as_json:
        print_json(data)
        return
    console.print(table("usage per run", data["usage"]) if data["usage"] else "no run has recorded usage yet")
    if data["total"] is None:
        console.print(NO_PRICE, soft_wrap=True)
        return
    for key, title in (("by_source", "cost per accepted sample, by source"),
                       ("by_domain", "by domain"), ("by_pass_rate", "by pass-rate bucket (difficulty)")):
        console.print(table(title, data[key]))
    console.print(table("all priced generations", [data["total"]]))
