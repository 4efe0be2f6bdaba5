"""arithmetic_steps: false steps and miscopied problems fail, the problem's own evaluation passes."""
from __future__ import annotations

import pytest

from catalogs.records import Sample
from judges.arithmetic_steps import judge
from judges.registry import get_judge


def sample(problem: str, reasoning: str, answer: str = "") -> Sample:
    return Sample(problem=problem, reasoning=reasoning, answer=answer, text=f"<think>{reasoning}</think>{answer}")


@pytest.mark.parametrize(("problem", "reasoning", "follows", "reason"), [
    ("7+5-8", "7+5=12, 12-8=4", True, "correct"),
    ("3-8+2", "3-8=-5, -5+2=-3", True, "correct"),
    ("6-2+5", "6-2=3, 3+6=9", False, "false_step"),          # right answer, false step
    ("6-2+5", "7-3=4, 4+5=9", False, "correct"),            # true steps: only follows_problem sees the miscopy
    ("6-2+5", "7-3=4, 4+5=9", True, "off_problem"),
    ("6-2+5", "6-2=4", True, "off_problem"),                # a step missing
    ("6-2+5", "the answer is nine", False, "no_steps"),
    ("what is six minus two?", "6-2=4", True, "not_a_chain"),
    ("2*3", "2×3=6", True, "correct"),
    ("1/4", "1/4=0.25", True, "correct"),
    ("1/0", "1/0=0", False, "false_step"),
])
def test_steps(problem: str, reasoning: str, follows: bool, reason: str) -> None:
    v = judge(sample(problem, reasoning, "The answer is \\boxed{9}."), follows_problem=follows)
    assert (v.reason, v.passed) == (reason, reason == "correct")


def test_false_step_is_named_and_the_judge_is_registered() -> None:
    v = judge(sample("6-2+5", "6-2=3, 3+6=9"))
    assert v.details["value"] == "6-2=3"
    spec = get_judge("arithmetic_steps")
    assert spec.kind == "rule" and "follows_problem" in spec.params.model_fields
    # No reasoning markers: the whole text is read.
    assert judge(Sample(problem="1+1", text="1+1=2 so 2"), follows_problem=True).passed
