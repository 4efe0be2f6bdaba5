"""Templates render what the paper describes; split_reasoning handles every marker style."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalogs.split import NONE, R1_ZERO, SPECIAL_TOKEN, THINK, Markers, split_reasoning
from factory.templates import DEFAULT_EXAMPLES, available_templates, fill, load_template

R1_ZERO_TEXT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {prompt}. Assistant:"
)


def test_builtin_templates_are_named_and_versioned() -> None:
    assert set(available_templates()) >= {"r1_zero", "cold_start", "reasoning", "non_reasoning"}
    for name in ("r1_zero", "cold_start", "reasoning", "non_reasoning"):
        t = load_template(name)
        assert t.name == name and t.version and t.run_version.startswith(t.version + "+")


def test_r1_zero_is_the_papers_text() -> None:
    t = load_template("r1_zero")
    problem = r"Compute $\frac{1}{2} + {x}$ when x = 1"
    r = t.render({"problem": problem})
    assert r.raw_prompt == R1_ZERO_TEXT.replace("{prompt}", problem)
    assert r.messages == [{"role": "user", "content": r.raw_prompt}]
    assert t.markers == R1_ZERO


def test_fill_leaves_other_braces_alone() -> None:
    assert fill(r"\boxed{} {prompt} {json}", prompt="a{b}") == r"\boxed{} a{b} {json}"


def test_cold_start_uses_examples_and_pattern(tmp_path: Path) -> None:
    t = load_template("cold_start")
    r = t.render({"problem": "Find x if 2x = 10."})
    user = r.messages[-1]["content"]
    assert "|special_token|<reasoning_process>|special_token|<summary>" in user
    assert user.rstrip().endswith("Problem: Find x if 2x = 10.")
    first = json.loads(DEFAULT_EXAMPLES.read_text().splitlines()[0])
    assert f"|special_token|{first['reasoning']}|special_token|{first['summary']}" in user
    assert r.messages[0]["role"] == "system"
    ex = tmp_path / "ex.jsonl"
    ex.write_text(json.dumps({"problem": "P1", "reasoning": "R1 wait, check", "summary": "S1"}) + "\n"
                  + json.dumps({"problem": "P2", "reasoning": "R2", "summary": "S2"}) + "\n")
    mine = load_template("cold_start", examples_file=ex, num_examples=1)
    user = mine.render({"problem": "Q"}).messages[-1]["content"]
    assert "Problem: P1\nResponse: |special_token|R1 wait, check|special_token|S1" in user and "P2" not in user
    assert mine.run_version != t.run_version  # other examples: another run


def test_cold_start_examples_show_reflection_and_verification() -> None:
    rows = [json.loads(line) for line in DEFAULT_EXAMPLES.read_text().splitlines() if line.strip()]
    assert len(rows) >= 3
    for row in rows:
        assert set(row) == {"problem", "reasoning", "summary"}
        low = row["reasoning"].lower()
        assert any(w in low for w in ("wait", "check", "verify")), row["problem"]
        assert "\\boxed{" in row["summary"]


def test_bad_examples_file_names_line(tmp_path: Path) -> None:
    ex = tmp_path / "ex.jsonl"
    ex.write_text(json.dumps({"problem": "P", "reasoning": "R", "summary": "S"}) + "\n{not json\n")
    from factory.templates import TemplateError

    with pytest.raises(TemplateError, match=r"ex\.jsonl:2: not valid JSON"):
        load_template("cold_start", examples_file=ex)


@pytest.mark.parametrize(("body", "expected"), [
    ("name: t\nversion: 1\nstyle: reasoning\nuser: '{prompt}'\nsytem: be brief\n",
     r"t\.yaml:5: sytem: unknown key; did you mean system\?"),
    ("name: t\nversion: 1\nstyle: reasonin\nuser: '{prompt}'\n", r"t\.yaml:3: style: .*use one of the allowed"),
    ("name: t\nversion: 1\nstyle: [reasoning\n", r"t\.yaml:4: not valid YAML"),
    ("- name: t\n", r"t\.yaml: a template must be a YAML mapping"),
])
def test_bad_template_file_names_file_and_line(tmp_path: Path, body: str, expected: str) -> None:
    from factory.templates import TemplateError

    (tmp_path / "t.yaml").write_text(body)
    with pytest.raises(TemplateError, match=expected):
        load_template(file=tmp_path / "t.yaml")


def test_reasoning_template_boxes_math_only() -> None:
    t = load_template("reasoning")
    math = t.render({"problem": "What is 3*4?", "domain": "math"})
    assert math.messages == [{"role": "user", "content": "What is 3*4?\nPlease reason step by step, and put your "
                                                         "final answer within \\boxed{}."}]
    assert math.raw_prompt is None
    other = t.render({"problem": "Write a haiku.", "domain": "writing"})
    assert other.messages == [{"role": "user", "content": "Write a haiku."}]
    # Multi-turn prompts keep their earlier turns; only the last user message is changed.
    msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}]
    r = t.render({"problem": "2+2?", "domain": "math", "messages": json.dumps(msgs)})
    assert r.messages[0] == msgs[0] and r.messages[1]["content"].startswith("2+2?\nPlease reason")
    always = load_template("reasoning", boxed="always").render({"problem": "Write a haiku."})
    assert "\\boxed{}" in always.messages[-1]["content"]
    assert t.markers == THINK


def test_non_reasoning_short_cot_and_trivial_rule() -> None:
    t = load_template("non_reasoning", trivial_patterns=[r"(hi|hello)[!. ]*"])
    full = t.render({"problem": "Translate 'good night' into French."})
    assert full.cot and "<think>" in full.messages[0]["content"]
    assert full.messages[-1] == {"role": "user", "content": "Translate 'good night' into French."}
    hello = t.render({"problem": "Hello!"})
    assert not hello.cot and "<think>" not in hello.messages[0]["content"]
    by_length = load_template("non_reasoning", trivial_patterns=[], trivial_max_chars=6)
    assert not by_length.render({"problem": "thx"}).cot
    assert by_length.render({"problem": "Who are you, and who made you?"}).cot


def test_recipe_default_trivial_rule_catches_greetings(tmp_path: Path) -> None:
    from factory.recipe import load_recipe
    from factory.templates import template_from_recipe

    p = tmp_path / "r.yaml"
    p.write_text("backend: {name: vllm, model: org/m}\ntemplate: {name: non_reasoning}\n")
    t = template_from_recipe(load_recipe(p))
    assert t.is_trivial("hello") and t.is_trivial("Thank you!") and t.is_trivial("Good morning")
    assert not t.is_trivial("hello, can you explain how vaccines work?")


@pytest.mark.parametrize(
    "text, markers, expected",
    [
        ("<think>\nlet me see\n</think>\n\nThe answer is 4.", THINK, ("let me see", "The answer is 4.")),
        # Chat templates often put <think> in the prompt: the output starts inside the reasoning.
        ("let me see</think>The answer is 4.", THINK, ("let me see", "The answer is 4.")),
        # Cut off inside the reasoning: all reasoning, no answer.
        ("<think>still going and going", THINK, ("still going and going", "")),
        ("Just an answer.", THINK, (None, "Just an answer.")),
        ("|special_token|I check it twice.|special_token|It is 4.", SPECIAL_TOKEN, ("I check it twice.", "It is 4.")),
        ("I check it.|special_token| Summary: 4", SPECIAL_TOKEN, ("I check it.", "Summary: 4")),
        ("|special_token|no summary yet", SPECIAL_TOKEN, ("no summary yet", "")),
        (" <think> 2+2 is 4 </think> <answer> 4 </answer>", R1_ZERO, ("2+2 is 4", "4")),
        ("<think>a</think> <answer>4", R1_ZERO, ("a", "4")),
        ("<think>a</think> 4", R1_ZERO, ("a", "4")),
        ("no markers at all", NONE, (None, "no markers at all")),
        ("<think>kept</think> as text", NONE, (None, "<think>kept</think> as text")),
        ("<answer>only</answer>", Markers(answer_start="<answer>", answer_end="</answer>"), (None, "only")),
    ],
)
def test_split_reasoning(text: str, markers: Markers, expected: tuple) -> None:
    assert split_reasoning(text, markers) == expected


def test_split_prefers_server_reasoning() -> None:
    # DeepSeek's API returns reasoning_content separately; the content is the answer.
    assert split_reasoning("The answer is 4.", THINK, reasoning=" thought ") == ("thought", "The answer is 4.")
    assert split_reasoning("<answer>4</answer>", R1_ZERO, reasoning="r") == ("r", "4")
