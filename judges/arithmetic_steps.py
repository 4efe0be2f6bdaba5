"""Arithmetic steps: every equation the reasoning states is true, and (optionally) the steps compute the problem.

A process check for arithmetic chains, where `math_accuracy` checks the final answer only: a chain of thought
that lands on the right number through a false step (`6-2+5`: `6-2=3, 3+6=9`) or a miscopied problem
(`7-3=4, 4+5=9`) passes the answer judge and teaches wrong steps to whatever is trained on it. Each `A op B = C`
in the reasoning (integers or decimals; `+ - * / × ÷`) must hold. With `follows_problem`, the problem must be a chain like `7+5-8` and the steps
must be exactly its left-to-right evaluation, one operation per step (`7+5=12, 12-8=4`).

Reasons: correct, no_steps (no equation in the reasoning), false_step (`value` names it), off_problem (the steps do
not evaluate the problem in order), not_a_chain (follows_problem on a problem that is not one).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from catalogs.records import Sample, Verdict, verdict
from judges.base import JudgeSpec, params_model

NAME = "arithmetic_steps"
VERSION = "1"

_NUM = r"-?\d+(?:\.\d+)?"
EQUATION = re.compile(rf"({_NUM})\s*([-+*/×÷])\s*({_NUM})\s*=\s*({_NUM})")
CHAIN = re.compile(rf"^\s*({_NUM})((?:\s*[-+*/×÷]\s*{_NUM})+)\s*$")
_LINK = re.compile(rf"([-+*/×÷])\s*({_NUM})")
_OPS = {"×": "*", "÷": "/"}


def _apply(a: Decimal, op: str, b: Decimal) -> Decimal | None:
    op = _OPS.get(op, op)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b else None


def judge(sample: Sample, *, follows_problem: bool = False) -> Verdict:
    text = sample.reasoning if sample.reasoning.strip() else sample.text
    steps = EQUATION.findall(text)
    if not steps:
        return verdict(NAME, VERSION, 0.0, False, "no_steps")
    for a, op, b, c in steps:
        try:
            got = _apply(Decimal(a), op, Decimal(b))
            ok = got is not None and got == Decimal(c)
        except InvalidOperation:
            ok = False
        if not ok:
            return verdict(NAME, VERSION, 0.0, False, "false_step", value=f"{a}{op}{b}={c}")
    if follows_problem:
        chain = CHAIN.match(sample.problem or "")
        if chain is None:
            return verdict(NAME, VERSION, 0.0, False, "not_a_chain")
        first, rest = chain.group(1), _LINK.findall(chain.group(2))
        want, left = [], Decimal(first)
        for op, b in rest:
            right = _apply(left, op, Decimal(b))
            if right is None:
                return verdict(NAME, VERSION, 0.0, False, "not_a_chain")
            want.append((left, _OPS.get(op, op), Decimal(b), right))
            left = right
        got_steps = [(Decimal(a), _OPS.get(op, op), Decimal(b), Decimal(c)) for a, op, b, c in steps]
        if got_steps != want:
            return verdict(NAME, VERSION, 0.0, False, "off_problem", steps=len(steps), expected_steps=len(want))
    return verdict(NAME, VERSION, 1.0, True, "correct", steps=len(steps))


JUDGE = JudgeSpec(NAME, VERSION, "rule", params_model(judge), judge=judge)
