"""Which samples a review session shows, in what order, and how it went.

The selection (--where, --release, --disagree, --sample) is fixed when the session starts; what is left of it
is read from the catalog on every page load: a sample leaves the queue once anyone has given it a human
verdict. So closing the page, or stopping the server, loses nothing, and the next session continues.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from catalogs.calibration import NEWEST_HUMAN
from catalogs.store import Catalog, one_row

from .decisions import HUMAN, ReviewError

WHERE_COLUMNS = ("generation_id, prompt_id, run_id, sample_index, finish_reason, completion_tokens, text_chars, "
                 "reasoning_chars, parent_id, source, problem, answer, kind, domain, language")

# For each machine judge its newest verdict counts, as in a release.
NEWEST_MACHINE = (f"SELECT generation_id, judge, passed FROM verdicts WHERE judge <> '{HUMAN}' "
                  "QUALIFY row_number() OVER (PARTITION BY generation_id, judge "
                  "ORDER BY created_at DESC, judge_version DESC) = 1")


@dataclass
class QueueSpec:
    where: str | None = None
    release: str | None = None
    disagree: bool = False  # only samples whose machine judges disagree
    sample: int | None = None  # a seeded random draw of this size (spot checks)
    seed: int = 0
    calibration: str | None = None  # a draw of `r1f review --calibrate JUDGE` (its draw_id)
    calibrates: str | None = None  # the judge it calibrates

    def label(self) -> str:
        parts = [f"calibration of {self.calibrates} ({self.calibration})" if self.calibration else "",f"release {self.release}" if self.release else "", f"where {self.where}" if self.where else "",
                 "judges disagree" if self.disagree else "",
                 f"random {self.sample} (seed {self.seed})" if self.sample else ""]
        return " · ".join(p for p in parts if p) or "all generations"


@dataclass
class Queue:
    spec: QueueSpec
    ids: list[str]
    skipped: list[str] = field(default_factory=list)

    def state(self, catalog: Catalog) -> dict[str, Any]:
        """The current sample (the first not yet reviewed; skipped ones come back last) and the counts."""
        done = reviewed(catalog)
        pending = [g for g in self.ids if g not in done]
        skipped = set(self.skipped)
        ordered = [g for g in pending if g not in skipped] + [g for g in self.skipped if g in set(pending)]
        return {"label": self.spec.label(), "total": len(self.ids), "reviewed": len(self.ids) - len(pending),
                "left": len(pending), "current": ordered[0] if ordered else None,
                "position": len(self.ids) - len(pending) + 1 if ordered else None}

    def skip(self, gid: str) -> None:
        if gid in self.skipped:
            self.skipped.remove(gid)
        self.skipped.append(gid)


def build(catalog: Catalog, spec: QueueSpec) -> Queue:
    """The session's samples in review order; a clear error for a bad --where, an unknown release, or nothing."""
    if spec.sample is not None and spec.sample < 1:
        raise ReviewError(f"--sample {spec.sample}: give a size of 1 or more.")
    clauses, params = [], []
    if spec.where:
        clauses.append(f"({spec.where})")
    if spec.release:
        clauses.append("generation_id IN (SELECT generation_id FROM release_members WHERE release_name = ?)")
        params.append(spec.release)
    if spec.calibration:
        clauses.append("generation_id IN (SELECT generation_id FROM calibration_draws WHERE draw_id = ?)")
        params.append(spec.calibration)
    if spec.disagree:
        clauses.append(f"generation_id IN (SELECT generation_id FROM ({NEWEST_MACHINE}) GROUP BY generation_id "
                       "HAVING bool_or(passed) AND bool_or(NOT passed))")
    if spec.sample or spec.calibration:  # a calibration's strata come mixed, so a short session sees them all
        order = f"md5('{int(spec.seed)}:' || generation_id)"
    elif spec.release:
        order = "generation_id"
    else:
        order = "prompt_id, sample_index NULLS LAST, generation_id"
    sql = (f"SELECT generation_id FROM generation_meta g JOIN prompts p USING (prompt_id) "
           f"{'WHERE ' + ' AND '.join(clauses) if clauses else ''} ORDER BY {order}"
           f"{f' LIMIT {int(spec.sample)}' if spec.sample and not spec.calibration else ''}")
    with catalog.connect() as con:
        if spec.release and not con.execute("SELECT 1 FROM releases WHERE name = ?", [spec.release]).fetchall():
            names = [r[0] for r in con.execute("SELECT name FROM releases ORDER BY name").fetchall()]
            raise ReviewError(f"--release {spec.release!r}: no such release; releases: "
                              f"{', '.join(names) or 'none yet (r1f release)'}.")
        try:
            ids = [r[0] for r in con.execute(sql, params).fetchall()]
        except duckdb.Error as exc:
            raise ReviewError(f"--where `{spec.where}` is not a valid SQL predicate over generations and their "
                              f"prompts (columns: {WHERE_COLUMNS}): {str(exc).splitlines()[0]}") from None
    if not ids:
        raise ReviewError(f"the review queue ({spec.label()}) selects no generations in {catalog.root}; widen "
                          f"--where, or check it with `r1f sql \"SELECT count(*) FROM generations g JOIN prompts p "
                          f"USING (prompt_id) WHERE ...\"`.")
    return Queue(spec, ids)


def reviewed(catalog: Catalog) -> set[str]:
    with catalog.connect() as con:
        return {r[0] for r in con.execute("SELECT DISTINCT generation_id FROM verdicts WHERE judge = ?",
                                          [HUMAN]).fetchall()}


def summary(catalog: Catalog, ids: list[str]) -> dict[str, Any]:
    """Accept rate and agreement with the machine judges over the queue's samples (newest decisions count).

    accept_rate = approved as is / decided (approved, rejected or edited). Agreement counts samples that were
    approved or rejected and have at least one machine verdict: the machine says pass when every judge passed.
    """
    import pyarrow as pa

    with catalog.connect() as con:
        con.register("base", pa.table({"generation_id": ids}))
        con.execute(f"CREATE TEMP TABLE h AS SELECT * FROM ({NEWEST_HUMAN}) SEMI JOIN base USING (generation_id)")
        con.execute(f"CREATE TEMP TABLE m AS SELECT * FROM ({NEWEST_MACHINE}) SEMI JOIN h USING (generation_id)")
        counts = dict(con.execute("SELECT decision, count(*) FROM h GROUP BY 1").fetchall())
        agree = one_row(con.execute(
            "SELECT count(*), count(*) FILTER (WHERE h.passed = m.all_passed) FROM h JOIN "
            "(SELECT generation_id, bool_and(passed) AS all_passed FROM m GROUP BY 1) m USING (generation_id) "
            "WHERE h.decision IN ('approve', 'reject')"))
        per_judge = [{"judge": j, "samples": n, "agreement": round(a / n, 4)} for j, n, a in con.execute(
            "SELECT m.judge, count(*), count(*) FILTER (WHERE m.passed = h.passed) FROM m JOIN h "
            "USING (generation_id) WHERE h.decision IN ('approve', 'reject') GROUP BY 1 ORDER BY 1").fetchall()]
    decided = sum(counts.values())
    return {"samples": len(ids), "decided": decided, "approved": counts.get("approve", 0),
            "rejected": counts.get("reject", 0), "edited": counts.get("edit", 0),
            "accept_rate": round(counts.get("approve", 0) / decided, 4) if decided else None,
            "compared_with_judges": agree[0],
            "agreement_with_judges": round(agree[1] / agree[0], 4) if agree[0] else None,
            "agreement_by_judge": per_judge}
