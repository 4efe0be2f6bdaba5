"""The two types every judge speaks: a Sample goes in, a Verdict comes out.

Judges are pure functions of (Sample, params). That is what lets the same judge be a
rejection-sampling check, a GRPO reward and an eval scorer.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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
