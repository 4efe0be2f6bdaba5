import json
from pathlib import Path

from catalogs.records import Sample
from judges.language_consistency import count_words, judge

DATA = Path(__file__).parent / "data"


def lc(reasoning, language, **kw):
    return judge(Sample(reasoning=reasoning, language=language), **kw)


def test_counts_per_script():
    c = count_words("我们先算 the sum 然后")
    assert c["han"] == 6 and c["latin"] == 2
    # math and LaTeX commands are language-neutral
    assert count_words(r"令 $x = \frac{1}{2}$，则 \(y\) 为 \sqrt 2") == {"han": 3}


def test_pure_languages_pass():
    zh = json.loads((DATA / "gsm_zh_rows.json").read_text())[0]["problem"]
    v = lc("首先，我们把分母相同的分数相加。" + zh, "zh")
    assert v.passed and v.score == 1.0
    v = lc("First, add the fractions with the same denominator, then simplify.", "en")
    assert v.passed and v.score == 1.0


def test_mixed_cot_fails_with_share():
    # 8 Han characters (2/3 of a word each) and 9 English words, spliced into a longer Chinese CoT.
    text = "首先计算分子之和 then we divide by thirty seven to get six"
    v = lc(text, "zh", min_words=0)
    assert not v.passed and v.reason == "mixed_language"
    assert abs(v.score - (8 / 1.5) / (8 / 1.5 + 9)) < 1e-9
    v_en = lc(text, "en", min_words=0)
    assert abs(v_en.score - 9 / (8 / 1.5 + 9)) < 1e-9
    assert lc(text, "zh", threshold=0.3, min_words=0).passed
    assert lc(text, "zh").reason == "too_short"  # 14 words: below the default minimum of 20


def test_other_scripts_and_edge_cases():
    ru = "Сначала сложим дроби с одинаковым знаменателем, затем сократим результат и проверим ответ ещё раз"
    assert lc(ru, "ru", min_words=10).score == 1.0 and lc(ru, "ru", min_words=10).reason == "consistent"
    assert lc("Сначала сложим fractions", "ru", min_words=0).score == 1 - 1 / 3
    assert lc("$1+1=2$", "en").reason == "too_short" and lc("$1+1=2$", "en").score == 1.0
    assert lc("テストです 日本", "ja").passed
