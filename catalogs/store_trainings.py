"""The catalog's training runs and eval answers: what `r1f train` ran on which release, and how `r1f eval`
classed each answer."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .ids import canonical_json
from .store_core import CatalogCore, code_version


class TrainingsAndEvals(CatalogCore):
    """Training runs (status and metrics updated as they run) and each eval generation's answer class."""

    TRAINING_COLUMNS = ("training_id", "kind", "model", "base_model", "release_name", "manifest_sha256",
                        "prompts_where", "recipe", "code_version", "status", "metrics", "output_dir",
                        "started_at", "finished_at")

    def record_training(self, row: dict[str, Any]) -> str:
        """Insert or update one training run (`trainings`); its status and metrics change as it runs.

        `recipe` and `metrics` are stored as canonical JSON. Returns the training id.
        """
        values = {c: row.get(c) for c in self.TRAINING_COLUMNS}
        values["recipe"] = canonical_json(row.get("recipe") or {})
        values["metrics"] = canonical_json(row.get("metrics") or {})
        values["code_version"] = row.get("code_version") or code_version()
        cols = ", ".join(values)
        with self.connect(write=True) as con:
            con.execute(f"INSERT OR REPLACE INTO trainings ({cols}) VALUES ({', '.join('?' * len(values))})",
                        list(values.values()))
        return str(values["training_id"])

    def training_of(self, model: str) -> dict[str, Any] | None:
        """The latest finished training whose output is `model` (a folder as `trainings.output_dir` records it), its
        metrics decoded (`metrics["curve"]`: one point per logged step), or None where no training made it."""
        return self._finished_trainings().get(model)

    def trainings_behind(self, models: Iterable[str]) -> list[dict[str, Any]]:
        """The trainings behind `models`: the one that made each (as `training_of`), then, through each training's
        base model, the training that made that, back to a model no training here made. Upstream first, each once.
        Models are matched as recorded, path for path: runs record the model they were given and trainings their
        resolved output folder, so a model named by a relative path or a Hub id finds no training."""
        made = self._finished_trainings()
        out: dict[str, dict[str, Any]] = {}
        for model in models:
            chain: list[dict[str, Any]] = []
            seen: set[str] = set()
            while model in made and model not in seen:  # `seen`: a training into its own base folder ends the walk
                seen.add(model)
                chain.append(made[model])
                model = made[model]["base_model"]
            for row in reversed(chain):
                out.setdefault(row["training_id"], row)
        return list(out.values())

    def _finished_trainings(self) -> dict[str, dict[str, Any]]:
        """Output folder -> the latest finished training into it (a failed or running one made no model there)."""
        cols = [c for c in self.TRAINING_COLUMNS if c != "recipe"]
        with self.connect() as con:
            rows = con.execute(f"SELECT {', '.join(cols)} FROM trainings WHERE status = 'finished' QUALIFY "
                               "row_number() OVER (PARTITION BY output_dir ORDER BY finished_at DESC, training_id) = 1"
                               ).fetchall()
        found = [dict(zip(cols, r)) for r in rows]
        return {r["output_dir"]: {**r, "metrics": json.loads(r["metrics"] or "{}")} for r in found}

    def eval_answers_due(self, run_id: str) -> tuple[list[tuple[str, str, str, str]], dict[str, list[str]]]:
        """What classing a run's eval answers needs: (generation_id, prompt_id, text, answer part) of each of the run's
        generations without a class yet, by prompt and sample index (the order the classes were always made in: the
        recorded decisions, tests/training/test_eval_recorded.py, pin it for imports too, whose index is NULL); and per
        prompt the classes stored already, in the order of their first sample. One read of the run's rows, then the
        texts from the shards that hold them (the reader's `generations` view would read every shard of the catalog);
        nothing more when all are classed."""
        import pyarrow as pa

        with self.connect() as con:
            rows = con.execute(
                "SELECT g.generation_id, g.prompt_id, g.shard, a.generation_id IS NOT NULL, a.answer_key "
                "FROM generation_meta g LEFT JOIN eval_answers a USING (generation_id) WHERE g.run_id = ? "
                "ORDER BY g.prompt_id, g.sample_index", [run_id]).fetchall()
            todo = [(gid, pid, shard) for gid, pid, shard, classed, _ in rows if not classed]
            texts: dict[str, tuple[str, int]] = {}
            shards = sorted({shard for _, _, shard in todo if shard is not None})
            if shards:
                files = [str(f) for f in self.shard_files(shards)]
                con.register("wanted", pa.table({"generation_id": [gid for gid, _, _ in todo]}))
                texts = {gid: (text, a_start) for gid, text, a_start in con.execute(
                    "SELECT generation_id, text, a_start FROM read_parquet(?) SEMI JOIN wanted USING (generation_id)",
                    [files]).fetchall()}
        known: dict[str, list[str]] = {}
        for _, pid, _, classed, key in rows:
            if classed and key is not None and key not in known.setdefault(pid, []):
                known[pid].append(key)
        due = []
        for gid, pid, _ in todo:
            text, a_start = texts.get(gid, ("", 0))
            due.append((gid, pid, text or "", (text or "")[a_start:]))  # the answer part, as the generations view cuts it
        return due, known

    def add_eval_answers(self, rows: Sequence[dict[str, Any]]) -> int:
        """Each eval generation's answer class (generation_id, run_id, prompt_id, answer_key, method)."""
        import pyarrow as pa

        cols = ("generation_id", "run_id", "prompt_id", "answer_key", "method")
        table = pa.table({c: [r.get(c) for r in rows] for c in cols}, schema=pa.schema([(c, pa.string()) for c in cols]))
        return self._insert_new("eval_answers", table, ["generation_id"])
