"""Preference scoring for general (non-reasoning) data, as in R1's all-scenario RL:
helpfulness is judged on the final summary only, harmlessness on the whole response (reasoning
included). Each goes either through the LLM judge with a versioned rubric file, or through a
reward model (a transformers sequence classifier loaded from a local path).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends.base import Backend, ChatRequest
from catalogs.errors import RecipeError
from catalogs.records import Sample, Verdict, verdict
from judges.base import BatchJudge, JudgeSpec, params_model
from judges.llm_judge import load_prompt, parse_json_object, render

VERSION = "1"
ASPECTS = ("helpfulness", "harmlessness")

SCORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
        "reason": {"type": "string", "maxLength": 200},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}


def text_for(sample: Sample, aspect: str) -> str:
    """Helpfulness sees the final summary only; harmlessness sees everything the model wrote."""
    if aspect == "helpfulness":
        return sample.answer.strip()
    if aspect == "harmlessness":
        if sample.text.strip():
            return sample.text.strip()
        return "\n\n".join(p for p in (sample.reasoning.strip(), sample.answer.strip()) if p)
    raise ValueError(f"unknown aspect {aspect!r}; known: {', '.join(ASPECTS)}")


def parse_score(text: str, *, judge: str, version: str, pass_score: int) -> Verdict:
    obj = parse_json_object(text)
    raw = obj.get("score") if obj else None
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 1 <= raw <= 10:
        return verdict(judge, version, 0.0, False, "unparseable_judge_response", raw=(text or "")[:300])
    return verdict(judge, version, (float(raw) - 1) / 9, raw >= pass_score, "scored", raw_score=raw,
                   pass_score=pass_score, judge_reason=str(obj.get("reason", ""))[:300] if obj else "")


def score_with_llm(samples: Sequence[Sample], backend: Backend, aspect: str, *, rubric: str | None = None,
                   pass_score: int = 6, max_tokens: int = 128, seed: int | None = 0,
                   request_extra: dict[str, Any] | None = None) -> list[Verdict]:
    """Rubric scores 1-10 via the LLM judge; Verdict.score is (raw - 1) / 9, passed when raw >= pass_score.

    rubric: a prompt name in judges/prompts (default `<aspect>_v1`) or a path to a rubric file.
    request_extra: `ChatRequest.extra` for every request (backend-specific options).
    """
    rubric = rubric or f"{aspect}_v1"
    template = load_prompt(rubric)
    name, version = f"{aspect}_llm", f"{VERSION}+{Path(rubric).stem}"
    out: list[Verdict | None] = [None] * len(samples)
    todo = []
    for i, s in enumerate(samples):
        if not text_for(s, aspect):
            out[i] = verdict(name, version, 0.0, False, "no_summary" if aspect == "helpfulness" else "empty_response")
        else:
            todo.append(i)
    reqs = [ChatRequest(messages=[{"role": "user", "content": render(template, question=samples[i].problem,
                                                                     response=text_for(samples[i], aspect))}],
                        temperature=0.0, top_p=1.0, max_tokens=max_tokens, seed=seed, json_schema=SCORE_SCHEMA,
                        key=samples[i].generation_id or str(i), extra=dict(request_extra or {})) for i in todo]
    if reqs:
        for i, comps in zip(todo, backend.generate(reqs)):
            out[i] = parse_score(comps[0].text if comps else "", judge=name, version=version, pass_score=pass_score)
    return out  # type: ignore[return-value]


def reward_model_tokenizer(tokenizer: Any) -> Any:
    """A reward model's tokenizer, ready to pad a batch: the pad token is the EOS (else the unknown token) where the
    tokenizer has none. The one rule for training a reward model (training/reward.py) and scoring with it."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def reward_model_text(tokenizer: Any, question: str, response: str) -> str:
    """What a reward model reads of a (question, response) pair: the conversation through the tokenizer's chat
    template, or `User: …\nAssistant: …` without one. Training (training/reward.py) and scoring both read it
    through here, so a reward model scores the text it was trained on."""
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": response}]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        assert isinstance(text, str)  # tokenize=False: text, not ids
        return text
    return f"User: {question}\nAssistant: {response}"


class RewardModelScorer:
    """A sequence classifier (one logit = reward) loaded from a local directory or a Hub id (org/name).

    Verdict.score is sigmoid(reward); passed when the raw reward >= `threshold`.
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", max_length: int = 2048, batch_size: int = 8,
                 threshold: float = 0.0):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        text = str(path)
        hub_id = not Path(text).exists() and text.count("/") == 1 and not text.startswith((".", "/", "~"))
        if not hub_id and not (Path(path) / "config.json").exists():
            raise FileNotFoundError(f"reward model directory {path} has no config.json; give the directory "
                                    f"written by save_pretrained(), or a Hub id (org/name)")
        path = text if hub_id else Path(path)  # a Hub id: transformers fetches it (or finds it in its cache)
        self.torch = torch
        self.tokenizer = reward_model_tokenizer(AutoTokenizer.from_pretrained(path))
        self.model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device, self.max_length, self.batch_size, self.threshold = device, max_length, batch_size, threshold
        self.name = Path(path).name

    def rewards(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            texts = [reward_model_text(self.tokenizer, q, r) for q, r in pairs[start:start + self.batch_size]]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length).to(self.device)
            with self.torch.no_grad():
                logits = self.model(**enc).logits
            out += [float(x) for x in logits[:, 0].float().cpu()]
        return out

    def score(self, samples: Sequence[Sample], aspect: str) -> list[Verdict]:
        name = aspect  # the judge's own name: the catalog finds the verdict under it (a rerun judges nothing)
        texts = [text_for(s, aspect) for s in samples]
        idx = [i for i, t in enumerate(texts) if t]
        rewards = dict(zip(idx, self.rewards([(samples[i].problem, texts[i]) for i in idx])))
        out = []
        for i in range(len(samples)):
            if i not in rewards:
                out.append(verdict(name, VERSION, 0.0, False,
                                   "no_summary" if aspect == "helpfulness" else "empty_response"))
                continue
            r = rewards[i]
            out.append(verdict(name, VERSION, 1 / (1 + math.exp(-max(min(r, 60.0), -60.0))), r >= self.threshold,
                               "scored", reward=r, reward_model=self.name, threshold=self.threshold))
        return out


def open_judge(aspect: str, backend: Backend | None, *, reward_model: str | None = None,
               **params: Any) -> BatchJudge:
    """The `aspect` judge for a run: a reward model when params name one (`reward_model: PATH`), else the LLM
    judge with a rubric through `backend`, the model the driver built from the step's `backend`."""
    if reward_model is not None:
        scorer = RewardModelScorer(reward_model, **params)
        return lambda samples: scorer.score(samples, aspect)
    if backend is None:
        raise RecipeError(f"judges: {aspect} needs a `backend` (the judging model) or params.reward_model: PATH")
    return lambda samples: score_with_llm(samples, backend, aspect, **params)


def declare(aspect: str) -> JudgeSpec:
    """The declaration of the helpfulness or harmlessness judge (judges/helpfulness.py, judges/harmlessness.py)."""
    return JudgeSpec(aspect, VERSION, "model", params_model(score_with_llm, RewardModelScorer.__init__,
                                                            reward_model=(str | None, None)),
                     open=lambda backend, **params: open_judge(aspect, backend, **params),
                     path_params=("reward_model",))
