"""One language rule (catalogs/scripts.py) for the language_consistency judge and the language_mixing filter.

The labelled set is ours (tests/judges/data/language_rule_set.jsonl, made by build_language_rule_set.py
beside it): English maths/physics/chemistry with Greek symbols, units and LaTeX; English with one quoted
foreign term; Chinese (and other languages) with short English glosses; too-short texts; genuine mixing
at several rates, up to a whole CoT in the wrong language.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest

from catalogs.records import Sample
from catalogs.scripts import (PARAGRAPH_RE, PARAGRAPH_SEP, guess_language, measure, normalise, paragraphs,
                              stopword_count, stopword_pattern)
from filters.language_mixing import language_mixing, normalise_expr
from judges.language_consistency import judge

SET = Path(__file__).parent / "data" / "language_rule_set.jsonl"
REPRO = ("We compute the dipole moment μ = q d, with wavelength λ and angle θ, then check Δ and α against the "
         "options.")


def _rows() -> list[dict]:
    return [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def _filter(rows: list[dict]) -> dict[str, dict]:
    out = language_mixing([{"generation_id": r["id"], "text": r["reasoning"], "reasoning": r["reasoning"],
                            "answer": "", "language": r["language"]} for r in rows])
    return {d["generation_id"]: d for d in out.iter_rows(named=True)}


def test_english_reasoning_with_greek_symbols_is_english() -> None:
    v = judge(Sample(reasoning=REPRO, language="en"))
    assert v.passed, v
    # Decided, not merely too short: with no minimum it is all English.
    v = judge(Sample(reasoning=REPRO, language="en"), min_words=0)
    assert v.passed and v.reason == "consistent" and v.score == 1.0
    d = _filter([{"id": "g", "reasoning": REPRO, "language": "en"}])["g"]
    assert d["passed"] and d["value"] == 0.0


def test_a_two_word_answer_with_a_gloss_is_too_short_to_call() -> None:
    v = judge(Sample(reasoning="副词 (Adverb)", language="zh"))
    assert v.passed and v.reason == "too_short"
    d = _filter([{"id": "g", "reasoning": "副词 (Adverb)", "language": "zh"}])["g"]
    assert d["passed"] and d["reason"].startswith("too_short")


def test_a_chinese_character_weighs_two_thirds_of_a_word() -> None:
    m = measure("首先计算分子之和 then we divide by thirty seven to get six", "zh")
    assert m.units["han"] == 8 and m.units["latin"] == 9
    assert m.foreign_share == pytest.approx(9 / (9 + 8 / 1.5))


def test_labelled_set_judge_and_filter_agree_with_high_precision_and_recall() -> None:
    rows = _rows()
    filt = _filter(rows)
    tp = fp = fn = tn = short = 0
    for r in rows:
        v = judge(Sample(reasoning=r["reasoning"], language=r["language"]))
        d = filt[r["id"]]
        # One rule: the same decision, the same reason class and the same measured share.
        assert v.passed == d["passed"], (r["id"], v, d)
        assert (v.reason == "too_short") == d["reason"].startswith("too_short"), (r["id"], v.reason, d["reason"])
        assert 1.0 - v.score == pytest.approx(d["value"], abs=6e-5), (r["id"], v.score, d["value"])
        flagged = not v.passed
        short += v.reason == "too_short"
        if r["label"] == "mixed":
            tp += flagged
            fn += not flagged
        else:
            fp += flagged
            tn += not flagged
        if r["label"] == "short":
            assert v.reason == "too_short", r["id"]
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    print(f"\nlanguage rule set: {len(rows)} cases ({tp + fn} mixed, {tn + fp} not), {short} too short; "
          f"precision {precision:.3f}, recall {recall:.3f} (judge and filter agree on all {len(rows)})")
    assert len(rows) >= 80
    assert precision >= 0.95 and recall >= 0.95


def test_each_kind_of_notation_is_no_language() -> None:
    for text, words in [(r"Let $f(x) = \sin^2 x$ and \(g\) be given; \begin{align} y &= 2 \end{align}", 4),
                        ("We call loss_fn(x) with max_len = 512, getValue() and H2O, 3x, x_1.", 4),
                        ("sin cos tan log ln kg mol Hz eV kJ NaCl DNA AB ABC Δλ μν ωτ https://example.com/a_b", 0),
                        ("F = ma, E = hc/λ, p = mv", 0)]:
        m = measure(text, "zh")
        assert m.units["latin"] == words and m.units["greek"] == 0, normalise(text)
    # ... while real words stay words, in every script.
    m = measure("the answer est la réponse и ответ και η απάντηση", "en")
    assert m.units["latin"] == 5 and m.units["cyrillic"] == 1 and m.units["greek"] == 2


def _random_texts(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    pieces = ["the", "answer", "sin", "kg", "NaCl", "getValue", "x_1", "H2O", "3x", "ma", "AB", "He", "in",
              "$x^2$", "$$\\frac{a}{b}$$", "\\alpha", "\\(y\\)", "\\[z\\]", "`code_x`", "```\nprint(1)\n```",
              "https://a.b/c", "www.x.org", "\\begin{align}", "\\end{align}", "μν", "Δλ", "λόγος", "ответ",
              "答案", "是", "ですか", "한국어", "ภาษา", "עברית", "العربية", "हिन्दी", "=", "+", "−", "/", "·",
              "(", ")", ",", ".", "。", "，", " ", " ", " ", "\n", "\n\n", "\n \n", "\t", "é", "ß", "café",
              "l'été", "Ünïcödé", "ǅ", "ﬁ", "Ｆｕｌｌ", "ー", "々", "x", "θ", "0.5", "_", "$", "\\", "{", "}",
              "The", "of", "AND", "für", "Die", "não", "è", "della", "les", "que", "İ", "ẞ", "Σ"]
    return ["".join(rnd.choice(pieces) + rnd.choice(["", " ", "", "\n"]) for _ in range(rnd.randint(0, 40)))
            for _ in range(n)]


def test_python_and_polars_apply_the_same_regex_steps() -> None:
    texts = _random_texts(3000, seed=7) + [r["reasoning"] for r in _rows()]
    s = pl.Series("t", texts)
    got = pl.DataFrame({"t": s}).select(normalise_expr(pl.col("t"))).to_series().to_list()
    assert got == [normalise(t) for t in texts]
    split = (pl.Series(got).str.replace_all(PARAGRAPH_RE, PARAGRAPH_SEP).str.split(PARAGRAPH_SEP).to_list())
    assert split == [paragraphs(t) for t in got]
    for lang in ("en", "fr", "de", "es", "pt", "it"):
        counts = pl.Series(got).str.to_lowercase().str.count_matches(stopword_pattern(lang)).to_list()
        assert counts == [stopword_count(t, lang) for t in got], lang
    assert stopword_count("Of THE, l'été, für Die und è", "en") == 2
    assert stopword_count("Of THE, l'été, für Die und è", "de") == 3  # è never: no ASCII word boundary


def test_random_texts_get_the_same_verdict_and_value_from_judge_and_filter() -> None:
    texts = _random_texts(400, seed=11)
    langs = ["en", "zh", "ru", "ja", "fr", "ko"]
    rows = [{"id": f"r{i}", "reasoning": t, "language": langs[i % len(langs)]} for i, t in enumerate(texts)]
    filt = _filter(rows)
    for r in rows:
        d = filt[r["id"]]
        if not r["reasoning"].strip():
            continue  # the filter's input check drops empty text before any rule
        v = judge(Sample(reasoning=r["reasoning"], language=r["language"]))
        assert v.passed == d["passed"] and 1.0 - v.score == pytest.approx(d["value"], abs=6e-5), (r, v, d)


def test_guess_language_by_script() -> None:
    assert guess_language("计算两个数的和，然后除以三。") == "zh"
    assert guess_language("次の方程式を解いてください。答えはいくつですか。") == "ja"
    assert guess_language("다음 방정식을 푸세요. 답은 무엇입니까?") == "ko"
    assert guess_language("Solve x + 1 = 2. 一") == "en"
