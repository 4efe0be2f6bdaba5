"""`r1f review`: the human review page, and the JSONL round trip of its decisions."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from catalogs.clikit import DEFAULT_CATALOG, CatalogOpt, JsonOpt, command_group, console, print_json, table
from catalogs.clikit import open_catalog as _open

app = command_group()


def _default_reviewer() -> str | None:
    import getpass

    try:
        return os.environ.get("R1F_REVIEWER") or getpass.getuser()
    except (OSError, KeyError):  # no user name in this environment: --reviewer is then required
        return None


@app.command()
def review(
    release: Annotated[str | None, typer.Option(help="Review the members of this release.")] = None,
    where: Annotated[str | None, typer.Option(help="SQL predicate over generations and their prompts, e.g. "
                                                   "\"domain = 'math' AND kind = 'reasoning'\".")] = None,
    disagree: Annotated[bool, typer.Option("--disagree", help="Only samples whose machine judges disagree.")]
    = False,
    calibrate: Annotated[str | None, typer.Option(help="Calibrate this judge: a stratified draw of samples it "
                                                       "passed and failed, per source and domain (--sample "
                                                       "sets its size, default 200); `r1f calibration` then "
                                                       "estimates its precision and recall.")] = None,
    sample: Annotated[int | None, typer.Option(help="A random draw of this many samples (spot checks; with "
                                                    "--release or --where), or the size of a --calibrate "
                                                    "draw.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --sample draw.")] = 0,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 8765,
    reviewer: Annotated[str | None, typer.Option(help="Your name, stored with every decision (default: "
                                                      "R1F_REVIEWER or the login name).")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="Write every human decision to this JSONL "
                                                "file and exit.")] = None,
    import_: Annotated[Path | None, typer.Option("--import", help="Add the decisions in this JSONL file (as "
                                                 "--export writes it) and exit. All or nothing.")] = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """Review samples one at a time on a local page: approve, reject with a reason, edit, skip; every decision
    is a verdict of judge `human` in the catalog at once. Without options the queue is every sample no one has
    reviewed yet."""
    from review.decisions import check_reviewer, export_decisions, import_decisions
    from review.queue import QueueSpec, build, summary
    from review.server import ReviewApp, bind

    cat = _open(catalog)
    if export is not None:
        n = export_decisions(cat, export)
        print_json({"exported": n, "file": str(export)}) if as_json else \
            console.print(f"[green]exported[/] {n} human decisions → {export}")
        return
    if import_ is not None:
        counts = import_decisions(cat, import_)
        print_json(counts) if as_json else console.print(
            f"[green]imported[/] {import_}: {counts['lines']} decisions read, {counts['added']} added "
            f"({counts['edits']} edits), the rest already in the catalog")
        return
    name = check_reviewer(reviewer or _default_reviewer())
    drawn = None
    if calibrate is not None:
        from catalogs.calibration import draw_sample

        drawn = draw_sample(cat, calibrate, sample, seed)
    queue = build(cat, QueueSpec(where=where, release=release, disagree=disagree, sample=sample, seed=seed,
                                 calibration=drawn["draw_id"] if drawn else None, calibrates=calibrate))
    server = bind(ReviewApp(cat, queue, name), port)
    state = queue.state(cat)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    if drawn:
        console.print(f"calibration draw {drawn['draw_id']} of judge {calibrate}: {drawn['drawn']} of "
                      f"{drawn['pool']} generations ({drawn['passed']} it passed, {drawn['failed']} it failed; "
                      f"{drawn['strata']} strata by source, domain and verdict). `r1f calibration {calibrate}` "
                      f"estimates from the decisions.", soft_wrap=True)
    console.print(f"review queue ({queue.spec.label()}): {state['total']} samples, {state['reviewed']} reviewed, "
                  f"{state['left']} left · reviewer {name}", soft_wrap=True)
    # One plain line, flushed: scripts and tests read the address from it.
    print(f"review page: {url}  (Ctrl+C stops; every decision is already saved)", flush=True)
    import signal

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # A terminal's Ctrl+C and a supervisor's SIGTERM both end the session with its summary; decisions are saved.
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    done = summary(cat, queue.ids)
    console.print(table("review", [{k: v for k, v in done.items() if k != "agreement_by_judge"}]))


@app.command()
def calibration(
    judge: Annotated[str | None, typer.Argument(help="One judge (default: every calibrated judge).")] = None,
    release: Annotated[str | None, typer.Option(help="Count the good samples dropped and bad ones kept by this "
                                                     "release (default: by the judges and filters).")] = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    as_json: JsonOpt = False,
) -> None:
    """How right are the judges: from the human decisions on `r1f review --calibrate JUDGE` samples, each judge's
    precision and recall per source and domain (Wilson 95% intervals), its agreement with the other judges, and
    how many good samples were dropped and bad ones kept."""
    from catalogs.calibration import NO_CALIBRATION, agreement_rows, misses_rows, read_figures, summary_rows

    figs = read_figures(_open(catalog), judge, release)
    if as_json:
        print_json(figs)
        return
    if not figs:
        console.print(NO_CALIBRATION, soft_wrap=True)
        return
    console.print(table("precision and recall against human decisions (95% Wilson intervals)", summary_rows(figs)))
    console.print(table("good samples dropped, bad samples kept (estimated over each draw's population)",
                        misses_rows(figs)))
    if any(f["agreement"] for f in figs):
        console.print(table("agreement between judges (human_good: approved / decided per cell)",
                            agreement_rows(figs)))
