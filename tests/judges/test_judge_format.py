import pytest

from catalogs.records import Sample
from judges.format import judge


def f(text, finish_reason="stop", **kw):
    return judge(Sample(text=text, finish_reason=finish_reason), **kw)


def test_think_template():
    assert f("<think>reason here</think>The answer is 4.").passed
    assert f("<think>reason</think>ok", finish_reason="length").reason == "truncated"
    assert f("<think>reason, never closed").reason == "missing_close_tag"
    assert f("reason</think>answer").reason == "missing_open_tag"
    assert f("reason</think>answer", require_open=False).passed  # template prefilled <think>
    assert f("<think>  </think>answer").reason == "empty_reasoning"
    assert f("<think>r</think>   ").reason == "no_answer"
    assert f("<think>a</think>b<think>c</think>d").reason == "repeated_tags"
    assert f("hi <think>a</think>b").reason == "text_before_open_tag"


def test_r1_zero_template():
    good = "<think> 2+2 is 4 </think> <answer> 4 </answer>"
    assert f(good, template="r1_zero").passed
    assert f(good + " trailing", template="r1_zero").reason == "text_after_answer"
    assert f("<think>x</think> 4", template="r1_zero").reason == "missing_answer_tags"
    assert f("<think>x</think> <answer> 4", template="r1_zero").reason == "missing_answer_tags"
    assert f("<think>x</think> <answer></answer>", template="r1_zero").reason == "no_answer"


def test_cold_start_special_token_template():
    assert f("|special_token|long reasoning|special_token|a summary", template="special_token").passed
    assert f("|special_token|reasoning only", template="special_token").reason == "missing_close_tag"
    assert f("|special_token|r|special_token|", template="special_token").reason == "no_answer"
    assert f("|special_token|a|special_token|b|special_token|c", template="special_token").reason == "repeated_tags"


def test_custom_markers_and_unknown_template():
    assert f("<reasoning>x</reasoning>y", open_tag="<reasoning>", close_tag="</reasoning>").passed
    with pytest.raises(ValueError, match="known"):
        f("x", template="nope")
