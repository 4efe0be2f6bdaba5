"""Name -> judge. Adding a judge is one file exposing NAME, VERSION and `judge(sample, **params)`,
plus one line in JUDGES below. Modules load lazily, so listing judges imports nothing heavy."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from catalogs.errors import UserError
from catalogs.records import Sample, Verdict


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    module: str  # dotted path of a module with NAME, VERSION, judge() and optionally judge_many()
    description: str = ""

    def _mod(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def version(self) -> str:
        return str(self._mod().VERSION)

    @property
    def fn(self) -> Callable[..., Verdict]:
        return self._mod().judge

    def __call__(self, sample: Sample, **params: Any) -> Verdict:
        return self._mod().judge(sample, **params)

    def judge_many(self, samples: Sequence[Sample], workers: int = 2, **params: Any) -> list[Verdict]:
        mod = self._mod()
        if hasattr(mod, "judge_many"):
            return mod.judge_many(samples, workers=workers, **params)
        return [mod.judge(s, **params) for s in samples]


JUDGES: dict[str, JudgeSpec] = {
    "math_accuracy": JudgeSpec("math_accuracy", "judges.math_accuracy", "last \\boxed{} vs reference, Math-Verify"),
    "format": JudgeSpec("format", "judges.format", "<think>…</think> then an answer, not truncated"),
    "language_consistency": JudgeSpec("language_consistency", "judges.language_consistency",
                                      "share of CoT words in the target language"),
    "code": JudgeSpec("code", "judges.code", "extracted program against the prompt's tests, sandboxed"),
}


class UnknownJudgeError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def get_judge(name: str) -> JudgeSpec:
    try:
        return JUDGES[name]
    except KeyError:
        known = ", ".join(sorted(JUDGES))
        raise UnknownJudgeError(f"unknown judge {name!r}; known judges: {known}. "
                       f"Add one in judges/registry.py (JUDGES).") from None


def run_judge(name: str, sample: Sample, **params: Any) -> Verdict:
    return get_judge(name)(sample, **params)
