"""`r1f run PIPELINE.yaml` and `r1f status`. The `r1f` face composes them; every import of a stage is lazy."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from catalogs.clikit import (
    DEFAULT_CATALOG,
    AddressOpt,
    CatalogOpt,
    EngineWorkersOpt,
    JsonOpt,
    command_group,
    console,
    engine_option,
    err,
    open_catalog,
    print_json,
)

app = command_group()


def _resume_command(pipeline: Path, catalog: Path) -> str:
    return f"r1f run {pipeline}" + ("" if catalog == DEFAULT_CATALOG else f" --catalog {catalog}")


@app.command()
def run(
    pipeline: Annotated[Path, typer.Argument(help="YAML pipeline: `stages: [{name, kind, recipe | args, release}]` "
                                             "in order. See recipes/r1.yaml.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan: what runs, what is skipped, and why; "
                                          "run nothing.")] = False,
    start: Annotated[str | None, typer.Option("--from", help="Start at this stage (it runs, and every later one "
                                              "that the plan says).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stop after this stage.")] = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
    engine: Annotated[str, engine_option("goes to the stages that take it (generate, judge, filter, eval)")]
    = "local",
    address: AddressOpt = None,
    workers: EngineWorkersOpt = None,
) -> None:
    """Run a pipeline's stages in order, each through its own command's code. A stage done with the same recipe
    and inputs is skipped; a changed one runs again, with every stage after it. Killed or failed, the same
    command resumes at the first unfinished stage."""
    from .run import plan, run_pipeline

    if dry_run:  # a dry run creates no catalog
        exists = (catalog / "catalog.duckdb").exists()
        name, steps = plan(open_catalog(catalog) if exists else None, pipeline, start=start, until=until)
        if as_json:
            print_json({"pipeline": name, "steps": [s.as_dict() for s in steps]})
            return
        console.print(plan_table(name, [s.as_dict() for s in steps]))
        return
    result = run_pipeline(open_catalog(catalog, create=True), pipeline, start=start, until=until, engine=engine, address=address, workers=workers,
                          resume=_resume_command(pipeline, catalog), say=lambda msg: err.print(msg, soft_wrap=True))
    if as_json:
        print_json(result)
        return
    ran = [s for s in result["steps"] if s["action"] == "run"]
    if result["status"] == "waiting":
        console.print(f"[yellow]waiting[/] pipeline {result['pipeline']}: {result['waiting']} sample(s) wait for "
                      f"review; resume with: {result['resume']}", soft_wrap=True)
    elif ran:
        console.print(f"[green]done[/] pipeline {result['pipeline']}: ran {', '.join(s['name'] for s in ran)}",
                      soft_wrap=True)


def plan_table(name: str, steps: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(title=f"pipeline {name}: plan", title_justify="left")
    lanes = any(s.get("lane") for s in steps)  # a column only where a stage runs in a lane (a second process)
    for col in ("#", "stage", "kind", *(("lane",) if lanes else ()), "action", "why"):
        t.add_column(col)
    style = {"run": "bold green", "skip": "dim", "outside": "dim"}
    for s in steps:
        t.add_row(str(s["position"] + 1), s["name"], s["kind"], *((s.get("lane") or "",) if lanes else ()),
                  f"[{style[s['action']]}]{s['action']}[/]", s["why"])
    return t


@app.command()
def status(
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """Every pipeline run in this catalog and its stages: status, start and end, what each made."""
    rows = open_catalog(catalog).pipelines_status()
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no pipelines have run in this catalog (r1f run PIPELINE.yaml)")
        return
    from rich.table import Table

    colour = {"done": "green", "running": "yellow", "waiting": "yellow", "failed": "red", "stale": "magenta"}
    for name in dict.fromkeys(r["pipeline"] for r in rows):
        mine = [r for r in rows if r["pipeline"] == name]
        t = Table(title=f"pipeline {name} ({mine[0]['file']})", title_justify="left")
        for col in ("#", "stage", "kind", "status", "started", "finished", "outputs"):
            t.add_column(col, overflow="fold")
        for r in mine:
            st = r["status"]
            outputs = r["error"] if st == "failed" else _brief(r["outputs"])
            t.add_row(str(r["position"] + 1), r["stage"], r["kind"], f"[{colour.get(st, 'white')}]{st}[/]",
                      f"{r['started_at']:%Y-%m-%d %H:%M:%S}" if r["started_at"] else "",
                      f"{r['finished_at']:%H:%M:%S}" if r["finished_at"] else "", outputs or "")
        console.print(t)


def _brief(outputs: str | None) -> str:
    """The first few numbers and names of a stage's outputs, on one line."""
    import json

    data = json.loads(outputs or "{}")
    flat = []
    for k, v in data.items():
        if isinstance(v, (int, float, str)) and not isinstance(v, bool) and len(str(v)) <= 40:
            flat.append(f"{k}={v}")
        elif isinstance(v, dict) and all(isinstance(x, (int, float)) for x in v.values()):
            flat.append(f"{k}: " + " ".join(f"{a}={b}" for a, b in v.items()))
    return ", ".join(flat[:4])
