"""Language consistency (the R1 paper's reward): the share of the chain of thought that is in the
target language.

The rule is catalogs/scripts.py's, the same one the `language_mixing` filter applies, so the two never
disagree where both decide. In short: maths, code, symbols, variables, units, numbers and single
letters are no language; Han/kana characters weigh 2/3 of a word; Latin (or Cyrillic, ...) paragraphs
in another language are found with fastText lid.176. Score: 1 - foreign words / all words.

Pass: score >= `threshold` (0.9, i.e. at most the filter's default 10% foreign). Below `min_words`
word-equivalents (20) the text is too short to call mixed (`副词 (Adverb)` is a gloss, not mixing):
the verdict passes with reason `too_short`, and the score is still the measured share (1.0 with no
words at all).
"""
from __future__ import annotations

from catalogs.records import Sample, Verdict, verdict
from catalogs.scripts import DEFAULT_RULE, TWELFTHS, LanguageRule, count_units, measure, normalise
from judges.base import JudgeSpec, params_model

NAME = "language_consistency"
VERSION = "2"
DEFAULT_THRESHOLD = 1.0 - DEFAULT_RULE.max_foreign_share
# Float slack so that `score >= threshold` and the filter's `share <= max_foreign_share` agree at the edge.
_EPS = 1e-12


def count_words(text: str) -> dict[str, int]:
    """Units per script that the rule counts (characters for Han/kana/Thai, words otherwise), non-zero only."""
    return {s: n for s, n in count_units(normalise(text)).items() if n}


def judge(sample: Sample, *, threshold: float = DEFAULT_THRESHOLD, language: str | None = None,
          min_words: float = DEFAULT_RULE.min_words, min_paragraph_words: int = DEFAULT_RULE.min_paragraph_words,
          min_stopword_share: float = DEFAULT_RULE.min_stopword_share,
          min_confidence: float = DEFAULT_RULE.min_confidence) -> Verdict:
    lang = language or sample.language or "en"
    rule = LanguageRule(max_foreign_share=1.0 - threshold, min_words=min_words,
                        min_paragraph_words=min_paragraph_words, min_stopword_share=min_stopword_share,
                        min_confidence=min_confidence)
    m = measure(sample.reasoning if sample.reasoning.strip() else sample.text, lang, rule)
    details = {"language": lang, "words": round(m.words, 3), "by_script": {s: n for s, n in m.units.items() if n},
               "foreign": {k: round(v / TWELFTHS, 3) for k, v in m.foreign.items()}, "threshold": threshold}
    score = m.target_share
    if m.too_short:
        return verdict(NAME, VERSION, score, True, "too_short", min_words=min_words, **details)
    ok = score >= threshold - _EPS
    return verdict(NAME, VERSION, score, ok, "consistent" if ok else "mixed_language", **details)


JUDGE = JudgeSpec(NAME, VERSION, "rule", params_model(judge), judge=judge)
