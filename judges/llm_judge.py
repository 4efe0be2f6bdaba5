"""The V3-style LLM judge: question + reference answer + prediction -> equivalent / different / ambiguous.

Used where rules cannot decide (or as a second opinion after a rule said "different"). Building the
prompt and parsing the reply are pure functions; only `judge_batch` talks to a backend, and
structured output (a JSON schema) makes the reply parse. A remote API may ignore the schema, so a
reply that does not parse becomes the verdict `unparseable_judge_response`, never an exception.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends.base import Backend, ChatRequest
from catalogs.errors import RecipeError
from catalogs.records import Sample, Verdict, verdict
from judges.base import BatchJudge, JudgeSpec, params_model

NAME = "llm_judge"
VERSION = "1"
PROMPTS_DIR = Path(__file__).parent / "prompts"
DEFAULT_PROMPT = "llm_judge_v1"
LABELS = ("equivalent", "different", "ambiguous")

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": list(LABELS)},
        "reason": {"type": "string", "maxLength": 200},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}


def load_prompt(name: str) -> str:
    """A versioned prompt file from judges/prompts by name (`llm_judge_v1`) or a path to one."""
    path = Path(name)
    if not path.suffix:
        path = PROMPTS_DIR / f"{name}.txt"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.txt")))
        raise FileNotFoundError(f"judge prompt {name!r} not found at {path}; known prompts: {known}")
    return path.read_text(encoding="utf-8")


def render(template: str, **values: str) -> str:
    """Fill `{{name}}` slots. Plain replacement, so braces and `$` in math content are safe."""
    out = template
    for key, val in values.items():
        out = out.replace("{{" + key + "}}", val)
    return out


def prediction_of(sample: Sample) -> str:
    """What the judge compares: the answer part, or the whole text when there is none."""
    return (sample.answer or sample.text).strip()


def build_request(sample: Sample, template: str, *, max_tokens: int = 256, temperature: float = 0.0,
                  seed: int | None = 0, key: str = "", extra: dict[str, Any] | None = None) -> ChatRequest:
    prompt = render(template, question=sample.problem, reference=str(sample.reference or ""),
                    prediction=prediction_of(sample))
    return ChatRequest(messages=[{"role": "user", "content": prompt}], n=1, temperature=temperature, top_p=1.0,
                       max_tokens=max_tokens, seed=seed, json_schema=VERDICT_SCHEMA,
                       key=key or sample.generation_id, extra=dict(extra or {}))


_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The reply as a JSON object; tolerates code fences or prose around it (remote APIs add them)."""
    text = (text or "").strip()
    for candidate in (text, *(m.group(0) for m in [_OBJECT.search(text)] if m)):
        try:
            obj = json.loads(candidate, strict=False)  # control characters inside strings are fine
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def parse_response(text: str, *, version: str = VERSION, prompt: str = DEFAULT_PROMPT,
                   finish_reason: str | None = None) -> Verdict:
    obj = parse_json_object(text)
    label = obj.get("verdict") if obj else None
    if not isinstance(label, str) or label.strip().lower() not in LABELS:
        return verdict(NAME, version, 0.0, False, "unparseable_judge_response", prompt=prompt,
                       raw=(text or "")[:300], finish_reason=finish_reason)
    label = label.strip().lower()
    reason = obj.get("reason") if obj else ""
    ok = label == "equivalent"
    return verdict(NAME, version, 1.0 if ok else 0.0, ok, label, prompt=prompt,
                   judge_reason=str(reason or "")[:300])


def judge_batch(samples: Sequence[Sample], backend: Backend, *, prompt: str = DEFAULT_PROMPT,
                max_tokens: int = 256, temperature: float = 0.0, seed: int | None = 0,
                on_backend_error: str = "raise", request_extra: dict[str, Any] | None = None) -> list[Verdict]:
    """Verdicts for `samples`, in order, from one batched `backend.generate` call.

    on_backend_error: "raise" (default: an outage is not a verdict, so nothing false gets cached)
    or "verdict" (each pending sample gets reason `judge_backend_error`).
    request_extra: `ChatRequest.extra` for every request (backend-specific options, e.g.
    `{"body": {"logit_bias": ...}}` for an OpenAI-compatible server).
    """
    template = load_prompt(prompt)
    version = f"{VERSION}+{Path(prompt).stem}"
    out: list[Verdict | None] = [None] * len(samples)
    todo: list[int] = []
    for i, s in enumerate(samples):
        if s.reference is None or not str(s.reference).strip():
            out[i] = verdict(NAME, version, 0.0, False, "no_reference", prompt=prompt)
        elif not prediction_of(s):
            out[i] = verdict(NAME, version, 0.0, False, "no_prediction", prompt=prompt)
        else:
            todo.append(i)
    if todo:
        requests = [build_request(samples[i], template, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                  key=samples[i].generation_id or str(i), extra=request_extra) for i in todo]
        try:
            results = backend.generate(requests)
        except Exception as exc:
            if on_backend_error != "verdict":
                raise
            for i in todo:
                out[i] = verdict(NAME, version, 0.0, False, "judge_backend_error", prompt=prompt,
                                 error=f"{type(exc).__name__}: {exc}"[:300])
            return out  # type: ignore[return-value]
        for i, comps in zip(todo, results):
            comp = comps[0] if comps else None
            out[i] = parse_response(comp.text if comp else "", version=version, prompt=prompt,
                                    finish_reason=comp.finish_reason if comp else None)
    return out  # type: ignore[return-value]


def open_judge(backend: Backend | None, **params: Any) -> BatchJudge:
    """The judge for a run: `backend` is the judging model, built by the driver from the step's `backend`."""
    if backend is None:
        raise RecipeError(f"judges: {NAME} needs a `backend` (the judging model)")
    return lambda samples: judge_batch(samples, backend, **params)


JUDGE = JudgeSpec(NAME, VERSION, "model", params_model(judge_batch), open=open_judge,
                  version_of=lambda params: f"{VERSION}+{Path(params.get('prompt', DEFAULT_PROMPT)).stem}")
