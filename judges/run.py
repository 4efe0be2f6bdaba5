"""`r1f judge RECIPE`: run a recipe's judges over the generations that lack their verdict.

The judges stay pure; this driver is the one place that reads samples from the catalog and writes
verdicts back. A verdict is keyed by (generation, judge, version), where the version includes a hash of
the judge's params: judging again with the same judge and params costs nothing.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from judges.base import Sample, Verdict
from judges.registry import get_judge

SAMPLE_FIELDS = ("generation_id", "prompt_id", "problem", "reference", "tests", "domain", "language", "kind",
                 "text", "reasoning", "answer", "finish_reason")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JudgeStep(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    # SQL predicate over generation and prompt columns, e.g. "domain = 'math'".
    where: str | None = None


class JudgeRecipe(_Strict):
    name: str | None = None
    description: str | None = None
    where: str | None = None
    judges: list[JudgeStep]
    workers: int = Field(default=2, ge=1)
    batch_rows: int = Field(default=1000, ge=1)


def versioned(name: str, params: dict[str, Any]) -> str:
    """The judge's code version, plus a hash of non-default params so a change re-judges."""
    version = get_judge(name).version
    if not params:
        return version
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{version}+{digest}"


def to_samples(rows: Iterable[dict[str, Any]]) -> list[Sample]:
    return [Sample(**{k: ("" if row.get(k) is None and k in ("problem", "text", "reasoning", "answer", "domain")
                          else row.get(k)) for k in SAMPLE_FIELDS}) for row in rows]


def verdict_rows(samples: list[Sample], verdicts: list[Verdict], version: str) -> list[dict[str, Any]]:
    return [{"generation_id": s.generation_id, "judge": v.judge, "judge_version": version, "score": v.score,
             "passed": v.passed, "reason": v.reason, "details": v.details} for s, v in zip(samples, verdicts)]


def _and(*clauses: str | None) -> str | None:
    parts = [f"({c})" for c in clauses if c]
    return " AND ".join(parts) or None


def judge_catalog(catalog: Any, recipe: JudgeRecipe,
                  progress: Callable[[str, int, int], None] | None = None) -> dict[str, dict[str, int]]:
    """Judge every generation the recipe selects that lacks the verdict; returns counts per judge."""
    for step in recipe.judges:  # unknown names fail before any work
        get_judge(step.name)
    summary: dict[str, dict[str, int]] = {}
    for step in recipe.judges:
        spec = get_judge(step.name)
        version = versioned(step.name, step.params)
        counts = {"judged": 0, "passed": 0}
        total = {"n": 0}

        def on_total(n: int, _t: dict[str, int] = total, _name: str = step.name) -> None:
            _t["n"] = n
            if progress:
                progress(_name, 0, n)

        for batch in catalog.iter_samples(where=_and(recipe.where, step.where),
                                          without=("verdict", step.name, version),
                                          batch_rows=recipe.batch_rows, on_total=on_total):
            samples = to_samples(batch.iter_rows(named=True))
            verdicts = spec.judge_many(samples, workers=recipe.workers, **step.params)
            catalog.add_verdicts(verdict_rows(samples, verdicts, version))
            counts["judged"] += len(verdicts)
            counts["passed"] += sum(v.passed for v in verdicts)
            if progress:
                progress(step.name, counts["judged"], total["n"])
        summary[step.name] = counts
    return summary
