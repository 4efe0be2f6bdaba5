from __future__ import annotations

from filters.long_paragraphs import long_paragraphs
from tests.filters.helpers import EN_COT, ZH_COT, by_id, frame, row


def test_structured_cots_pass_in_english_and_chinese() -> None:
    d = by_id(long_paragraphs(frame(row("en", EN_COT), row("zh", ZH_COT, language="zh")), {}))
    assert d["en"]["passed"] and d["zh"]["passed"]
    longest_en = max(len(p) for p in EN_COT.split("\n\n"))
    assert d["en"]["value"] == longest_en


def test_a_wall_of_text_fails_by_chars_naming_the_paragraph() -> None:
    wall = " ".join(["the sum of the first terms is computed step by step"] * 80)
    d = by_id(long_paragraphs(frame(row("g", EN_COT + "\n\n" + wall + "\n\nDone.")), {}))["g"]
    assert not d["passed"]
    assert d["reason"] == f"long_paragraph: {len(wall)} chars > 3000 (paragraph 5 of 6)"


def test_a_chinese_wall_fails_by_words_where_each_character_is_a_word() -> None:
    wall = "我们继续计算下一项并检查结果是否正确" * 40  # 720 characters, one paragraph
    d = by_id(long_paragraphs(frame(row("g", wall, language="zh")), {"max_words": 600}))["g"]
    assert not d["passed"] and d["reason"].startswith("long_paragraph: 720 words > 600")


def test_blank_lines_with_spaces_still_split_paragraphs() -> None:
    text = "\n \n".join(["a short paragraph of words"] * 200)
    d = by_id(long_paragraphs(frame(row("g", text)), {"max_chars": 100}))["g"]
    assert d["passed"] and d["value"] == len("a short paragraph of words")
