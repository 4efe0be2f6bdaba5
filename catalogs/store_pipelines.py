"""The catalog's pipelines: each `r1f run` of a pipeline file, and the state of each of its stages (the recipe hash
and inputs it ran with, start and end, status, what it made). A rerun reads it to skip what is done."""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from .ids import canonical_json
from .store_core import CatalogCore

# A stage's status: `running` (started, not ended: killed, or still going), `done`, `failed`, `waiting` (a review
# gate with samples left), `stale` (an earlier stage ran again after it was done; it must run again too).
STAGE_STATUSES = ("running", "done", "failed", "waiting", "stale")
STAGE_COLUMNS = ("pipeline", "stage", "position", "kind", "recipe_hash", "inputs", "inputs_hash", "status",
                 "outputs", "error", "pipeline_run_id", "started_at", "finished_at")


class PipelineRuns(CatalogCore):
    """Runs of pipelines and their stages (`pipeline_runs`, `pipeline_stages`)."""

    def start_pipeline_run(self, pipeline: str, file: str, recipe_hash: str) -> str:
        run = "pl_" + uuid.uuid4().hex[:20]
        with self.connect(write=True) as con:
            con.execute("INSERT INTO pipeline_runs (pipeline_run_id, pipeline, file, recipe_hash, status, started_at) "
                        "VALUES (?, ?, ?, ?, 'running', current_timestamp)", [run, pipeline, file, recipe_hash])
        return run

    def end_pipeline_run(self, run: str, status: str) -> None:
        with self.connect(write=True) as con:
            con.execute("UPDATE pipeline_runs SET status = ?, finished_at = current_timestamp "
                        "WHERE pipeline_run_id = ?", [status, run])

    def pipeline_stages(self, pipeline: str) -> dict[str, dict[str, Any]]:
        """The recorded state of each stage of `pipeline`, by stage name (inputs and outputs decoded)."""
        with self.connect() as con:
            rows = con.execute(f"SELECT {', '.join(STAGE_COLUMNS)} FROM pipeline_stages WHERE pipeline = ? "
                               "ORDER BY position", [pipeline]).fetchall()
        out = {}
        for row in rows:
            rec = dict(zip(STAGE_COLUMNS, row))
            rec["inputs"] = json.loads(rec["inputs"] or "{}")
            rec["outputs"] = json.loads(rec["outputs"] or "{}")
            out[rec["stage"]] = rec
        return out

    def stage_started(self, pipeline: str, stage: str, position: int, kind: str, recipe_hash: str,
                      inputs: dict[str, Any], inputs_hash: str, run: str, stale: Sequence[str]) -> None:
        """Record a stage as running, and the stages made from it (`stale`, named by the plan: without lanes every
        later stage, with lanes not another lane's) that were ended as stale: what they did was made from what this
        stage is about to change. One transaction."""
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO pipeline_stages (pipeline, stage, position, kind, recipe_hash, "
                        "inputs, inputs_hash, status, outputs, error, pipeline_run_id, started_at, finished_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 'running', '{}', NULL, ?, current_timestamp, NULL)",
                        [pipeline, stage, position, kind, recipe_hash, canonical_json(inputs), inputs_hash, run])
            if stale:
                con.execute("UPDATE pipeline_stages SET status = 'stale' WHERE pipeline = ? "
                            "AND list_contains(?, stage) AND status IN ('done', 'waiting', 'failed')",
                            [pipeline, list(stale)])

    def stage_ended(self, pipeline: str, stage: str, status: str, outputs: dict[str, Any] | None = None,
                    error: str | None = None) -> None:
        if status not in STAGE_STATUSES:
            raise ValueError(f"stage status {status!r}: use one of {', '.join(STAGE_STATUSES)}")
        with self.connect(write=True) as con:
            con.execute("UPDATE pipeline_stages SET status = ?, outputs = ?, error = ?, finished_at = current_timestamp "
                        "WHERE pipeline = ? AND stage = ?",
                        [status, canonical_json(outputs or {}), error, pipeline, stage])

    def pipelines_status(self) -> list[dict[str, Any]]:
        """Every pipeline's stages in order, with the last run of the pipeline (for `r1f status`)."""
        with self.connect() as con:
            cur = con.execute(
                "SELECT s.pipeline, s.position, s.stage, s.kind, s.status, s.started_at, s.finished_at, s.outputs, "
                "s.error, r.file FROM pipeline_stages s LEFT JOIN (SELECT pipeline, file FROM pipeline_runs "
                "QUALIFY row_number() OVER (PARTITION BY pipeline ORDER BY started_at DESC) = 1) r USING (pipeline) "
                "ORDER BY s.pipeline, s.position")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
