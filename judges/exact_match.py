"""Exact match: the answer (the summary after the reasoning) against the reference, as text.

For answers that are strings, not math: a greeting, a capital, a translated word. Both sides are normalised
the same way before they are compared, so that only the words decide:
- whitespace: leading and trailing stripped, every inner run collapsed to one space;
- case: folded (`str.casefold`);
- trailing punctuation: any run of `.`, `!`, `?`, `,`, `;`, `:` at the end dropped ("Paris." equals "paris").
Punctuation inside the text stays ("Hello! How can I help?" needs its inner "!").
A sample with no separable answer (no reasoning markers) is read whole, as the math judge reads it.
"""
from __future__ import annotations

import re

from catalogs.records import Sample, Verdict, verdict
from judges.base import JudgeSpec, params_model

NAME = "exact_match"
VERSION = "1"

_SPACES = re.compile(r"\s+")
TRAILING_PUNCTUATION = ".!?,;:"


def normalise(text: str) -> str:
    """The form both sides are compared in: whitespace collapsed, case folded, trailing punctuation dropped."""
    return _SPACES.sub(" ", text).strip().casefold().rstrip(TRAILING_PUNCTUATION).rstrip()


def judge(sample: Sample) -> Verdict:
    if sample.reference is None or not normalise(str(sample.reference)):
        return verdict(NAME, VERSION, 0.0, False, "no_reference")
    # Reasoning with nothing after it has no answer; only a sample with no reasoning at all is read whole.
    answer = sample.answer if sample.answer.strip() or sample.reasoning.strip() else sample.text
    if sample.finish_reason == "length":
        return verdict(NAME, VERSION, 0.0, False, "truncated", predicted=answer[:200])
    got, want = normalise(answer), normalise(str(sample.reference))
    if not got:
        return verdict(NAME, VERSION, 0.0, False, "no_answer")
    ok = got == want
    return verdict(NAME, VERSION, 1.0 if ok else 0.0, ok, "correct" if ok else "wrong_answer",
                   predicted=got[:200], expected=want[:200])


JUDGE = JudgeSpec(NAME, VERSION, "rule", params_model(judge), judge=judge)
