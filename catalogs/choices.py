"""Multiple-choice records (GPQA-style): the question and its options become one prompt with lettered options, and
the answer becomes the correct option's letter, which the math judge checks in `\\boxed{}` like any answer.

The options come from one field holding a list (`choices: [..]`) or from several fields, one option each (GPQA's
`Correct Answer`, `Incorrect Answer 1..3`). The reference answer is a letter, or the text of one option. When the
options are listed correct-first, as in GPQA, `shuffle` orders them by a seed taken from the question and its
options, the same on every machine and every run, so the prompt (and its id) is stable and the correct letter is
spread over A-D.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
INSTRUCTION = "Answer with the letter of the correct option, within \\boxed{}, e.g. \\boxed{A}."
DOMAIN = "multiple_choice"


class ChoiceError(ValueError):
    """A record that cannot be made a multiple-choice prompt; the message names the field and the fix."""


def _options(rec: dict[str, Any], fields: Sequence[str]) -> list[str]:
    if len(fields) == 1:
        value = rec.get(fields[0])
        if not isinstance(value, list):
            raise ChoiceError(f"field `{fields[0]}` must be a list of options, got "
                              f"{'nothing' if value is None else type(value).__name__}; give a list, or name one "
                              f"field per option")
        options = value
    else:
        missing = [f for f in fields if rec.get(f) is None]
        if missing:
            raise ChoiceError(f"option field(s) {', '.join(f'`{f}`' for f in missing)} missing; every record needs "
                              f"all of {', '.join(fields)}")
        options = [rec[f] for f in fields]
    if not 2 <= len(options) <= len(LETTERS):
        raise ChoiceError(f"{len(options)} option(s); give between 2 and {len(LETTERS)}")
    out = []
    for i, opt in enumerate(options):
        if isinstance(opt, bool) or not isinstance(opt, (str, int, float)) or not str(opt).strip():
            raise ChoiceError(f"option {i + 1} is {opt!r}; every option must be a non-empty string or number")
        out.append(str(opt).strip())
    if len(set(out)) != len(out):
        raise ChoiceError("two options have the same text; each option must differ")
    return out


def multiple_choice(question: str, rec: dict[str, Any], fields: Sequence[str], shuffle: bool
                    ) -> tuple[str, str, list[str]]:
    """(the prompt text with lettered options and the answer instruction, the correct letter, the options in the
    order shown). Raises ChoiceError naming what is wrong."""
    options = _options(rec, fields)
    answer = rec.get("answer")
    if answer is None or isinstance(answer, bool):
        raise ChoiceError("field `answer` is missing; give the correct option's letter or its text")
    ref = str(answer).strip()
    if ref in options:
        correct = ref
    elif len(ref) == 1 and ref.upper() in LETTERS[: len(options)]:
        correct = options[LETTERS.index(ref.upper())]
    else:
        raise ChoiceError(f"answer {ref!r} is neither one of the options nor a letter A-{LETTERS[len(options) - 1]}")
    if shuffle:
        seed = hashlib.sha256("\x00".join([question, *options]).encode()).digest()
        random.Random(seed).shuffle(options)
    listed = "\n".join(f"{LETTERS[i]}) {opt}" for i, opt in enumerate(options))
    return f"{question.rstrip()}\n\n{listed}\n\n{INSTRUCTION}", LETTERS[options.index(correct)], options
