"""Model judges as GRPO rewards: a reward model loaded by path or Hub id, or the LLM judge through any backend.

A model judge stays pure (judges/base.py): this is the driver that hands it its model, as `r1f judge` does. Per
training, each model reward's client is built once (`open`, before the first step) and the judge is asked once
per step with the whole batch of completions its `where` selects. A transient failure (the backend gave up, a
reply that does not parse) asks again, through catalogs.retry; one that persists stops the training with
`RewardJudgeError`, naming the reward and the last failure. A completion is never scored 0 because its judge
failed: that would teach the policy from an outage.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from backends.base import Backend, BackendError
from catalogs.errors import RecipeError, UserError
from catalogs.records import Sample, Verdict
from catalogs.retry import retry_call
from judges.base import JUDGE_FAILURES, BatchJudge
from judges.registry import get_judge
from training.recipe import RewardSpec
from training.runs import model_is_missing

log = logging.getLogger("training")

# The wait before asking again doubles from FIRST_WAIT_S up to MAX_WAIT_S (with full jitter; catalogs.retry).
FIRST_WAIT_S, MAX_WAIT_S = 1.0, 30.0


class RewardJudgeError(UserError, RuntimeError):
    """A model reward's judge kept failing; the training stops rather than score completions without it."""


class _JudgeFailed(Exception):
    """Some of a batch's verdicts say the judge failed (JUDGE_FAILURES): ask again."""


def _transient(exc: BaseException) -> bool:
    # BackendError: an endpoint or engine gave up after its own retries (or refused; asking again costs little).
    return isinstance(exc, (BackendError, _JudgeFailed, OSError, TimeoutError))


def _this_process_device() -> str:
    """Where a reward model runs by default: this training process's GPU (accelerate's LOCAL_RANK), else the CPU."""
    import torch

    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


class ModelReward:
    """One model judge as a GRPO reward: `open()` builds its client and judge once; calling it scores a batch."""

    def __init__(self, reward: RewardSpec, index: int, where: str) -> None:
        self.reward, self.spec = reward, get_judge(reward.judge)
        self.at = f"{where}: rewards[{index}]"
        self.client: Backend | None = None
        self.judge: BatchJudge | None = None

    def check(self) -> None:
        """What needs no weights: a reward model written as a local path must exist."""
        rm = self.reward.params.get("reward_model")
        if isinstance(rm, str) and model_is_missing(rm):
            raise RecipeError(f"{self.at}.params.reward_model: {rm!r} does not exist; give the folder of a saved "
                              f"sequence classifier (save_pretrained) or a Hub id like org/name")

    def open(self) -> None:
        from judges.run import typed_params

        params = typed_params(self.spec, self.reward.params)
        if self.reward.params.get("reward_model") and "device" in self.spec.params.model_fields:
            params.setdefault("device", _this_process_device())
        if self.reward.backend is not None:
            from backends import get_backend
            from backends.config import backend_kwargs

            self.client = get_backend(self.reward.backend.name, **backend_kwargs(self.reward.backend))
        assert self.spec.open is not None  # a model judge declares it (JudgeSpec checks)
        try:
            self.judge = self.spec.open(self.client, **params)
        except RecipeError:
            self.close()
            raise
        except (OSError, ValueError) as exc:  # a reward model that does not load
            self.close()
            raise RecipeError(f"{self.at}: {self.reward.judge} could not load its model: {exc}") from None

    def __call__(self, samples: Sequence[Sample]) -> list[Verdict]:
        if self.judge is None:
            self.open()
        judge = self.judge
        assert judge is not None

        got: list[Verdict | None] = [None] * len(samples)

        def once() -> list[Verdict]:
            # Asks again for the samples still without a verdict only: a paid judge is not paid twice.
            todo = [i for i, v in enumerate(got) if v is None]
            failed = []
            for i, v in zip(todo, judge([samples[i] for i in todo]), strict=True):
                if v.reason in JUDGE_FAILURES:
                    failed.append(v)
                else:
                    got[i] = v
            if failed:
                first = failed[0]
                raise _JudgeFailed(f"{len(failed)} of {len(todo)} verdicts are {first.reason} (first: "
                                   f"{str(first.details.get('raw') or first.details.get('error') or '')[:200]!r})")
            return [v for v in got if v is not None]

        def retrying(attempt: int, exc: BaseException) -> None:
            log.warning("%s (%s): try %d of %d failed: %s; asking again", self.at, self.reward.judge, attempt,
                        self.reward.attempts, exc)

        try:
            return retry_call(once, when=_transient, attempts=self.reward.attempts, first_s=FIRST_WAIT_S,
                              max_s=MAX_WAIT_S, on_retry=retrying)
        except Exception as exc:
            tries = self.reward.attempts if _transient(exc) else 1
            raise RewardJudgeError(
                f"{self.at} ({self.reward.judge}) failed {tries} time(s) on a batch of {len(samples)} completions; "
                f"last failure: {type(exc).__name__}: {exc}. The training stops rather than score these completions "
                f"without their judge: fix the judge's model or endpoint (or raise `attempts`), then rerun with "
                f"--resume") from exc

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def open_all(rewards: Sequence[ModelReward]) -> None:
    """Open each model reward; if one fails, close those already open and raise its error."""
    for i, reward in enumerate(rewards):
        try:
            reward.open()
        except BaseException:
            for opened in rewards[:i]:
                opened.close()
            raise
