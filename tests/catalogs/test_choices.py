"""Multiple-choice records (GPQA-style): lettered options in the prompt, the letter as the reference, judged by the
real math judge in \\boxed{}; stable ids with shuffled options; every bad record named by line and field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalogs import Catalog, CatalogError
from catalogs.choices import INSTRUCTION
from catalogs.ingest import IngestOptions, ingest
from catalogs.records import sample_from_row
from judges.registry import get_judge

from .helpers import fingerprint, r1f

GPQA_FIELDS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
# GPQA's columns: the correct option first, then three wrong ones (made-up questions, same shape).
GPQA = [{"Question": f"Which element has atomic number {z}?", "Correct Answer": name,
         "Incorrect Answer 1": "Argon", "Incorrect Answer 2": "Neon", "Incorrect Answer 3": "Xenon"}
        for z, name in [(1, "Hydrogen"), (2, "Helium"), (3, "Lithium"), (4, "Beryllium"), (5, "Boron"),
                        (6, "Carbon"), (7, "Nitrogen"), (8, "Oxygen")]]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def gpqa_options() -> IngestOptions:
    # GPQA as it comes: the question, the correct option (also the reference) and the wrong ones, correct first.
    return IngestOptions(source="gpqa", rename={"Question": "problem", "Correct Answer": "answer"},
                         choices=("answer", *GPQA_FIELDS[1:]), shuffle_choices=True)


def test_gpqa_columns_become_lettered_prompts_with_the_letter_as_reference(tmp_path: Path) -> None:
    src = write(tmp_path / "gpqa.jsonl", GPQA)
    cat = Catalog(tmp_path / "cat")
    report = ingest(cat, src, gpqa_options())
    assert report.prompts_added == len(GPQA)
    rows = cat.prompts().to_dicts()
    letters = []
    for row in rows:
        meta = json.loads(row["metadata"])
        lines = row["problem"].split("\n")
        options = [ln for ln in lines if ln[:3] in ("A) ", "B) ", "C) ", "D) ")]
        assert [o[0] for o in options] == list("ABCD") and row["problem"].endswith(INSTRUCTION)
        assert row["domain"] == "multiple_choice"
        # The reference letter points at the correct option, whose text the metadata keeps.
        shown = {o[0]: o[3:] for o in options}
        correct = {r["Question"]: r["Correct Answer"] for r in GPQA}[lines[0]]
        assert shown[row["answer"]] == meta["answer_text"] == correct
        assert meta["options"] == [shown[k] for k in "ABCD"]
        letters.append(row["answer"])
    assert len(set(letters)) > 1, letters  # shuffled: the correct option is not always A

    # The same file again: the same prompts (the shuffle is seeded by the question), nothing added.
    again = ingest(cat, src, gpqa_options())
    assert again.prompts_added == 0 and again.prompts_already_present == len(GPQA)


def test_a_list_of_options_with_a_letter_or_a_text_answer(tmp_path: Path) -> None:
    src = write(tmp_path / "mc.jsonl", [
        {"problem": "2 + 2 = ?", "choices": ["3", "4", "5"], "answer": "b"},
        {"problem": "The capital of France?", "choices": ["Rome", "Paris"], "answer": "Paris"},
        {"problem": "How many legs has a spider?", "choices": [6, 8, 10], "answer": 8},
    ])
    cat = Catalog(tmp_path / "cat")
    ingest(cat, src, IngestOptions(source="mc", choices=("choices",)))
    got = {r["problem"].split("\n")[0]: (r["answer"], r["problem"]) for r in cat.prompts().to_dicts()}
    assert got["2 + 2 = ?"][0] == "B" and "A) 3\nB) 4\nC) 5" in got["2 + 2 = ?"][1]
    assert got["The capital of France?"][0] == "B"
    assert got["How many legs has a spider?"][0] == "B"

    # The real math judge reads the letter from \boxed{} like any answer.
    judge = get_judge("math_accuracy")
    row = {"prompt_id": "p", "generation_id": "g", "problem": "2 + 2 = ?", "reference": "B"}
    for boxed, passed in [("\\boxed{B}", True), ("\\boxed{(B)}", True), ("\\boxed{C}", False)]:
        verdict = judge(sample_from_row({**row, "text": f"<think>4</think> {boxed}", "answer": boxed}))
        assert verdict.passed is passed, (boxed, verdict)


BAD = {
    "missing_option": ([{**GPQA[0], "answer": "Hydrogen", "Incorrect Answer 3": None}],
                       "line 1: option field(s) `Incorrect Answer 3` missing"),
    "answer_not_an_option": ([{**GPQA[0], "answer": "Helium"}],
                             "line 1: answer 'Helium' is neither one of the options nor a letter A-D"),
    "no_answer": ([dict(GPQA[0])], "line 1: field `answer` is missing"),
    "same_option_twice": ([{**GPQA[0], "answer": "Argon", "Incorrect Answer 2": "Argon"}],
                          "line 1: two options have the same text"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_multiple_choice_records(tmp_path: Path, case: str) -> None:
    rows, expected = BAD[case]
    src = write(tmp_path / "bad.jsonl", [{**GPQA[1], "answer": "Helium"}, *rows])
    cat = Catalog(tmp_path / "cat")
    before = fingerprint(cat.root)
    opts = IngestOptions(source="gpqa", rename={"Question": "problem"}, choices=GPQA_FIELDS)
    with pytest.raises(CatalogError) as info:
        ingest(cat, src, opts)
    assert expected.replace("line 1", "line 2") in str(info.value) and "bad.jsonl" in str(info.value)
    assert fingerprint(cat.root) == before  # all or nothing: the good first line is not half-ingested


def test_list_field_that_is_not_a_list_and_shuffle_without_choices(tmp_path: Path) -> None:
    src = write(tmp_path / "mc.jsonl", [{"problem": "q", "choices": "A or B", "answer": "A"}])
    res = r1f("ingest", str(src), "--choices", "choices", catalog=tmp_path / "cat", check=False)
    assert res.returncode == 2 and "line 1: field `choices` must be a list of options, got str" in res.stderr
    assert not (tmp_path / "cat").exists()
    res = r1f("ingest", str(src), "--shuffle-choices", catalog=tmp_path / "cat", check=False)
    assert res.returncode == 2 and "--shuffle-choices needs --choices FIELD" in res.stderr
    assert not (tmp_path / "cat").exists()
    ok = r1f("ingest", str(write(tmp_path / "ok.jsonl", [{"problem": "q", "choices": ["x", "y"], "answer": "y"}])),
             "--choices", "choices", "--json", catalog=tmp_path / "cat")
    assert json.loads(ok.stdout)["prompts_added"] == 1
