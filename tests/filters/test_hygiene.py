from __future__ import annotations

from filters.hygiene import hygiene
from tests.filters.helpers import EN_COT, ZH_COT, by_id, frame, row


def test_clean_generations_pass_in_english_and_chinese() -> None:
    d = by_id(hygiene(frame(row("en", EN_COT), row("zh", ZH_COT, answer="答案是 $\\boxed{2}$。", language="zh")), {}))
    assert d["en"]["passed"] and d["en"]["reason"] == "ok"
    assert d["zh"]["passed"] and d["zh"]["reason"] == "ok"


def test_truncated_by_length_or_by_an_unclosed_think() -> None:
    r1 = row("len", EN_COT, finish_reason="length")
    r2 = row("open", EN_COT)
    r2["text"] = "<think>\n" + EN_COT
    d = by_id(hygiene(frame(r1, r2), {}))
    assert not d["len"]["passed"] and d["len"]["reason"] == "truncated: finish_reason length"
    assert not d["open"]["passed"] and d["open"]["reason"].startswith("truncated: unclosed <think>")
    assert by_id(hygiene(frame(r1), {"check_truncated": False}))["len"]["passed"]


def test_empty_and_short_answers() -> None:
    d = by_id(hygiene(frame(row("empty", EN_COT, answer="  "), row("short", ZH_COT, answer="2", language="zh")),
                      {"min_answer_chars": 3}))
    assert not d["empty"]["passed"] and d["empty"]["reason"] == "short_answer: 0 chars < 3"
    assert not d["short"]["passed"] and d["short"]["value"] == 1


def test_several_different_boxed_answers_but_repeats_and_spacing_are_one() -> None:
    d = by_id(hygiene(frame(
        row("two", EN_COT, answer="Either $\\boxed{\\frac{1}{2}}$ or $\\boxed{3}$."),
        row("same", EN_COT, answer="$\\boxed{\\frac{1}{2}}$, i.e. $\\boxed{ \\frac{1}{2} }$."),
        row("zh", ZH_COT, answer="答案是 $\\boxed{2}$ 或 $\\boxed{5}$。", language="zh"),
    ), {}))
    assert not d["two"]["passed"] and d["two"]["reason"] == "multiple_boxed: 2 different \\boxed answers > 1"
    assert d["same"]["passed"]
    assert not d["zh"]["passed"]


def test_boxes_are_read_by_the_extractor_math_accuracy_uses() -> None:
    deep = "\\boxed{\\frac{\\sqrt{\\frac{1}{\\left\\{2\\right\\}}}}{3}}"  # four levels of braces
    d = by_id(hygiene(frame(
        row("deep_two", EN_COT, answer=f"First {deep}, then \\boxed{{3}}."),
        row("deep_same", EN_COT, answer=f"{deep} so {deep.replace('{3}', '{ 3 }')}"),
        row("fbox", EN_COT, answer="\\fbox{2} and \\boxed 5."),
        row("nested", EN_COT, answer="\\boxed{\\boxed{2}}"),
        row("cut", EN_COT, answer="\\boxed{2} then \\boxed{\\frac{1}{"),
    ), {}))
    assert not d["deep_two"]["passed"] and d["deep_two"]["value"] == 2
    assert d["deep_same"]["passed"]
    assert not d["fbox"]["passed"]  # \fbox{2} and \boxed 5 are two answers
    assert d["nested"]["passed"] and d["cut"]["passed"]  # a box in a box is one answer; a cut box is none


def test_repetition_loops_in_english_and_chinese() -> None:
    loop_en = EN_COT + "\n\n" + "\n".join(["Wait, let me recompute the product of the two factors again."] * 30)
    loop_zh = ZH_COT + "\n\n" + "等一下，让我再重新计算一次这两个因式的乘积看看结果对不对。" * 30
    d = by_id(hygiene(frame(row("en", loop_en), row("zh", loop_zh, language="zh")), {}))
    assert not d["en"]["passed"] and "repetition:" in d["en"]["reason"] and d["en"]["value"] > 0.5
    assert not d["zh"]["passed"] and "of 10-gram windows repeated" in d["zh"]["reason"]
    # a line repeated 12 times among enough varied text trips only the line check
    varied = "\n".join(f"Step {i}: we add {i} to the running total and get {i * (i + 1) // 2} so far." for i in range(300))
    lines = varied + "\n" + "\n".join(["Let me double-check this step once more."] * 12)
    d2 = by_id(hygiene(frame(row("l", lines)), {}))["l"]
    assert not d2["passed"] and d2["reason"] == "repetition: a line repeated 12 times > 10"
