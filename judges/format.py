"""Format: reasoning inside the template's markers, then an answer, nothing after it, not truncated.

Templates:
- "think" (default): `<think>REASONING</think>ANSWER`.
- "r1_zero": the R1-Zero template `<think>REASONING</think> <answer>ANSWER</answer>`, nothing after `</answer>`.
- "special_token": the cold-start pattern `|special_token|REASONING|special_token|SUMMARY`.
Custom markers: pass `open_tag`/`close_tag` (and `answer_open`/`answer_close`).
Chat templates that prefill `<think>` in the prompt produce completions without it: pass `require_open=False`.
"""
from __future__ import annotations

from catalogs.records import Sample, Verdict, verdict
from catalogs.split import Markers, split_reasoning
from judges.base import JudgeSpec, params_model

NAME = "format"
VERSION = "1"

TEMPLATES: dict[str, dict[str, str | None]] = {
    "think": {"open_tag": "<think>", "close_tag": "</think>", "answer_open": None, "answer_close": None},
    "r1_zero": {"open_tag": "<think>", "close_tag": "</think>", "answer_open": "<answer>",
                "answer_close": "</answer>"},
    "special_token": {"open_tag": "|special_token|", "close_tag": "|special_token|", "answer_open": None,
                      "answer_close": None},
}


def judge(sample: Sample, *, template: str = "think", open_tag: str | None = None, close_tag: str | None = None,
          answer_open: str | None = None, answer_close: str | None = None, require_open: bool = True) -> Verdict:
    if template not in TEMPLATES:
        raise ValueError(f"unknown format template {template!r}; known: {', '.join(TEMPLATES)}")
    t = dict(TEMPLATES[template])
    for key, val in (("open_tag", open_tag), ("close_tag", close_tag), ("answer_open", answer_open),
                     ("answer_close", answer_close)):
        if val is not None:
            t[key] = val
    o, c, ao, ac = t["open_tag"] or "", t["close_tag"] or "", t["answer_open"], t["answer_close"]

    def fail(reason: str) -> Verdict:
        return verdict(NAME, VERSION, 0.0, False, reason, template=template)

    if sample.finish_reason == "length":
        return fail("truncated")
    text = sample.text.strip()
    # The structure is checked here; the reasoning and answer are cut out by the one splitter.
    if o == c:  # same marker both sides (|special_token|): exactly two occurrences
        n = text.count(o)
        if n < 2:
            return fail("missing_close_tag" if n == 1 else "missing_open_tag")
        if n > 2:
            return fail("repeated_tags")
        if not text.startswith(o):
            return fail("text_before_open_tag")
    else:
        if text.count(c) == 0:
            return fail("missing_close_tag")
        if text.count(c) > 1 or text.count(o) > 1:
            return fail("repeated_tags")
        head = text.partition(c)[0]
        if o in head:
            if head.split(o, 1)[0].strip():
                return fail("text_before_open_tag")
        elif require_open:
            return fail("missing_open_tag")
    reasoning, answer = split_reasoning(text, Markers(o or None, c or None, ao, ac))
    if not (reasoning or "").strip():
        return fail("empty_reasoning")
    if ao and ac:
        rest = text[text.rfind(c) + len(c):].strip()  # the close marker is the last one of its kind
        if not rest.startswith(ao):
            return fail("missing_answer_tags")
        if rest.count(ao) != 1 or rest.count(ac) != 1:
            return fail("missing_answer_tags" if ac not in rest else "repeated_tags")
        if rest[len(ao):].partition(ac)[2].strip():
            return fail("text_after_answer")
    if not answer:
        return fail("no_answer")
    return verdict(NAME, VERSION, 1.0, True, "ok", template=template)


JUDGE = JudgeSpec(NAME, VERSION, "rule", params_model(judge), judge=judge)
