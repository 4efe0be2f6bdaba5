"""The catalog's commands: ingest, show, sql, stats. The `r1f` face composes them.

Imports are lazy so that the commands start fast: pyarrow, datasets and polars load only in the commands
that need them. The read commands run through `catalogs/readcli.py`, which the `r1f` entry point also calls
without typer.
"""
from __future__ import annotations

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
)
from .clikit import open_catalog as _open
from .errors import CatalogError

app = command_group()


# ---------------------------------------------------------------------------------------------- ingest
@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="JSONL, JSON, Parquet, a folder saved with datasets' save_to_disk, or "
                                         "a Hub dataset: hf://datasets/ORG/NAME.")],
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
    split: Annotated[str | None, typer.Option(help="Split to read from a saved DatasetDict or a Hub dataset.")] = None,
    config: Annotated[str | None, typer.Option(help="A Hub dataset's config (subset).")] = None,
    revision: Annotated[str | None, typer.Option(help="A Hub dataset's branch, tag or commit (default: main); its "
                                                 "commit sha is kept as the ingest's provenance.")] = None,
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
                         config=config, revision=revision,
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
    console.print(f"[green]ingested[/] {report.file if report.format == 'hub' else file} as source [bold]{report.source}[/]: {report.rows_read} rows read, "
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
    from .ingest import hub_repo_id

    if hub_repo_id(str(file)) is None and not file.exists():
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
    from . import readcli

    readcli.show(id, full=full, catalog=catalog, lock_timeout=lock_timeout, as_json=as_json)


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
    from . import readcli

    readcli.sql(query, limit=limit, csv=csv, catalog=catalog, lock_timeout=lock_timeout, as_json=as_json)


@app.command()
def stats(catalog: CatalogOpt = DEFAULT_CATALOG, lock_timeout: LockOpt = 60.0, as_json: JsonOpt = False,
          cost: Annotated[bool, typer.Option("--cost", help="Yield accounting instead: tokens in and out and "
                                             "engine seconds per run, and the cost per accepted sample by source, "
                                             "domain and pass-rate bucket, with what the filters' drops cost.")]
          = False) -> None:
    """Counts per stage, accept rates, and drop reasons per judge and filter."""
    from . import readcli

    readcli.stats(catalog=catalog, lock_timeout=lock_timeout, as_json=as_json, cost=cost)
