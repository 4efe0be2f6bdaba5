"""The catalog's verdicts, filter decisions and prompt stats: what the judges and filters decided, and how
sampling stands per prompt. Outputs are keyed by their maker's name, version (and params), so writing one again
adds nothing."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .ids import canonical_json
from .store_core import CatalogCore, query_frame

if TYPE_CHECKING:
    import duckdb
    import polars as pl


class VerdictsAndDecisions(CatalogCore):
    """Judges' verdicts, filters' decisions, and the sampling loop's per-prompt stats."""

    def add_verdicts(self, rows: Sequence[dict[str, Any]]) -> int:
        return self._insert_new("verdicts", verdicts_table(rows), VERDICT_KEY)

    def add_filter_decisions(self, rows: Sequence[dict[str, Any]] | pl.DataFrame) -> int:
        """Insert decisions not recorded yet; returns how many were new. `rows` are dicts, or a polars
        DataFrame with the same columns (`params` already canonical JSON): no Python object per row."""
        import pyarrow as pa

        if not isinstance(rows, Sequence):  # a polars DataFrame, which is no Sequence
            import polars as pl

            frame = rows.select(pl.col("generation_id", "filter"), pl.col("filter_version").cast(pl.String),
                                pl.col("params_hash").fill_null(""), pl.col("passed").cast(pl.Boolean),
                                pl.col("reason"), pl.col("value").cast(pl.Float64),
                                pl.col("params").fill_null("{}"))
            return self._insert_new("filter_decisions", frame.to_arrow(),
                                    ["generation_id", "filter", "filter_version", "params_hash"])
        table = pa.table({
            "generation_id": [r["generation_id"] for r in rows], "filter": [r["filter"] for r in rows],
            "filter_version": [str(r["filter_version"]) for r in rows],
            "params_hash": [r.get("params_hash") or "" for r in rows],
            "passed": [bool(r["passed"]) for r in rows], "reason": [r.get("reason") for r in rows],
            "value": [None if r.get("value") is None else float(r["value"]) for r in rows],
            "params": [canonical_json(r.get("params") or {}) for r in rows]})
        return self._insert_new("filter_decisions", table,
                                ["generation_id", "filter", "filter_version", "params_hash"])

    def decision_counts(self, filter_name: str, version: str, phash: str) -> tuple[int, int]:
        """(passed, total) decisions of one filter version and params."""
        with self.connect() as con:
            passed, total = con.execute(
                "SELECT count(*) FILTER (WHERE passed), count(*) FROM filter_decisions WHERE filter = ? AND "
                "filter_version = ? AND params_hash = ?", [filter_name, str(version), phash]).fetchall()[0]
        return int(passed), int(total)

    def verdicts(self, generation_ids: list[str] | None = None) -> pl.DataFrame:
        import pyarrow as pa

        with self.reader() as con:
            if generation_ids is None:
                return query_frame(con, "SELECT * FROM verdicts ORDER BY generation_id, judge")
            con.register("wanted", pa.table({"generation_id": list(generation_ids)}))
            return query_frame(con, "SELECT v.* FROM verdicts v SEMI JOIN wanted USING (generation_id) "
                            "ORDER BY generation_id, judge")

    def set_prompt_stats(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.connect(write=True) as con:
            write_prompt_stats(con, rows)


VERDICT_KEY = ["generation_id", "judge", "judge_version"]


def verdicts_table(rows: Sequence[dict[str, Any]]) -> Any:  # pyarrow.Table
    """Verdict rows (a judge's output, `normalise_verdict`'s shape) as the `verdicts` table's columns."""
    import pyarrow as pa

    return pa.table({
        "generation_id": [r["generation_id"] for r in rows], "judge": [r["judge"] for r in rows],
        "judge_version": [str(r["judge_version"]) for r in rows],
        "score": [None if r.get("score") is None else float(r["score"]) for r in rows],
        "passed": [bool(r["passed"]) for r in rows], "reason": [r.get("reason") for r in rows],
        "details": [canonical_json(r.get("details") or {}) for r in rows]})


def write_prompt_stats(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or replace `prompt_stats` rows on a write connection (`set_prompt_stats`, and `release_prompts`
    in the same transaction as the release)."""
    import pyarrow as pa

    cols = ["prompt_id", "run_id", "samples", "accepted", "pass_rate", "status", "rounds", "tokens"]
    con.register("incoming_stats", pa.table({c: [r.get(c) for r in rows] for c in cols}))
    # Stats are derived numbers, updated as sampling proceeds; the generations they count are not.
    con.execute(f"INSERT OR REPLACE INTO prompt_stats ({', '.join(cols)}) SELECT {', '.join(cols)} "
                f"FROM incoming_stats")
