"""What a judge module declares, once: `JUDGE = JudgeSpec(NAME, VERSION, "rule", params_model(judge), judge=judge)`.

Kinds:
- rule: `judge(sample, *, params...) -> Verdict`, optionally with `judge_many(samples, workers=2, *, params...)`
  for a batch at once (a process pool, threads around a sandbox);
- model: `open(model_client_or_None, **params)` -> `f(samples) -> verdicts`, built once per run and called batch
  after batch. The driver builds the client from the recipe step's `backend` and hands it in: the judge does no
  I/O of its own.

A judge's params are the keyword-only parameters of its functions, typed and defaulted there; `params_model`
turns them into the pydantic model a recipe's `params` are checked against at load, so a typo is an error
naming the file and line. Declaring them once in the signature keeps the defaults in one place.
"""
from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from catalogs.records import Sample, Verdict

Kind = Literal["rule", "model"]
# Verdict reasons that say the judge failed, not the sample (its model's reply did not parse, its backend failed): a
# GRPO reward asks again and never scores them 0 (training/model_rewards.py).
JUDGE_FAILURES = ("unparseable_judge_response", "judge_backend_error")
# A model judge as a run holds it: verdicts for a batch of samples, in order.
BatchJudge = Callable[[Sequence[Sample]], list[Verdict]]


class JudgeParams(BaseModel):
    """Base of every judge's params: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def params_model(*fns: Callable[..., Any], **more: Any) -> type[JudgeParams]:
    """The params model of the keyword-only parameters of `fns` (the first one wins a name), plus `more`
    fields given as (type, default)."""
    fields: dict[str, Any] = {}
    for fn in fns:
        hints = typing.get_type_hints(fn)
        for p in inspect.signature(fn).parameters.values():
            if p.kind is p.KEYWORD_ONLY and p.name not in fields:
                fields[p.name] = (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
    fields.update(more)
    name = getattr(fns[0], "__module__", "judge").rpartition(".")[2] if fns else "judge"
    model: type[JudgeParams] = create_model(f"{name}_params", __base__=JudgeParams, **fields)
    return model


@dataclass(frozen=True)
class JudgeSpec:
    """A judge as its module declares it; judges/registry.py lists the modules."""

    name: str
    version: str
    kind: Kind
    params: type[JudgeParams]
    judge: Callable[..., Verdict] | None = None  # rule: one sample
    many: Callable[..., list[Verdict]] | None = None  # rule, optional: a batch, `workers` at a time
    open: Callable[..., BatchJudge] | None = None  # model: (client or None, **params) -> batch judge
    # The version verdicts are stored under, where a param changes what the judge is (the LLM judge's prompt).
    version_of: Callable[[Mapping[str, Any]], str] | None = None
    # Params that name files: a relative path in a recipe file is resolved by catalogs.recipes.resolve_path.
    path_params: tuple[str, ...] = ()
    # As a GRPO reward, score a step's batch with `many` (the code judge: its sandboxes run side by side); others
    # score sample by sample in the trainer's process (a worker pool per step would cost more than it saves).
    batch_rewards: bool = False

    def __post_init__(self) -> None:
        if (self.kind == "rule") != (self.judge is not None) or (self.kind == "model") != (self.open is not None):
            raise TypeError(f"judge {self.name!r}: a rule judge gives `judge`, a model judge `open`")

    def versioned(self, params: Mapping[str, Any]) -> str:
        return self.version_of(params) if self.version_of is not None else self.version

    def __call__(self, sample: Sample, **params: Any) -> Verdict:
        """A rule judge on one sample (the factory's acceptance check, a GRPO reward)."""
        if self.judge is None:
            raise TypeError(f"judge {self.name!r} asks a model: run it with `r1f judge` and a `backend`")
        return self.judge(sample, **params)

    def judge_many(self, samples: Sequence[Sample], workers: int = 2, **params: Any) -> list[Verdict]:
        if self.many is not None:
            return self.many(samples, workers=workers, **params)
        return [self(s, **params) for s in samples]
