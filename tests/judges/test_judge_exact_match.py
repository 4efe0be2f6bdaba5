"""The exact-match judge: the summary against the reference, after whitespace, case and trailing punctuation are
normalised; through the registry, as an eval's judge names it."""
from catalogs.records import Sample
from catalogs.split import THINK, split_reasoning
from judges.exact_match import normalise
from judges.registry import JUDGES, run_judge


def em(text: str, reference: str | None, finish_reason: str = "stop"):
    reasoning, answer = split_reasoning(text, THINK)
    return run_judge("exact_match", Sample(text=text, reasoning=reasoning or "", answer=answer, reference=reference,
                                           finish_reason=finish_reason, kind="non_reasoning"))


def test_normalise_whitespace_case_and_trailing_punctuation() -> None:
    assert normalise("  Paris. ") == normalise("paris") == "paris"
    assert normalise("New\t Delhi!!") == "new delhi"
    assert normalise("Hello! How can I help?") == "hello! how can i help"  # inner punctuation stays
    assert normalise("...") == ""


def test_the_summary_decides_not_the_reasoning() -> None:
    assert "exact_match" in JUDGES
    v = em("<think>A fact about France.</think> Paris.", "Paris.")
    assert v.passed and v.score == 1.0 and v.reason == "correct"
    assert em("<think>A fact about France.</think>  PARIS", "Paris.").passed
    wrong = em("<think>Paris is not it.</think> Rome.", "Paris.")
    assert not wrong.passed and wrong.reason == "wrong_answer" and wrong.details["predicted"] == "rome"
    # No reasoning markers: the whole text is the answer (a greeting has no chain of thought).
    assert em("Hello!  How can I help?", "Hello! How can I help?").passed
    assert not em("Hello! How can I help you today?", "Hello! How can I help?").passed


def test_what_cannot_match() -> None:
    assert em("Paris.", None).reason == "no_reference"
    assert em("Paris.", " . ").reason == "no_reference"
    assert em("<think>thinking</think>", "Paris.").reason == "no_answer"
    assert em("Paris.", "Paris.", finish_reason="length").reason == "truncated"
