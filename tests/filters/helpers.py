"""Hand-made CoTs in English and Chinese, and row builders, shared by the filter tests."""
from __future__ import annotations

from typing import Any

import polars as pl

EN_COT = (
    "We need to find the value of $x$ such that $x^2 + 3x = 10$. Let me think about this carefully.\n\n"
    "First, we move everything to one side: $x^2 + 3x - 10 = 0$. This factors as $(x+5)(x-2) = 0$, "
    "so the roots are $x = 2$ and $x = -5$. Since the problem asks for a positive value, we keep 2.\n\n"
    "Wait, let me check that again: $2^2 + 3 \\cdot 2 = 4 + 6 = 10$. Yes, that is right, and θ ≤ π holds.\n\n"
    "So the answer is 2."
)
ZH_COT = (
    "我们需要求出满足 $x^2 + 3x = 10$ 的 $x$ 的值。让我仔细想一想这个问题。\n\n"
    "首先，把所有项移到一边：$x^2 + 3x - 10 = 0$。它可以因式分解为 $(x+5)(x-2) = 0$，"
    "所以根是 $x = 2$ 和 $x = -5$。因为题目要求正数，所以我们保留 2。\n\n"
    "等一下，再验证一次：$2^2 + 3 \\cdot 2 = 10$。是的，没有问题。\n\n"
    "所以答案是 2。"
)
FR_PARAGRAPH = (
    "Nous devons maintenant vérifier cette valeur avec soin, car la question est subtile et il faut être "
    "certain que la racine positive est bien celle que nous cherchons dans ce problème."
)


def row(gid: str, reasoning: str, answer: str = "The answer is $\\boxed{2}$.", **kw: Any) -> dict[str, Any]:
    r = {"generation_id": gid, "prompt_id": kw.pop("prompt_id", "p_" + gid), "problem": kw.pop("problem", "Solve it."),
         "text": f"<think>\n{reasoning}\n</think>\n\n{answer}", "reasoning": reasoning, "answer": answer,
         "finish_reason": "stop", "domain": "math", "language": "en", "kind": "reasoning"}
    r.update(kw)
    return r


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows))


def by_id(decisions: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {r["generation_id"]: r for r in decisions.iter_rows(named=True)}
