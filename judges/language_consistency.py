"""Language consistency (the R1 paper's reward): the share of the chain of thought's words that are in
the target language, counted per script so Chinese and English are measured alike.

A word is: one CJK ideograph or kana character, or a run of letters of one alphabetic script
(Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Hangul, Thai, ...). Math and code are
language-neutral, so `$...$`, `\\(...\\)`, `\\[...\\]`, fenced/inline code and LaTeX commands
are removed before counting; digits and punctuation never count.

Default threshold 0.95: after math and code are stripped, a Chinese CoT that names a variable or
two stays above it, while a CoT that switches language for a sentence falls well below.
"""
from __future__ import annotations

import re
from collections import Counter

from catalogs.records import Sample, Verdict, verdict

NAME = "language_consistency"
VERSION = "1"
DEFAULT_THRESHOLD = 0.95

# (script, regex for one word). CJK ideographs and kana count one word per character.
_SCRIPTS: list[tuple[str, str]] = [
    ("han", r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]"),
    ("kana", r"[\u3040-\u30ff\u31f0-\u31ff]"),
    ("hangul", r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]+"),
    ("latin", r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]+(?:['’][A-Za-z]+)?"),
    ("cyrillic", r"[\u0400-\u04ff]+"),
    ("greek", r"[\u0370-\u03ff]+"),
    ("arabic", r"[\u0600-\u06ff\u0750-\u077f]+"),
    ("hebrew", r"[\u0590-\u05ff]+"),
    ("devanagari", r"[\u0900-\u097f]+"),
    ("thai", r"[\u0e00-\u0e7f]+"),
]
_WORD = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in _SCRIPTS))

LANGUAGE_SCRIPTS: dict[str, set[str]] = {
    "zh": {"han"}, "ja": {"han", "kana"}, "ko": {"hangul", "han"},
    "ru": {"cyrillic"}, "uk": {"cyrillic"}, "bg": {"cyrillic"}, "el": {"greek"},
    "ar": {"arabic"}, "fa": {"arabic"}, "he": {"hebrew"}, "hi": {"devanagari"}, "th": {"thai"},
}
_LATIN = {"en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "tr", "vi", "id", "ro"}

_NEUTRAL = re.compile(
    r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+", re.DOTALL)


def target_scripts(language: str) -> set[str]:
    lang = language.lower().replace("_", "-").split("-")[0]
    if lang in LANGUAGE_SCRIPTS:
        return LANGUAGE_SCRIPTS[lang]
    if lang in _LATIN:
        return {"latin"}
    raise ValueError(f"language {language!r} has no script mapping; add it to LANGUAGE_SCRIPTS "
                     f"in judges/language_consistency.py")


def count_words(text: str) -> Counter[str]:
    """Words per script, after removing math, code and LaTeX commands."""
    counts: Counter[str] = Counter()
    for m in _WORD.finditer(_NEUTRAL.sub(" ", text)):
        counts[m.lastgroup or "?"] += 1
    return counts


def judge(sample: Sample, *, threshold: float = DEFAULT_THRESHOLD, language: str | None = None) -> Verdict:
    lang = language or sample.language or "en"
    try:
        scripts = target_scripts(lang)
    except ValueError:
        return verdict(NAME, VERSION, 0.0, False, "unknown_language", language=lang)
    counts = count_words(sample.reasoning if sample.reasoning.strip() else sample.text)
    total = sum(counts.values())
    if total == 0:
        return verdict(NAME, VERSION, 0.0, False, "no_words", language=lang)
    share = sum(n for s, n in counts.items() if s in scripts) / total
    ok = share >= threshold
    return verdict(NAME, VERSION, share, ok, "consistent" if ok else "mixed_language", language=lang,
                   words=total, by_script=dict(counts), threshold=threshold)
