import json
import threading
from pathlib import Path

import pytest

from catalogs.records import Sample
from judges.math_accuracy import judge, judge_many, last_boxed
from judges.registry import JUDGES, get_judge

DATA = Path(__file__).parent / "data"


def _s(reference, answer, **kw):
    return Sample(reference=reference, answer=answer, **kw)


# Pairs where naive string comparison says "different" but the answers are equal.
EQUAL_BUT_DIFFERENT_STRINGS = [
    (r"\frac{1}{2}", "0.5"),
    ("2", "2.0"),
    ("3", "x=3"),
    (r"\{1,2\}", r"\{2,1\}"),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}"),
    ("10", "010"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
]
# Pairs where the strings look alike (same characters, same digits) but the answers differ.
LOOK_ALIKE_BUT_DIFFERENT = [
    ("(1,2)", "(2,1)"),  # ordering matters for intervals/tuples
    ("[1,2)", "(1,2]"),  # same endpoints, different open/closed ends
    (r"\frac{1}{3}", "0.33"),
    ("12", "21"),
    (r"\sqrt{2}", "2"),
]


@pytest.mark.parametrize("gold,pred", EQUAL_BUT_DIFFERENT_STRINGS)
def test_equal_answers_with_different_strings(gold, pred):
    assert gold.strip() != pred.strip()
    v = judge(_s(gold, rf"The answer is \boxed{{{pred}}}."))
    assert v.passed and v.score == 1.0 and v.reason == "correct", v


@pytest.mark.parametrize("gold,pred", LOOK_ALIKE_BUT_DIFFERENT)
def test_different_answers_that_look_alike(gold, pred):
    v = judge(_s(gold, rf"\boxed{{{pred}}}"))
    assert not v.passed and v.score == 0.0 and v.reason == "wrong_answer", v


def test_identical_strings_pass():
    v = judge(_s("(1,2)", r"\boxed{(1,2)}"))
    assert v.passed


def test_last_boxed_of_answer_part_wins():
    v = judge(Sample(reference="5", reasoning=r"maybe \boxed{5}", answer=r"first \boxed{5}, finally \boxed{7}"))
    assert v.reason == "wrong_answer" and v.details["extracted_from"] == "answer"
    assert last_boxed(r"\boxed{\frac{1}{2}} and \boxed{x^{2}}") == "x^{2}"
    assert last_boxed(r"\boxed{\frac{1}{2}") is None  # cut inside the box
    assert last_boxed(r"so \boxed 5.") == "5"


def test_reasoning_box_is_not_used_when_answer_has_none():
    v = judge(Sample(reference="5", reasoning=r"\boxed{5}", answer="I think it is five", text=r"\boxed{5}"))
    assert v.reason == "no_boxed_answer" and not v.passed


def test_falls_back_to_whole_text_when_answer_empty():
    v = judge(Sample(reference="5", text=r"<think>so</think> \boxed{5}", answer=""))
    assert v.passed and v.details["extracted_from"] == "whole_text"


def test_bad_input_reasons():
    assert judge(_s(None, r"\boxed{1}")).reason == "no_reference"
    assert judge(_s("  ", r"\boxed{1}")).reason == "no_reference"
    assert judge(_s("1", "no box here")).reason == "no_boxed_answer"
    assert judge(_s(r"\frac{", r"\boxed{1}")).reason == "unparseable_gold"
    assert judge(_s("1", r"\boxed{\frac{}")).reason in {"unparseable_prediction", "no_boxed_answer"}
    assert judge(_s("1", r"\boxed{\left(}")).reason == "unparseable_prediction"


def test_gold_is_parsed_first_order_matters():
    # Math-Verify is asymmetric: an assignment in the gold is simplified to its value.
    assert judge(_s("x=3", r"\boxed{3}")).passed
    # Equation in gold vs interval prediction: allowed one way only.
    a = judge(_s("x>1", r"\boxed{(1,\infty)}")).passed
    b = judge(_s(r"(1,\infty)", r"\boxed{x>1}")).passed
    assert a != b


def test_outer_timer_is_restored():
    import signal
    import time

    # The outer timer goes on counting while the judge runs: put back, it has what it had less the time that
    # passed, however long that was. Measured around the whole, so it holds wherever the judge's time goes;
    # a timer left disarmed (0) or the judge's own (at most 60 s) could only pass after 540 s of judging.
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 600)
        assert judge(_s("2", r"\boxed{2}"), timeout_s=60).passed
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        elapsed = time.monotonic() - start
        assert not fired and 600 - elapsed - 0.01 <= left <= 600, (left, elapsed)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_pathological_expression_times_out():
    # The verdict says the limit stopped it (no wall-clock bound here: timing belongs to benchmarks/).
    v = judge(_s("2", r"\boxed{9^{9^{9^{9}}}}"), timeout_s=1)
    assert v.reason == "timeout" and not v.passed


def test_timeout_in_worker_thread_uses_a_process():
    # The stalled check always times out; the plain one gets a generous limit, so machine load cannot fail it.
    out = {}
    th = threading.Thread(target=lambda: out.update(a=judge(_s("2", r"\boxed{9^{9^{9^{9}}}}"), timeout_s=1),
                                                    b=judge(_s("2", r"\boxed{2}"), timeout_s=60)))
    th.start()
    th.join(600)  # only so that a hang cannot block the run
    assert out["a"].reason == "timeout" and out["b"].passed


def test_real_rows_with_their_own_answers():
    rows = json.loads((DATA / "math_rows.json").read_text())
    rows += [json.loads(line) for line in (DATA / "math500_rows.jsonl").read_text().splitlines()]
    samples = [_s(r["answer"], rf"Therefore the answer is $\boxed{{{r['answer']}}}$.") for r in rows]
    assert all(v.passed for v in (judge(s) for s in samples))
    # The previous row's answer is wrong (the picked rows' answers are pairwise different values).
    wrong = [_s(rows[i]["answer"], rf"\boxed{{{rows[i - 1]['answer']}}}") for i in range(1, len(rows))]
    assert [judge(s).reason for s in wrong] == ["wrong_answer"] * len(wrong)


def test_chinese_reference_row():
    row = json.loads((DATA / "gsm_zh_rows.json").read_text())[0]
    assert judge(_s(row["answer"], r"所以答案是 $\boxed{6}$。")).passed


def test_judge_many_process_pool_matches_serial_and_survives_stalls():
    # The stall never ends, so it times out whatever the limit; the limit is generous so that machine load
    # cannot time out the others (each stall costs the limit, hence only one).
    base = [_s(r"\frac{1}{2}", r"\boxed{0.5}"), _s("2", r"\boxed{3}"), _s(None, r"\boxed{1}")]
    stall = _s("2", r"\boxed{9^{9^{9^{9}}}}")
    batch = base * 2 + [stall] + base * 2
    got = judge_many(batch, workers=2, timeout_s=10, min_batch_for_pool=1)
    reasons = ["correct", "wrong_answer", "no_reference"]
    assert [v.reason for v in got] == reasons * 2 + ["timeout"] + reasons * 2


def test_registry():
    assert get_judge("math_accuracy").version == "2"
    assert get_judge("math_accuracy")(_s("1", r"\boxed{1}")).passed
    with pytest.raises(KeyError, match="known judges: .*math_accuracy"):
        get_judge("maths")
    assert {"math_accuracy", "format", "language_consistency", "code"} <= set(JUDGES)
    v = get_judge("math_accuracy")(_s("1", r"\boxed{1}"))
    assert json.loads(v.to_json())["judge_version"] == "2"
