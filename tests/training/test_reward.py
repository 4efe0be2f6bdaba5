"""`r1f train reward`: a tiny reward model trained with trl's RewardTrainer on 40 preference pairs, loaded back through
the helpfulness judge, and recorded in the catalog; bad pairs files and recipes refused before any weight loads."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalogs.errors import RecipeError
from catalogs.records import Sample
from r1f.cli import app
from tests.training.conftest import write_recipe

QUESTIONS = ["What is 2 + 3?", "Say hello politely.", "Translate this sentence into French.", "What is 7 * 8?",
             "How can I help you today?", "Write a haiku about rain.", "What is 12 / 4?", "Name a quick animal."]


def pairs_rows(n: int = 40) -> list[dict[str, str]]:
    """Pairs whose two answers differ in an obvious way (a polite, confident summary against a hedging one), so a
    few steps learn the preference."""
    return [{"prompt": f"{QUESTIONS[i % len(QUESTIONS)]} ({i})",
             "chosen": f"Hello! The answer is {i}. Therefore the result is correct.",
             "rejected": f"The answer is {i}. Wait, the answer differs."} for i in range(n)]


def write_pairs(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def reward_recipe(folder: Path, model: Path, *, pairs: str = "pairs.jsonl", steps: int = 4, trl: str = "",
                  extra: str = "") -> Path:
    return write_recipe(folder / "rm.yaml", f"""
model: {model}
pairs: {{file: {pairs}}}
aspect: helpfulness
output_dir: {folder / 'rm-out'}
{extra}
trl:
  max_steps: {steps}
  per_device_train_batch_size: 8
  learning_rate: 0.001
  logging_steps: 1
  seed: 0
  gradient_checkpointing: false
  save_strategy: "no"
  report_to: none
{trl}""")


def judge_accuracy(model_dir: Path, rows: list[dict[str, str]]) -> float:
    """The share of pairs whose chosen answer the helpfulness judge, with `reward_model: model_dir`, scores above
    the rejected one (the judge reads the summary: `Sample.answer`)."""
    from judges.registry import get_judge

    judge = get_judge("helpfulness").open(None, reward_model=str(model_dir))  # type: ignore[misc]
    chosen = judge([Sample(problem=r["prompt"], answer=r["chosen"]) for r in rows])
    rejected = judge([Sample(problem=r["prompt"], answer=r["rejected"]) for r in rows])
    assert all(v.judge == "helpfulness" and v.reason == "scored" for v in chosen + rejected)
    return sum(c.score > r.score for c, r in zip(chosen, rejected)) / len(rows)


def untrained(model: Path, out: Path, seed: int = 0) -> Path:
    """The reward model training starts from: the base with a new score head, drawn from the training's seed."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    set_seed(seed)
    rm = AutoModelForSequenceClassification.from_pretrained(model, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(model)
    rm.config.pad_token_id = tokenizer.pad_token_id
    rm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_a_trained_reward_model_prefers_chosen_through_the_helpfulness_judge(tmp_path, tiny_model_dir):
    rows = pairs_rows()
    # A random score head already prefers one side of every pair (the two sides differ the same way each time):
    # the pairs prefer the side the untrained model scores lower, so only training can make it pick `chosen`.
    before = judge_accuracy(untrained(tiny_model_dir, tmp_path / "untrained"), rows)
    if before > 0.5:
        rows = [{**r, "chosen": r["rejected"], "rejected": r["chosen"]} for r in rows]
        before = 1 - before
    assert before < 0.5
    tied = [{"prompt": "Say hi.", "chosen": "Hi.", "rejected": "Hi."}] * 2  # no preference: left out
    pairs = write_pairs(tmp_path / "pairs.jsonl", rows + tied)
    recipe = reward_recipe(tmp_path, tiny_model_dir)  # pairs.file relative to the recipe

    cat = tmp_path / "cat"
    res = CliRunner().invoke(app, ["train", "reward", str(recipe), "--json", "--catalog", str(cat)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index('{\n  "training_id"'):])  # after trl's printed step logs
    out = tmp_path / "rm-out"
    assert summary["output_dir"] == str(out.resolve()) and summary["pairs"] == str(pairs.resolve())

    # Checked with seeds 0-4 (`trl.seed`, the swap above included: seeds 1 and 3 swap): untrained 0.0-0.175,
    # trained 1.0 every time, mean margin 3.0-4.2 logits.
    after = judge_accuracy(out, rows)
    assert after >= 0.9, (before, after)
    config = json.loads((out / "config.json").read_text())
    assert len(config["id2label"]) == 1 and config["pad_token_id"] is not None

    res = CliRunner().invoke(app, ["sql", "SELECT * FROM trainings", "--json", "--catalog", str(cat)])
    [row] = json.loads(res.output)
    assert (row["kind"], row["status"], row["base_model"], row["release_name"]) == \
        ("reward", "finished", str(tiny_model_dir), None)
    assert row["manifest_sha256"] == hashlib.sha256(pairs.read_bytes()).hexdigest()
    assert row["prompts_where"] == f"pairs {pairs.resolve()}" and row["output_dir"] == str(out.resolve())
    assert json.loads(row["recipe"])["aspect"] == "helpfulness"
    metrics = json.loads(row["metrics"])
    assert metrics["accuracy"] == after and metrics["margin"] > 1.0
    assert (metrics["pairs"], metrics["pairs_tied"], metrics["pairs_too_long"]) == (40, 2, 0)
    assert [p["step"] for p in metrics["curve"]] == [1, 2, 3, 4]
    assert all("loss" in p and "accuracy" in p and "margin" in p for p in metrics["curve"])
    assert metrics["curve"][-1]["accuracy"] == 1.0 and metrics["final_loss"] < metrics["first_loss"]


def _refused(recipe: Path) -> str:
    from training.reward import prepare_reward

    with pytest.raises(RecipeError) as info:
        prepare_reward(recipe)
    assert not (recipe.parent / "rm-out").exists()  # nothing written
    return str(info.value)


def test_bad_pairs_and_recipes_are_refused_naming_the_field_or_line(tmp_path, tiny_model_dir):
    recipe = reward_recipe(tmp_path, tiny_model_dir, pairs="missing.jsonl")
    msg = _refused(recipe)
    assert f"{recipe}: pairs.file: 'missing.jsonl' does not exist (looked for {tmp_path / 'missing.jsonl'})" in msg
    res = CliRunner().invoke(app, ["train", "reward", str(recipe), "--catalog", str(tmp_path / "c")])
    assert isinstance(res.exception, RecipeError) and not (tmp_path / "c").exists()  # refused before the catalog

    pairs = tmp_path / "pairs.jsonl"
    recipe = reward_recipe(tmp_path, tiny_model_dir)
    write_pairs(pairs, pairs_rows(3))
    with pairs.open("a", encoding="utf-8") as f:
        f.write('{"prompt": "p", "chosen": "a"}\n')
    assert f"{pairs}:4: 'rejected' is missing; each row needs" in _refused(recipe)
    write_pairs(pairs, [{"prompt": "p", "chosen": 3, "rejected": "b"}])
    assert f"{pairs}:1: 'chosen' is a int, not a string" in _refused(recipe)
    pairs.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n\nnot json\n', encoding="utf-8")
    assert f"{pairs}:3: malformed JSON" in _refused(recipe)

    write_pairs(pairs, [{"prompt": "p", "chosen": "same", "rejected": "same"}] * 3)
    msg = _refused(recipe)
    assert f"{recipe}: pairs.file: in all 3 pairs of {pairs} \"chosen\" equals \"rejected\"" in msg

    pairs.write_text("\n", encoding="utf-8")
    assert f"{recipe}: pairs.file: {pairs} holds no pairs" in _refused(recipe)

    write_pairs(pairs, pairs_rows(3))
    msg = _refused(reward_recipe(tmp_path, tiny_model_dir, trl="  learning_rat: 0.1\n"))
    assert f"{recipe}:15: trl.learning_rat: unknown key; did you mean learning_rate?" in msg
    msg = _refused(reward_recipe(tmp_path, tiny_model_dir, extra="aspect_: helpfulness"))
    assert f"{recipe}:5: aspect_: unknown key; did you mean aspect?" in msg
    msg = _refused(reward_recipe(tmp_path, tiny_model_dir, extra="chat_template: chatml"))
    assert f"{recipe}:5: chat_template:" in msg and "remove chat_template" in msg
    msg = _refused(reward_recipe(tmp_path, tiny_model_dir, trl="  max_length: 4\n"))
    assert f"{recipe}: trl.max_length: every pair of {pairs} is longer than 4 tokens" in msg

    # The command's --check: the same checks, no weights loaded, nothing written.
    ok = reward_recipe(tmp_path, tiny_model_dir)
    res = CliRunner().invoke(app, ["train", "reward", str(ok), "--check", "--json", "--catalog", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["pairs"] == 3 and not (tmp_path / "rm-out").exists()
