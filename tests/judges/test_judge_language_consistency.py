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
    text = "首先计算分子之和 then we divide by thirty seven to get six"  # 8 han words, 9 latin
    v = lc(text, "zh")
    assert not v.passed and v.reason == "mixed_language"
    assert abs(v.score - 8 / 17) < 1e-9
    v_en = lc(text, "en")
    assert abs(v_en.score - 9 / 17) < 1e-9
    assert lc(text, "zh", threshold=0.4).passed


def test_other_scripts_and_edge_cases():
    assert lc("Сначала сложим дроби", "ru").score == 1.0
    assert lc("Сначала сложим fractions", "ru").score == 2 / 3
    assert lc("$1+1=2$", "en").reason == "no_words"
    assert lc("hello", "xx").reason == "unknown_language"
    assert lc("テストです 日本", "ja").passed
