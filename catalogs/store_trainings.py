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

    def add_eval_answers(self, rows: Sequence[dict[str, Any]]) -> int:
        """Each eval generation's answer class (generation_id, run_id, prompt_id, answer_key, method)."""
        import pyarrow as pa

        cols = ("generation_id", "run_id", "prompt_id", "answer_key", "method")
        table = pa.table({c: [r.get(c) for r in rows] for c in cols}, schema=pa.schema([(c, pa.string()) for c in cols]))
        return self._insert_new("eval_answers", table, ["generation_id"])
