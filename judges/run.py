"""`r1f judge RECIPE`: run a recipe's judges over the generations that lack their verdict.

The judges stay pure; this driver is the one place that reads samples from the catalog and writes
verdicts back. A verdict is keyed by (generation, judge, version), where the version includes a hash of
the judge's params: judging again with the same judge and params costs nothing.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backends.config import BackendConfig
from catalogs.errors import RecipeError
from catalogs.records import Sample, Verdict, sample_from_row
from catalogs.stage import Step, Work, run_steps
from judges.registry import get_judge


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Judges that ask a model, batch by batch, through the factory's backends (not in the rule registry).
MODEL_JUDGES = ("llm_judge", "helpfulness", "harmlessness")


class JudgeStep(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    # SQL predicate over generation and prompt columns, e.g. "domain = 'math'". A second opinion where a
    # rule said "different": "generation_id IN (SELECT generation_id FROM verdicts WHERE judge =
    # 'math_accuracy' AND NOT passed)".
    where: str | None = None
    # For llm_judge / helpfulness / harmlessness: the model that judges (DeepSeek's API, a served model, or
    # the in-process engine), as in a generation recipe. helpfulness/harmlessness may instead name a reward
    # model (a sequence classifier) with params.reward_model: PATH.
    backend: BackendConfig | None = None


class JudgeRecipe(_Strict):
    name: str | None = None
    description: str | None = None
    where: str | None = None
    judges: list[JudgeStep]
    workers: int = Field(default=2, ge=1)
    batch_rows: int = Field(default=1000, ge=1)


def versioned(name: str, params: dict[str, Any], backend: BackendConfig | None = None) -> str:
    """The judge's code version, plus a hash of non-default params (and the judging model) so a change
    re-judges."""
    version = _model_judge_version(name, params) if name in MODEL_JUDGES else get_judge(name).version
    if backend is not None:
        params = {**params, "_model": backend.model}
    if not params:
        return version
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{version}+{digest}"


def verdict_rows(samples: list[Sample], verdicts: list[Verdict], version: str) -> list[dict[str, Any]]:
    return [{"generation_id": s.generation_id, "judge": v.judge, "judge_version": version, "score": v.score,
             "passed": v.passed, "reason": v.reason, "details": v.details} for s, v in zip(samples, verdicts)]


def _model_judge_version(name: str, params: dict[str, Any]) -> str:
    if name == "llm_judge":
        from judges import llm_judge

        return f"{llm_judge.VERSION}+{Path(params.get('prompt', llm_judge.DEFAULT_PROMPT)).stem}"
    from judges import preference

    return str(preference.VERSION)


class _ModelJudge:
    """A judge that asks a model: the backend is built once and reused for every batch."""

    def __init__(self, step: JudgeStep) -> None:
        params = dict(step.params)
        self.step, self.params, self.scorer, self.backend = step, params, None, None
        if step.name != "llm_judge" and "reward_model" in params:
            from judges.preference import RewardModelScorer

            self.scorer = RewardModelScorer(params.pop("reward_model"), **params)
        elif step.backend is None:
            raise RecipeError(f"judges: {step.name} needs a `backend` (the judging model)"
                              + ("" if step.name == "llm_judge" else " or params.reward_model: PATH"))
        else:
            from backends import get_backend
            from backends.config import backend_kwargs

            self.backend = get_backend(step.backend.name, **backend_kwargs(step.backend))

    def judge_many(self, samples: list[Sample], workers: int = 1) -> list[Verdict]:
        if self.scorer is not None:
            return self.scorer.score(samples, self.step.name)
        if self.step.name == "llm_judge":
            from judges.llm_judge import judge_batch

            assert self.backend is not None  # no scorer: __init__ built the backend
            return judge_batch(samples, self.backend, **self.params)
        from judges.preference import score_with_llm

        assert self.backend is not None
        return score_with_llm(samples, self.backend, self.step.name, **self.params)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


class _RuleJudge:
    def __init__(self, step: JudgeStep) -> None:
        self.spec, self.params = get_judge(step.name), step.params

    def judge_many(self, samples: list[Sample], workers: int = 1) -> list[Verdict]:
        return self.spec.judge_many(samples, workers=workers, **self.params)

    def close(self) -> None:
        pass



def judge_catalog(catalog: Any, recipe: JudgeRecipe,
                  progress: Callable[[str, int, int], None] | None = None,
                  executor: Any = None) -> dict[str, dict[str, int]]:
    """Judge every generation the recipe selects that lacks the verdict; returns counts per judge.

    Judges share a pass over the texts (see catalogs.stage); a judge whose `where` reads verdicts (a second
    opinion) runs after the verdicts before it are written. Verdicts are written after every batch: a model
    judge's batch may take minutes, and none of that is lost to a crash.

    With an `executor` (a Ray cluster's), rule judges run there, `recipe.workers` batches at a time; model
    judges still ask their model from here."""
    for step in recipe.judges:  # unknown names fail before any work
        if step.name not in MODEL_JUDGES:
            get_judge(step.name)
    catalog.require_generations("judge")
    steps = []
    for step in recipe.judges:
        judge = _LazyJudge(step, versioned(step.name, step.params, step.backend), recipe.workers)
        where, key = [recipe.where, step.where], ("verdict", step.name, judge.version)
        if executor is not None and step.name not in MODEL_JUDGES:
            steps.append(Step(step.name, where, key, finish=_computed,
                              work=Work(_rule_verdicts, (step.name, dict(step.params), judge.version))))
        else:
            steps.append(Step(step.name, where, key, finish=judge, close=judge.close))
    done = run_steps(catalog, steps, write=lambda outputs: catalog.add_verdicts([r for o in outputs for r in o]),
                     batch_rows=recipe.batch_rows, progress=progress, flush_rows=1,
                     workers=recipe.workers if executor is not None else 1, executor=executor)
    return {name: {"judged": c["done"], "passed": c["passed"]} for name, c in done.items()}


def _rule_verdicts(name: str, params: dict[str, Any], version: str) -> Callable[[Any], list[dict[str, Any]]]:
    """A rule judge as a step's pure part (built once per worker): verdict rows for a batch."""
    spec = get_judge(name)

    def run(batch: Any) -> list[dict[str, Any]]:
        samples = [sample_from_row(row) for row in batch.iter_rows(named=True)]
        return verdict_rows(samples, spec.judge_many(samples, workers=1, **params), version)

    return run


def _computed(batch: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows


class _LazyJudge:
    """Verdict rows for a batch; the judge (and its model) is built at the first batch: nothing to judge,
    no model loaded."""

    def __init__(self, step: JudgeStep, version: str, workers: int) -> None:
        self.step, self.version, self.workers = step, version, workers
        self.judge: _ModelJudge | _RuleJudge | None = None

    def __call__(self, batch: Any, _: Any = None) -> list[dict[str, Any]]:
        if self.judge is None:
            self.judge = _ModelJudge(self.step) if self.step.name in MODEL_JUDGES else _RuleJudge(self.step)
        samples = [sample_from_row(row) for row in batch.iter_rows(named=True)]
        return verdict_rows(samples, self.judge.judge_many(samples, workers=self.workers), self.version)

    def close(self) -> None:
        if self.judge is not None:
            self.judge.close()
