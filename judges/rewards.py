"""The bridge to trl: judges as GRPO reward functions, so training scores with exactly these judges.

trl's GRPOTrainer calls each reward function as `f(prompts=..., completions=..., **columns)`, where
completions are strings (standard format) or lists of chat messages (conversational format) and
the keyword arguments carry the dataset's other columns (`answer`, `tests`, `language`, ...)
plus trl's own (`completion_ids`, `trainer_state`, ...), and expects one float per completion, or None where
the reward does not apply (trl leaves it out of that completion's sum).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from catalogs.records import Sample, Verdict
from catalogs.split import Markers, split_reasoning
from judges.registry import get_judge

RewardFunc = Callable[..., list[float | None]]
# A step's samples scored at once: a model judge as training holds it (its model asked once per batch).
BatchScore = Callable[[Sequence[Sample]], Sequence[Verdict | float]]

# Dataset columns that carry the reference answer, first match wins.
REFERENCE_COLUMNS = ("answer", "reference", "solution", "ground_truth", "gold")


def completion_text(completion: Any) -> str:
    """The generated text from a plain string or a list of chat messages (assistant turns joined)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence):
        parts = [m.get("content") or "" for m in completion if isinstance(m, Mapping)
                 and m.get("role", "assistant") == "assistant"]
        return "".join(str(p) for p in parts)
    return str(completion)


def prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        users = [m.get("content") or "" for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return ""


def _column(kwargs: Mapping[str, Any], names: Sequence[str], i: int) -> Any:
    for name in names:
        col = kwargs.get(name)
        if col is not None and i < len(col):
            return col[i]
    return None


def samples_from_batch(prompts: Sequence[Any] | None, completions: Sequence[Any], kwargs: Mapping[str, Any],
                       *, open_tag: str = "<think>", close_tag: str = "</think>") -> list[Sample]:
    out = []
    for i, completion in enumerate(completions):
        text = completion_text(completion)
        reasoning, answer = split_reasoning(text, Markers(open_tag, close_tag))
        ref = _column(kwargs, REFERENCE_COLUMNS, i)
        tests = _column(kwargs, ("tests", "test"), i)
        if tests is not None and not isinstance(tests, str):
            tests = json.dumps(tests)
        lang = _column(kwargs, ("language",), i)
        finish = _column(kwargs, ("finish_reason",), i)
        problem = _column(kwargs, ("problem",), i)  # the bare question, where the dataset carries it
        if problem is None:
            problem = prompt_text(prompts[i]) if prompts is not None and i < len(prompts) else ""
        out.append(Sample(problem=str(problem),
                          reference=None if ref is None else str(ref), tests=tests, language=lang or "en",
                          text=text, reasoning=reasoning or "", answer=answer, finish_reason=finish))
    return out


def _as_score(result: Verdict | float | bool) -> float:
    if isinstance(result, Verdict):
        return float(result.score)
    return float(result)


def reward_func(judge: str | Callable[[Sample], Verdict | float], *, weight: float = 1.0,
                params: Mapping[str, Any] | None = None, name: str | None = None, batch: BatchScore | None = None,
                applies: str | None = None) -> RewardFunc:
    """One trl reward function from a registered judge name or a callable Sample -> Verdict | float.

    batch: scores a step's samples at once (a model judge, opened by the caller); `judge` then only names it.
    applies: a dataset column of booleans; where it is false the reward is None, not scored (a reward for some
    prompts only: rule rewards on reasoning prompts, a reward model on the rest).
    """
    params = dict(params or {})
    score_one: Callable[[Sample], Verdict | float] | None = None
    if isinstance(judge, str):
        fname = name or judge
        if batch is None:
            spec = get_judge(judge)
            score_one = lambda s: spec(s, **params)
            if spec.batch_rewards:
                batch = lambda samples: spec.judge_many(samples, **params)
    else:
        score_one = (lambda s: judge(s, **params)) if params else judge
        fname = name or str(getattr(judge, "__name__", "reward"))

    def f(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float | None]:
        samples = samples_from_batch(prompts, completions, kwargs)
        keep = [i for i in range(len(samples)) if applies is None or _column(kwargs, (applies,), i)]
        picked = [samples[i] for i in keep]
        if not picked:
            results: Sequence[Verdict | float] = []
        elif batch is not None:
            results = batch(picked)
        else:
            assert score_one is not None  # a judge name without a batch, or a callable
            results = [score_one(s) for s in picked]
        out: list[float | None] = [None] * len(samples)
        for i, r in zip(keep, results, strict=True):
            out[i] = weight * _as_score(r)
        return out

    f.__name__ = fname
    f.__qualname__ = fname
    return f


def gated_reward(func: RewardFunc, gates: Sequence[tuple[str, Mapping[str, Any]]]) -> RewardFunc:
    """`func`'s score where every gate judge passes, else 0 (None, a prompt `func` does not score, stays None);
    named `<func>_if_<gate>...`, trl's log key.

    The format as a condition of the accuracy reward: the answer counts only in the right format. As a prize of
    equal weight beside accuracy instead, a well-formed wrong answer earns as much as a right one; where most
    samples are well formed and few are right (Mini-R1's base under an instruction-line prompt: 85% and 6%), most
    of the format reward goes to wrong answers, and GRPO reinforces them.
    """
    specs = [(get_judge(judge), dict(params)) for judge, params in gates]
    if not specs:
        raise ValueError("give at least one gate judge")

    def f(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float | None]:
        scores = func(prompts, completions, **kwargs)
        samples = samples_from_batch(prompts, completions, kwargs)
        return [score if score is None or all(spec(s, **p).passed for spec, p in specs) else 0.0
                for score, s in zip(scores, samples)]

    f.__name__ = f.__qualname__ = "_if_".join([func.__name__, *(judge for judge, _ in gates)])
    return f


def as_reward_funcs(judges: Sequence[str | Callable[[Sample], Verdict | float]],
                    weights: Sequence[float] | None = None,
                    params: Mapping[str, Mapping[str, Any]] | None = None) -> list[RewardFunc]:
    """One reward function per judge, each named after it (trl logs `rewards/<name>/mean`).

    weights scale each function's output; leave trl's `reward_weights` unset when you use them here.
    params maps a judge name to its keyword parameters, e.g. {"format": {"require_open": False}}.
    """
    weights = list(weights) if weights is not None else [1.0] * len(judges)
    if len(weights) != len(judges):
        raise ValueError(f"{len(judges)} judges but {len(weights)} weights; give one weight per judge")
    params = params or {}
    out = []
    for j, w in zip(judges, weights):
        key = j if isinstance(j, str) else getattr(j, "__name__", "")
        out.append(reward_func(j, weight=w, params=params.get(key)))
    return out


def combined_reward(judges: Sequence[str | Callable[[Sample], Verdict | float]],
                    weights: Sequence[float] | None = None,
                    params: Mapping[str, Mapping[str, Any]] | None = None, name: str = "combined") -> RewardFunc:
    """A single trl reward function: the weighted sum of the judges' scores."""
    funcs = as_reward_funcs(judges, weights, params)

    def f(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float | None]:
        totals: list[float | None] = [None] * len(completions)
        for fn in funcs:  # a reward that does not apply (None) adds nothing; None where none applies, as trl reads it
            totals = [a if b is None else (a or 0.0) + b for a, b in zip(totals, fn(prompts, completions, **kwargs))]
        return totals

    f.__name__ = f.__qualname__ = name
    return f
