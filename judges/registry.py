"""The judges: one line per module in MODULES. A module declares its judge once, `JUDGE = JudgeSpec(...)` (name,
version, kind, params; see judges/base.py), so adding a judge is one file and one line here.

Modules load on first use, so importing this module (every `r1f` start) imports no judge.
"""
from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from catalogs.errors import UserError
from catalogs.records import Sample, Verdict
from judges.base import JudgeSpec

MODULES = (
    "judges.math_accuracy",
    "judges.exact_match",
    "judges.arithmetic_steps",
    "judges.format",
    "judges.language_consistency",
    "judges.code",
    "judges.llm_judge",
    "judges.helpfulness",
    "judges.harmlessness",
)


@cache
def registered() -> dict[str, JudgeSpec]:
    """Every judge by name, rule and model judges."""
    specs = [importlib.import_module(module).JUDGE for module in MODULES]
    return {spec.name: spec for spec in specs}


def __getattr__(name: str) -> dict[str, JudgeSpec]:
    # JUDGES: the rule judges, which judge one sample alone (the factory's acceptance checks, GRPO rewards,
    # training's judges); built on first use.
    if name == "JUDGES":
        return {n: spec for n, spec in registered().items() if spec.kind == "rule"}
    raise AttributeError(f"module 'judges.registry' has no attribute {name!r}")


class UnknownJudgeError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def get_judge(name: str) -> JudgeSpec:
    try:
        return registered()[name]
    except KeyError:
        known = ", ".join(sorted(registered()))
        raise UnknownJudgeError(f"unknown judge {name!r}; known judges: {known}. "
                       f"Add one in judges/registry.py (MODULES).") from None


def run_judge(name: str, sample: Sample, **params: Any) -> Verdict:
    return get_judge(name)(sample, **params)
