"""The two types every judge speaks: a Sample goes in, a Verdict comes out.

Judges are pure functions of (Sample, params). That is what lets the same judge be a
rejection-sampling check, a GRPO reward and an eval scorer.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One generation with what its prompt knows about the right answer."""

    generation_id: str = ""
    prompt_id: str = ""
    problem: str = ""
    reference: str | None = None  # reference answer (math: the gold expression)
    tests: str | None = None  # JSON string of the prompt's tests (code)
    domain: str = ""
    language: str = "en"
    kind: str = "reasoning"
    text: str = ""  # the full raw generation
    reasoning: str = ""  # chain of thought
    answer: str = ""  # summary / answer after the reasoning
    finish_reason: str | None = None


SAMPLE_FIELDS = tuple(f.name for f in fields(Sample))
_EMPTY_WHEN_NULL = ("generation_id", "prompt_id", "problem", "domain", "text", "reasoning", "answer")


def sample_from_row(row: Mapping[str, Any]) -> Sample:
    """The one row -> Sample mapping: a row as `Catalog.iter_samples` streams it (the prompt's answer under
    `reference`); other keys are ignored. Absent or null text fields become "", language "en", kind
    "reasoning"."""
    values: dict[str, Any] = {k: row.get(k) for k in SAMPLE_FIELDS}
    for k in _EMPTY_WHEN_NULL:
        if values[k] is None:
            values[k] = ""
    values["language"] = values["language"] or "en"
    values["kind"] = values["kind"] or "reasoning"
    return Sample(**values)


@dataclass(frozen=True)
class Verdict:
    judge: str
    judge_version: str
    score: float
    passed: bool
    # Short machine-friendly code: correct, wrong_answer, no_reference, unparseable_gold, ...
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, default=str)


def verdict(judge: str, version: str, score: float, passed: bool, reason: str, **details: Any) -> Verdict:
    return Verdict(judge=judge, judge_version=version, score=float(score), passed=bool(passed),
                   reason=reason, details=details)
