"""`r1f judge RECIPE`: run a recipe's judges over the generations that lack their verdict.

The judges stay pure; this driver is the one place that reads samples from the catalog and writes
verdicts back. A verdict is keyed by (generation, judge, version), where the version includes a hash of
the judge's params: judging again with the same judge and params costs nothing.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl
from pydantic import Field, ValidationInfo, field_validator

from backends.config import BackendConfig
from catalogs.recipes import Strict, recipe_file_of, resolve_paths, validate_nested
from catalogs.records import Sample, Verdict, sample_from_row
from catalogs.stage import StageStore, Step, Work, run_steps
from judges.base import BatchJudge, JudgeSpec
from judges.registry import get_judge, registered


class JudgeStep(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    # SQL predicate over generation and prompt columns, e.g. "domain = 'math'". A second opinion where a
    # rule said "different": "generation_id IN (SELECT generation_id FROM verdicts WHERE judge =
    # 'math_accuracy' AND NOT passed)".
    where: str | None = None
    # For a model judge (llm_judge, helpfulness, harmlessness): the model that judges (DeepSeek's API, a served
    # model, or the in-process engine), as in a generation recipe. helpfulness/harmlessness may instead name a
    # reward model (a sequence classifier) with params.reward_model: PATH.
    backend: BackendConfig | None = None

    @field_validator("params")
    @classmethod
    def _typed(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Checked against the judge's declared params as the recipe loads; an unknown name is left for
        judge_catalog, which lists the known ones."""
        spec = registered().get(info.data.get("name", ""))
        if spec is None:
            return params
        validate_nested(spec.params, params)
        return resolve_paths(params, spec.path_params, recipe_file_of(info))


class JudgeRecipe(Strict):
    name: str | None = None
    description: str | None = None
    where: str | None = None
    judges: list[JudgeStep]
    workers: int = Field(default=2, ge=1)
    batch_rows: int = Field(default=1000, ge=1)


class JudgeStore(StageStore, Protocol):
    """What judging needs from the catalog (catalogs.store.Catalog; the Ray driver hands in the same)."""

    def require_generations(self, verb: str) -> None: ...

    def add_verdicts(self, rows: list[dict[str, Any]]) -> int: ...


def versioned(name: str, params: dict[str, Any], backend: BackendConfig | None = None) -> str:
    """The judge's code version, plus a hash of non-default params (and the judging model) so a change
    re-judges."""
    version = get_judge(name).versioned(params)
    if backend is not None:
        params = {**params, "_model": backend.model}
    if not params:
        return version
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{version}+{digest}"


def verdict_rows(samples: list[Sample], verdicts: list[Verdict], version: str) -> list[dict[str, Any]]:
    return [{"generation_id": s.generation_id, "judge": v.judge, "judge_version": version, "score": v.score,
             "passed": v.passed, "reason": v.reason, "details": v.details} for s, v in zip(samples, verdicts)]


def typed_params(spec: JudgeSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The recipe's params as the judge takes them: validated (a dict becomes the dataclass a signature names),
    the judge's own defaults left to it."""
    model = spec.params.model_validate(params)
    return {key: getattr(model, key) for key in model.model_fields_set}


def judge_catalog(catalog: JudgeStore, recipe: JudgeRecipe,
                  progress: Callable[[str, int, int], None] | None = None,
                  executor: Any = None) -> dict[str, dict[str, int]]:
    """Judge every generation the recipe selects that lacks the verdict; returns counts per judge.

    Judges share a pass over the texts (see catalogs.stage); a judge whose `where` reads verdicts (a second
    opinion) runs after the verdicts before it are written. Verdicts are written after every batch: a model
    judge's batch may take minutes, and none of that is lost to a crash.

    With an `executor` (a Ray cluster's), rule judges run there, `recipe.workers` batches at a time; model
    judges still ask their model from here."""
    specs = [get_judge(step.name) for step in recipe.judges]  # unknown names fail before any work
    catalog.require_generations("judge")
    steps = []
    for step, spec in zip(recipe.judges, specs):
        judge = _LazyJudge(spec, step, versioned(step.name, step.params, step.backend), recipe.workers)
        where, key = [recipe.where, step.where], ("verdict", step.name, judge.version)
        if executor is not None and spec.kind == "rule":
            steps.append(Step(step.name, where, key, finish=_computed,
                              work=Work(_rule_verdicts, (step.name, dict(step.params), judge.version))))
        else:
            steps.append(Step(step.name, where, key, finish=judge, close=judge.close))
    done = run_steps(catalog, steps, write=lambda outputs: catalog.add_verdicts([r for o in outputs for r in o]),
                     batch_rows=recipe.batch_rows, progress=progress, flush_rows=1,
                     workers=recipe.workers if executor is not None else 1, executor=executor)
    return {name: {"judged": c["done"], "passed": c["passed"]} for name, c in done.items()}


def _rule_verdicts(name: str, params: dict[str, Any], version: str) -> Callable[[pl.DataFrame], list[dict[str, Any]]]:
    """A rule judge as a step's pure part (built once per worker): verdict rows for a batch."""
    spec = get_judge(name)
    typed = typed_params(spec, params)

    def run(batch: pl.DataFrame) -> list[dict[str, Any]]:
        samples = [sample_from_row(row) for row in batch.iter_rows(named=True)]
        return verdict_rows(samples, spec.judge_many(samples, workers=1, **typed), version)

    return run


def _computed(batch: pl.DataFrame, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows


class _LazyJudge:
    """Verdict rows for a batch; the judge (and its model) is made at the first batch: nothing to judge, no
    model loaded."""

    def __init__(self, spec: JudgeSpec, step: JudgeStep, version: str, workers: int) -> None:
        self.spec, self.step, self.version, self.workers = spec, step, version, workers
        self.judge: BatchJudge | None = None
        self.client: Any = None

    def _open(self) -> BatchJudge:
        params = typed_params(self.spec, self.step.params)
        if self.spec.kind == "rule":
            spec, workers = self.spec, self.workers
            return lambda samples: spec.judge_many(samples, workers=workers, **params)
        assert self.spec.open is not None  # a model judge declares it (JudgeSpec checks)
        if self.step.backend is not None:
            from backends import get_backend
            from backends.config import backend_kwargs

            self.client = get_backend(self.step.backend.name, **backend_kwargs(self.step.backend))
        return self.spec.open(self.client, **params)

    def __call__(self, batch: pl.DataFrame, _: Any = None) -> list[dict[str, Any]]:
        if self.judge is None:
            self.judge = self._open()
        samples = [sample_from_row(row) for row in batch.iter_rows(named=True)]
        return verdict_rows(samples, self.judge(samples), self.version)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


if TYPE_CHECKING:  # the type checker holds the catalog to what judging needs
    from catalogs.store import Catalog

    _catalog: type[JudgeStore] = Catalog
