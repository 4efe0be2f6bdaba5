"""The releases' commands: release, export, publish, report. The `r1f` face composes them.

Imports are lazy so that `r1f --help` starts fast: each command loads its module (and pyarrow, datasets,
huggingface_hub or matplotlib) only when it runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalogs.clikit import (
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
from catalogs.clikit import open_catalog as _open

app = command_group()


# ---------------------------------------------------------------------------------------------- releases
@app.command()
def release(
    name: Annotated[str, typer.Argument(help="Name of the release (frozen once made).")],
    where: Annotated[str | None, typer.Option(help="SQL predicate over release candidates (columns: source, "
                                                 "kind, domain, language, model, run_id, finish_reason, "
                                                 "completion_tokens, judged, judges_failed, filtered, "
                                                 "filters_failed). Default: passed every judge and filter.")] = None,
    recipe: Annotated[Path | None, typer.Option(help="YAML release recipe: per_prompt, prefer, reasoning / "
                                                   "non_reasoning totals or reasoning_share, seed, where. See "
                                                   "recipes/release_r1.yaml.")] = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """Freeze a named selection of generations, with a manifest (counts per source, domain, language, and what
    was excluded and why). Same catalog and selection → the same manifest, byte for byte."""
    from .release import ReleaseRecipe, create_release

    spec = None
    if recipe is not None:
        from catalogs.recipes import load_model

        spec = load_model(recipe, ReleaseRecipe)
    manifest = create_release(_open(catalog), name, where, recipe=spec)
    if as_json:
        print_json(manifest)
        return
    console.print(f"[green]release[/] [bold]{name}[/]: {manifest['members']} generations from "
                  f"{manifest['prompts']} prompts · members sha256 {manifest['members_sha256'][:16]}…")
    console.print(table("by source", [{"source": k, "samples": v} for k, v in manifest["by_source"].items()]))


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="Release to export.")],
    out: Annotated[Path | None, typer.Option(help="Output file or folder (default: NAME.parquet, "
                                                "NAME.jsonl or NAME/).")] = None,
    format: Annotated[str, typer.Option(help="parquet, jsonl, or hf (a folder datasets.load_dataset reads, with a "
                                        "dataset card and manifest).")] = "parquet",
    style: Annotated[str, typer.Option(help="messages (chat) or prompt_completion: the two formats trl reads; "
                                       "hub: both, plus model, run and verdict columns (what r1f publish uploads).")]
    = "messages",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    catalog: CatalogOpt = DEFAULT_CATALOG,
) -> None:
    """Write a release for training: chat `messages` or `prompt`/`completion` rows."""
    from .release import export_release

    out = out or Path(name + {"parquet": ".parquet", "jsonl": ".jsonl"}.get(format, ""))
    path = export_release(_open(catalog), name, out, fmt=format, style=style, overwrite=overwrite)
    console.print(f"[green]exported[/] release {name} → {path} ({format}, {style})")


# ---------------------------------------------------------------------------------------------- publish, report
@app.command()
def publish(
    name: Annotated[str, typer.Argument(help="Release to publish.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub dataset repo, ORG/DATASET (created if missing).")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[str | None, typer.Option(help="Branch to commit to (created if missing; default main).")]
    = None,
    out: Annotated[Path | None, typer.Option(help="Write the Hub folder here and upload nothing.")] = None,
    license: Annotated[str, typer.Option(help="License id for the card (e.g. apache-2.0, mit, cc-by-4.0); the "
                                         "sources' licenses apply.")] = "unknown",
    overwrite: Annotated[bool, typer.Option(help="With --out: replace an existing folder.")] = False,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """A release on the Hugging Face Hub: Parquet under data/ (configs all, reasoning, non_reasoning), a dataset
    card whose every figure comes from the catalog, the manifest and recipes, in one commit tagged NAME. The
    token comes from HF_TOKEN or `hf auth login` and is never printed or stored."""
    from .publish import build_folder, check_repo_id
    from .publish import publish as run_publish

    check_repo_id(repo_id)
    cat = _open(catalog)
    if out is not None:
        path = build_folder(cat, name, out, repo_id=repo_id, license=license, overwrite=overwrite)
        if as_json:
            print_json({"folder": str(path), "uploaded": False})
        else:
            console.print(f"[green]wrote[/] the Hub folder of release {name} → {path} (not uploaded; "
                          f"`datasets.load_dataset('{path}', 'all')` reads it)")
        return
    result = run_publish(cat, name, repo_id, private=private, revision=revision, license=license,
                         say=lambda msg: err.print(f"[dim]{msg}[/]", markup=True, highlight=False))
    if as_json:
        print_json(result)
        return
    if result["changed"]:
        console.print(f"[green]published[/] release [bold]{name}[/] → {repo_id} ({result['revision']}): one commit "
                      f"{result['commit']} with {len(result['files'])} files")
    else:
        console.print(f"[green]up to date[/]: {repo_id} ({result['revision']}) already holds release [bold]{name}[/] "
                      f"byte for byte; no new commit (head {result['commit']})")
    console.print(f"tag {name}: " + ("created" if result["tag_created"] else "already there (tags are never moved)"))


@app.command()
def report(
    name: Annotated[str | None, typer.Argument(help="Release to report on (default: the whole catalog).")] = None,
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: report-NAME.html or "
                                                "report.html).")] = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    lock_timeout: LockOpt = 60.0,
) -> None:
    """One self-contained HTML file with plots: CoT lengths per domain, accept rates per source and difficulty,
    drop reasons, language shares, pass rates, tokens per accepted sample."""
    from .report import write_report

    path = write_report(_open(catalog, lock_timeout=lock_timeout), name,
                        out or Path(f"report-{name}.html" if name else "report.html"))
    console.print(f"[green]report[/] → {path}")
