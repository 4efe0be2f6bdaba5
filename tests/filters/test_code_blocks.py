from __future__ import annotations

from filters.code_blocks import code_blocks, count_indented_python
from tests.filters.helpers import EN_COT, ZH_COT, by_id, frame, row

FENCED = "Let me compute it with code:\n\n```python\nprint(sum(range(10)))\n```\n\nSo it is 45."
TILDE = "计算如下：\n\n~~~\nx = 1\n~~~\n\n所以答案是 1。"
INDENTED = "Let me write a helper:\n\n    def f(n):\n        return n * (n + 1) // 2\n    print(f(9))\n\nSo 45."


def test_clean_cots_pass() -> None:
    d = by_id(code_blocks(frame(row("en", EN_COT), row("zh", ZH_COT, language="zh")), {}))
    assert d["en"]["passed"] and d["zh"]["passed"] and d["en"]["value"] == 0


def test_fenced_and_tilde_blocks_fail_in_english_and_chinese() -> None:
    d = by_id(code_blocks(frame(row("en", FENCED), row("zh", TILDE, language="zh")), {}))
    assert not d["en"]["passed"] and d["en"]["reason"] == "code_block: 1 fenced block(s) in a math CoT"
    assert not d["zh"]["passed"] and d["zh"]["value"] == 1


def test_indented_python_fails_but_indented_prose_and_math_pass() -> None:
    prose = "Notes:\n\n    We now consider the case\n    where n is even and positive.\n\nDone."
    math = "Compute:\n\n    x^2 + 3x - 10 = 0\n    (x+5)(x-2) = 0\n\nDone."
    d = by_id(code_blocks(frame(row("code", INDENTED), row("prose", prose), row("math", math)), {}))
    assert not d["code"]["passed"] and "1 indented python" in d["code"]["reason"]
    assert d["prose"]["passed"] and d["math"]["passed"]
    assert count_indented_python(INDENTED) == 1 and count_indented_python(prose) == 0


def test_code_domain_is_not_checked_and_domains_come_from_params() -> None:
    out = code_blocks(frame(row("c", FENCED, domain="code"), row("m", FENCED)), {})
    d = by_id(out)
    assert d["c"]["passed"] and d["c"]["value"] is None
    assert not d["m"]["passed"]
    d2 = by_id(code_blocks(frame(row("c", FENCED, domain="code")), {"domains": ["code"]}))
    assert not d2["c"]["passed"]
