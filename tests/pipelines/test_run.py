"""`r1f run` without an engine: a pipeline of generations made elsewhere (ingest → judge → filter → release →
review gate → export → report) run, rerun, changed, failed and resumed; `r1f status`; the pipeline tables
migrated from a version-4 catalog; bad pipelines refused before anything runs."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner, Result

from catalogs import Catalog, schema
from catalogs.errors import RecipeError
from pipelines.recipe import check_pipeline
from pipelines.run import plan, run_pipeline
from r1f.cli import app
from tests.catalogs.helpers import write_generations
from tests.helpers import r1f_batch

PIPELINE = """name: mini
stages:
  - {name: ingest, kind: ingest, args: {source: gens.jsonl, generations: true, model: deepseek-r1, domain: math}}
  - {name: judge, kind: judge, recipe: judge.yaml}
  - {name: filter, kind: filter, recipe: filters.yaml}
  - {name: release, kind: release, release: rel}
  - {name: export, kind: export, release: rel, args: {out: out/rel.jsonl, format: jsonl}}
  - {name: report, kind: report, release: rel, args: {out: out/report.html}}
"""


def r1f(*args: str) -> Result:
    """An `r1f` command in this process, which must succeed (a failing one's exit status and stderr are checked
    on the real command, through `r1f_batch`)."""
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert res.exit_code == 0, f"r1f {' '.join(args)} failed ({res.exit_code}):\n{res.output}\n{res.exception!r}"
    return res


def _folder(tmp_path: Path, filters: str = "0.5") -> Path:
    write_generations(tmp_path / "gens.jsonl", n_prompts=4, per_prompt=3)
    (tmp_path / "judge.yaml").write_text("judges:\n  - name: math_accuracy\n")
    (tmp_path / "filters.yaml").write_text(f"filters:\n  - name: language_mixing\n    params: {{max_foreign_share: "
                                           f"{filters}}}\n")
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    return tmp_path / "pipeline.yaml"


def _plan(pipeline: Path, cat: Path, start: str | None = None, until: str | None = None) -> dict[str, str]:
    """The dry run's plan, in this process (the command's own output is checked once, below)."""
    _, steps = plan(Catalog(cat) if cat.exists() else None, pipeline, start=start, until=until)
    return {s.name: s.action for s in steps}


def _stages(cat: Path) -> dict[str, tuple]:
    con = duckdb.connect(str(cat / "catalog.duckdb"), read_only=True)
    try:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT stage, status, started_at FROM pipeline_stages WHERE pipeline = 'mini'").fetchall()}
    finally:
        con.close()


def test_run_skip_change_fail_and_resume(tmp_path: Path) -> None:
    pipeline = _folder(tmp_path)
    cat = tmp_path / "cat"
    everything = ["ingest", "judge", "filter", "release", "export", "report"]
    dry = json.loads(r1f("run", str(pipeline), "--dry-run", "--json", "--catalog", str(cat)).stdout)
    assert [(s["name"], s["action"], s["why"]) for s in dry["steps"]] == [(s, "run", "never ran") for s in everything]
    assert not cat.exists()  # a dry run makes nothing

    first = json.loads(r1f("run", str(pipeline), "--json", "--catalog", str(cat)).stdout)
    assert first["status"] == "done" and list(first["outputs"]) == everything
    assert first["outputs"]["ingest"]["generations_added"] == 12
    assert first["outputs"]["judge"]["math_accuracy"]["judged"] == 12
    assert (tmp_path / "out" / "rel.jsonl").exists() and (tmp_path / "out" / "report.html").exists()
    members = first["outputs"]["release"]["members"]
    status = json.loads(r1f("status", "--json", "--catalog", str(cat)).stdout)
    assert [(r["stage"], r["status"]) for r in status] == [(s, "done") for s in everything]

    # Run again: nothing changed, nothing runs.
    again = r1f("run", str(pipeline), "--catalog", str(cat))
    assert "nothing to do" in again.stderr
    started = _stages(cat)
    assert _plan(pipeline, cat) == dict.fromkeys(everything, "skip")

    # A changed filter threshold: the filter and everything after it run again, nothing before.
    (tmp_path / "filters.yaml").write_text("filters:\n  - name: language_mixing\n    params: {max_foreign_share: 0.6}\n")
    assert _plan(pipeline, cat) == {"ingest": "skip", "judge": "skip", "filter": "run", "release": "run",
                                    "export": "run", "report": "run"}
    changed = run_pipeline(Catalog(cat), pipeline)
    assert list(changed["outputs"]) == ["filter", "release", "export", "report"]
    assert changed["outputs"]["release"]["members"] == members  # the same selection: the same frozen release
    now = _stages(cat)
    assert all(now[s][1] == started[s][1] for s in ("ingest", "judge"))
    assert all(now[s][1] > started[s][1] for s in ("filter", "release", "export", "report"))

    # A changed input file: everything runs again; a release frozen with other members fails that stage, and the
    # run stops there with the error and the command that resumes it.
    write_generations(tmp_path / "gens.jsonl", n_prompts=5, per_prompt=3)
    assert set(_plan(pipeline, cat).values()) == {"run"}
    # The real `r1f`, for its exit status and stderr; in the same process, a bad pipeline in a folder of its own
    # exits 2 before anything runs.
    bad = tmp_path / "bad"
    bad.mkdir()
    _folder(bad).write_text(PIPELINE.replace("recipe: filters.yaml", "recipe: nope.yaml"))
    proc, table, refused = r1f_batch([["run", str(pipeline), "--catalog", str(cat)], ["status", "--catalog", str(cat)],
                                      ["run", str(bad / "pipeline.yaml"), "--catalog", str(bad / "cat")]],
                                     {"COLUMNS": "200"})
    assert refused.returncode == 2 and "pipeline.yaml:5" in refused.stderr and "Traceback" not in refused.stderr
    con = duckdb.connect(str(bad / "cat" / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM pipeline_stages").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM prompts").fetchone() == (0,)
    con.close()
    assert proc.returncode == 2 and "stage release (release) failed: release rel already exists with other " \
        "members" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "new release name" in proc.stderr and f"resume with: r1f run {pipeline} --catalog {cat}" in proc.stderr
    assert _stages(cat)["release"][0] == "failed" and _stages(cat)["export"][0] == "stale"
    assert table.returncode == 0
    assert "failed" in table.stdout and "stale" in table.stdout and "release rel already exists" in table.stdout
    # Fixed by a new release name: the run resumes at the release; what was done is not done twice.
    for name in ("pipeline.yaml",):
        (tmp_path / name).write_text((tmp_path / name).read_text().replace("release: rel", "release: rel-v2"))
    assert _plan(pipeline, cat) == {"ingest": "skip", "judge": "skip", "filter": "skip", "release": "run",
                                    "export": "run", "report": "run"}
    run_pipeline(Catalog(cat), pipeline)
    assert {s: v[0] for s, v in _stages(cat).items()} == dict.fromkeys(everything, "done")
    # --from and --until: a window of the pipeline.
    assert _plan(pipeline, cat, "judge", "filter") == {
        "ingest": "outside", "judge": "run", "filter": "run", "release": "outside", "export": "outside",
        "report": "outside"}


def test_torch_settings_are_set_and_an_input_of_the_stages_that_compute(tmp_path: Path) -> None:
    import torch

    pipeline = _folder(tmp_path)
    own = torch.get_num_threads()
    threads = 2 if own == 1 else 1
    pipeline.write_text(PIPELINE.replace("stages:", f"torch: {{threads: {threads}}}\nstages:"))
    _, steps = plan(None, pipeline)
    assert steps[1].kind == "judge" and steps[1].inputs["torch"] == {"threads": threads, "deterministic": False}
    assert "torch" not in steps[0].inputs  # an ingest computes nothing with torch: a change does not run it again
    try:  # set before the stages run; this process's own count is restored after, for the other tests
        done = run_pipeline(Catalog(tmp_path / "cat", create=True), pipeline, until="ingest")
        assert list(done["outputs"]) == ["ingest"] and torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(own)
    pipeline.write_text(PIPELINE.replace("stages:", "torch: {threads: 0}\nstages:"))
    with pytest.raises(RecipeError, match="torch.threads"):
        check_pipeline(pipeline)


def test_the_review_gate_stops_the_run_until_people_are_done(tmp_path: Path) -> None:
    pipeline = _folder(tmp_path)
    text = pipeline.read_text().replace(
        "  - {name: export", "  - {name: review, kind: review, release: rel, args: {sample: 2, seed: 1}}\n"
        "  - {name: export")
    pipeline.write_text(text)
    cat = tmp_path / "cat"
    proc = r1f("run", str(pipeline), "--catalog", str(cat))
    assert "2 sample(s) wait for review" in proc.stderr
    assert "r1f review --release rel --sample 2 --seed 1" in proc.stderr
    assert f"resume with: r1f run {pipeline} --catalog {cat}" in proc.stdout.replace("\n", "")
    assert _stages(cat)["review"][0] == "waiting" and "export" not in _stages(cat)
    # The people review both samples (here through the decisions file `r1f review --import` reads).
    from review.queue import QueueSpec, build

    from catalogs import Catalog

    queue = build(Catalog(cat), QueueSpec(release="rel", sample=2, seed=1))
    decisions = tmp_path / "decisions.jsonl"
    decisions.write_text("".join(json.dumps({"generation_id": g, "decision": "approve", "reviewer": "ana", "time": "2026-01-01T00:00:00Z"}) + "\n"
                                 for g in queue.ids))
    from review.decisions import import_decisions

    import_decisions(Catalog(cat), decisions)
    assert run_pipeline(Catalog(cat), pipeline)["status"] == "done"
    assert {s: v[0] for s, v in _stages(cat).items()}["export"] == "done"


@pytest.mark.parametrize(("edit", "message"), [
    (("kind: judge", "kind: juddge"), r"pipeline.yaml:4: stages\[1\].kind: Input should be .* \(got .juddge.\)"),
    (("kind: release, release: rel}", "kind: release, release: other}"),
     r"pipeline.yaml:7: stages\[4\]: release 'rel' is made by no stage of this pipeline"),
    (("name: filter", "name: judge"), r"pipeline.yaml:5: stages\[2\].name: two stages are named 'judge'"),
    (("recipe: filters.yaml", "recipe: nope.yaml"), r"pipeline.yaml:5: stages\[2\].recipe: 'nope.yaml' does not exist"),
])
def test_bad_pipelines_are_refused_naming_file_and_line(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    pipeline = _folder(tmp_path)
    pipeline.write_text(pipeline.read_text().replace(*edit))
    with pytest.raises(RecipeError, match=message):
        check_pipeline(pipeline)


def test_the_pipeline_tables_come_to_a_version_4_catalog(tmp_path: Path) -> None:
    pipeline = _folder(tmp_path)
    cat = tmp_path / "cat"
    from catalogs.ingest import IngestOptions, ingest

    ingest(Catalog(cat), tmp_path / "gens.jsonl", IngestOptions(source="pre"))
    con = duckdb.connect(str(cat / "catalog.duckdb"))
    con.execute("DROP TABLE pipeline_runs")
    con.execute("DROP TABLE pipeline_stages")
    con.execute("ALTER TABLE generation_meta DROP COLUMN published_id")
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.close()
    run_pipeline(Catalog(cat), pipeline, until="judge")
    con = duckdb.connect(str(cat / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        str(schema.SCHEMA_VERSION),)
    assert con.execute("SELECT stage, status FROM pipeline_stages ORDER BY position").fetchall() == [
        ("ingest", "done"), ("judge", "done")]
    assert con.execute("SELECT count(*) FROM generation_meta WHERE published_id IS NULL").fetchone() == (12,)
    con.close()
