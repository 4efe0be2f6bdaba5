"""The catalog's training runs and eval answers: what `r1f train` ran on which release, and how `r1f eval`
classed each answer."""
from __future__ import annotations

from collections.abc import Sequence
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

    def add_eval_answers(self, rows: Sequence[dict[str, Any]]) -> int:
        """Each eval generation's answer class (generation_id, run_id, prompt_id, answer_key, method)."""
        import pyarrow as pa

        cols = ("generation_id", "run_id", "prompt_id", "answer_key", "method")
        table = pa.table({c: [r.get(c) for r in rows] for c in cols}, schema=pa.schema([(c, pa.string()) for c in cols]))
        return self._insert_new("eval_answers", table, ["generation_id"])
