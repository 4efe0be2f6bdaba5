"""`r1f run` with lanes: a lane's stages run in a second process beside the others, to the results of one process;
a rerun finds every stage done (no lane's stage is made stale by a stage it is not made from); a change in a lane
runs only that lane's later stages; a lane's failure leaves the other stages done and names the stage and its
log; pipelines whose stages read across lanes are refused before anything runs."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from catalogs import Catalog
from catalogs.errors import RecipeError
from pipelines.recipe import check_pipeline
from pipelines.run import StageFailed, plan, run_pipeline
from tests.catalogs.helpers import write_generations

OURS = "run_id IN (SELECT run_id FROM runs WHERE model = 'deepseek-r1')"
THEIRS = "run_id IN (SELECT run_id FROM runs WHERE model = 'other-model')"
PIPELINE = f"""name: laned
torch: {{threads: 1}}
stages:
  - {{name: ingest, kind: ingest, args: {{source: gens.jsonl, generations: true, model: deepseek-r1, domain: math}}}}
  - {{name: ingest-b, kind: ingest, lane: side, args: {{source: gens_b.jsonl, generations: true, model: other-model,
     domain: math}}}}
  - {{name: judge-b, kind: judge, lane: side, recipe: judge_b.yaml}}
  - {{name: judge, kind: judge, recipe: judge.yaml}}
  - {{name: filter, kind: filter, recipe: filters.yaml}}
  - {{name: release, kind: release, release: rel, args: {{where: "{OURS}"}}}}
"""
STAGES = ["ingest", "ingest-b", "judge-b", "judge", "filter", "release"]


def _folder(path: Path, laned: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_generations(path / "gens.jsonl", n_prompts=4, per_prompt=3)
    write_generations(path / "gens_b.jsonl", n_prompts=6, per_prompt=2)
    (path / "judge.yaml").write_text(f'where: "{OURS}"\njudges:\n  - name: math_accuracy\n')
    (path / "judge_b.yaml").write_text(f'where: "{THEIRS}"\njudges:\n  - name: math_accuracy\n')
    (path / "filters.yaml").write_text(f'where: "{OURS}"\nfilters:\n  - name: language_mixing\n')
    text = PIPELINE if laned else PIPELINE.replace(" lane: side,", "")
    (path / "pipeline.yaml").write_text(text)
    return path / "pipeline.yaml"


def _counts(outputs: dict[str, Any]) -> dict[str, Any]:
    """Stage outputs without what names the folder (paths, and the ingest and run ids made from them)."""
    return {stage: {k: v for k, v in out.items() if k not in ("file", "run_id", "ingest_id")}
            for stage, out in outputs.items()}


def _status(cat: Path) -> dict[str, str]:
    con = duckdb.connect(str(cat / "catalog.duckdb"), read_only=True)
    try:
        return dict(con.execute("SELECT stage, status FROM pipeline_stages WHERE pipeline = 'laned'").fetchall())
    finally:
        con.close()


def _verdicts(cat: Path) -> list[tuple]:
    con = duckdb.connect(str(cat / "catalog.duckdb"), read_only=True)
    try:
        return con.execute("SELECT generation_id, judge, passed FROM verdicts ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_a_lane_runs_in_a_second_process_to_the_results_of_one(tmp_path: Path) -> None:
    alone = run_pipeline(Catalog(tmp_path / "one" / "cat", create=True), _folder(tmp_path / "one", laned=False))
    said: list[str] = []
    pipeline = _folder(tmp_path / "two")
    cat = tmp_path / "two" / "cat"
    laned = run_pipeline(Catalog(cat, create=True), pipeline, say=said.append)

    # Where the cores allow one thread per process (the pipeline's torch.threads is 1), the lane ran apart.
    if (os.cpu_count() or 1) >= 2:
        side = laned["lanes"]["side"]
        assert side["stages"] == ["ingest-b", "judge-b"] and side["pid"] not in (None, os.getpid())
        assert any(m.startswith("stage 3/6 judge-b (judge)") and m.endswith("[lane side]") for m in said), said
        assert "--- stage judge-b (judge)" in Path(side["log"]).read_text()
    else:
        assert laned["lanes"] == {}
    assert list(laned["outputs"]) == list(alone["outputs"]) == STAGES
    assert _counts(laned["outputs"]) == _counts(alone["outputs"])  # every stage's counts, the release's members
    assert laned["outputs"]["judge-b"]["math_accuracy"]["judged"] == 12
    assert _verdicts(cat) == _verdicts(tmp_path / "one" / "cat")
    assert _status(cat) == dict.fromkeys(STAGES, "done")  # the main stages after the fork made no lane stage stale

    # Run again: nothing to do. A lane's recipe changed: its later stages run, nothing outside the lane.
    assert {s.name: s.action for s in plan(Catalog(cat), pipeline)[1]} == dict.fromkeys(STAGES, "skip")
    (pipeline.parent / "judge_b.yaml").write_text(f'where: "{THEIRS}"\njudges:\n  - name: math_accuracy\n'
                                                  f'  - name: format\n')
    assert [s.name for s in plan(Catalog(cat), pipeline)[1] if s.action == "run"] == ["judge-b"]
    # A change before the lane's fork runs the lane too, and what follows.
    (pipeline.parent / "gens.jsonl").write_text((pipeline.parent / "gens.jsonl").read_text().replace("times", "x"))
    assert [s.name for s in plan(Catalog(cat), pipeline)[1] if s.action == "run"] == STAGES


def test_a_lane_that_fails_leaves_the_rest_done_and_resumes_alone(tmp_path: Path) -> None:
    pipeline = _folder(tmp_path)
    (tmp_path / "judge_b.yaml").write_text('where: "no_such_column = 1"\njudges:\n  - name: math_accuracy\n')
    cat = tmp_path / "cat"
    with pytest.raises(StageFailed, match=r"stage judge-b \(judge\) failed: .*no_such_column[\s\S]*lane side") as err:
        run_pipeline(Catalog(cat, create=True), pipeline)
    assert f"fix it, then resume with: r1f run {pipeline}" in str(err.value)
    assert _status(cat) == {**dict.fromkeys(STAGES, "done"), "judge-b": "failed"}
    (tmp_path / "judge_b.yaml").write_text(f'where: "{THEIRS}"\njudges:\n  - name: math_accuracy\n')
    again = run_pipeline(Catalog(cat), pipeline)
    assert list(again["outputs"]) == ["judge-b"] and _status(cat) == dict.fromkeys(STAGES, "done")


@pytest.mark.parametrize(("edit", "message"), [
    (("kind: release, release: rel,", "kind: release, lane: other, release: rel,"),
     None),  # a release in a lane of its own is fine while nothing outside reads it
    (("  - {name: filter,", "  - {name: rev, kind: review, lane: side, release: rel}\n  - {name: filter,"),
     r"pipeline.yaml:9: stages\[4\] \(review\) cannot be in a lane"),
    (("lane: side, args", "lane: Side!, args"), r"stages\[1\].lane: String should match pattern"),
])
def test_bad_lanes_are_refused_naming_file_and_line(tmp_path: Path, edit: tuple[str, str], message: str | None) -> None:
    pipeline = _folder(tmp_path)
    pipeline.write_text(pipeline.read_text().replace(*edit))
    if message is None:
        check_pipeline(pipeline)
        return
    with pytest.raises(RecipeError, match=message):
        check_pipeline(pipeline)


def test_a_stage_outside_the_lanes_may_not_read_a_release_a_lane_makes(tmp_path: Path) -> None:
    pipeline = _folder(tmp_path)
    pipeline.write_text(pipeline.read_text().replace("kind: release, release: rel,", "kind: release, lane: side, "
                                                     "release: rel,") + "  - {name: report, kind: report, release: "
                                                                          "rel, args: {out: report.html}}\n")
    with pytest.raises(RecipeError, match=r"pipeline.yaml:\d+: stages\[6\] \(outside any lane\) reads release 'rel', "
                                          r"made by stage 'release' in lane 'side', which runs beside it"):
        check_pipeline(pipeline)


def test_a_review_gate_outside_the_lanes_lets_a_started_lane_finish(tmp_path: Path) -> None:
    pipeline = _folder(tmp_path)
    pipeline.write_text(pipeline.read_text() + "  - {name: review, kind: review, release: rel, args: {sample: 2}}\n")
    cat = tmp_path / "cat"
    result = run_pipeline(Catalog(cat, create=True), pipeline)
    assert result["status"] == "waiting" and result["waiting"] == 2
    assert _status(cat) == {**dict.fromkeys(STAGES, "done"), "review": "waiting"}  # the lane was not stopped
