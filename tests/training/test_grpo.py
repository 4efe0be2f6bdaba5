"""`r1f train grpo`: a few real GRPO steps with the judges as rewards (transformers generation on the CPU)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalogs.errors import RecipeError
from tests.training.conftest import write_recipe


def grpo_recipe(tmp_path: Path, model: Path, prompts: str = "{release: toy-v1}", rewards: str = "",
                trl: str = "") -> Path:
    return write_recipe(tmp_path / "grpo.yaml", f"""
model: {model}
output_dir: {tmp_path / 'out'}
prompts: {prompts}
template: {{name: r1_zero}}
rewards:
{rewards or '''  - math_accuracy
  - {judge: format, weight: 0.5}
  - {judge: language_consistency, weight: 0.1}'''}
trl:
{trl or '''  max_steps: 2
  per_device_train_batch_size: 4
  num_generations: 4
  max_completion_length: 12
  learning_rate: 0.0001
  beta: 0.04
  save_steps: 1'''}
""")


def test_grpo_steps_log_each_reward_component_and_are_recorded(tmp_path, tiny_model_dir, toy_catalog):
    from training.grpo import run_grpo

    catalog, _ = toy_catalog
    result = run_grpo(catalog, grpo_recipe(tmp_path, tiny_model_dir))
    steps = [e for e in result["log_history"] if "reward" in e]
    assert len(steps) == 2
    for e in steps:
        for key in ("rewards/math_accuracy/mean", "rewards/format/mean", "rewards/language_consistency/mean",
                    "completions/mean_length", "kl"):
            assert key in e, (key, sorted(e))
    assert (tmp_path / "out" / "checkpoint-2").is_dir() and (tmp_path / "out" / "model.safetensors").exists()
    with catalog.reader() as con:
        row = con.execute("SELECT kind, status, release_name, prompts_where, metrics FROM trainings "
                          "WHERE training_id = ?", [result["training_id"]]).fetchone()
    assert row[:4] == ("grpo", "finished", "toy-v1", "release toy-v1")
    metrics = json.loads(row[4])
    assert "rewards/format/mean" in metrics
    # The curve: one point per logged step, with what the paper's Figures 2 and 3 plot (reward, mean length).
    assert [p["step"] for p in metrics["curve"]] == [e["step"] for e in steps] == [1, 2]
    for point, logged in zip(metrics["curve"], steps):
        for key in ("reward", "completions/mean_length", "rewards/math_accuracy/mean", "rewards/format/mean"):
            assert point[key] == pytest.approx(logged[key]), key


def test_resume_continues_from_the_last_checkpoint(tmp_path, tiny_model_dir, toy_catalog):
    from training.grpo import run_grpo

    catalog, _ = toy_catalog
    trl = "  max_steps: 1\n  per_device_train_batch_size: 4\n  num_generations: 4\n  max_completion_length: 8\n" \
          "  save_steps: 1"
    run_grpo(catalog, grpo_recipe(tmp_path, tiny_model_dir, rewards="  - format", trl=trl))
    assert (tmp_path / "out" / "checkpoint-1").is_dir()
    longer = grpo_recipe(tmp_path, tiny_model_dir, rewards="  - format", trl=trl.replace("max_steps: 1", "max_steps: 2"))
    result = run_grpo(catalog, longer, resume=True)
    steps = [e for e in result["log_history"] if "reward" in e]
    assert [e["step"] for e in steps] == [1, 2]
    # Step 1 is the checkpoint's own record, restored, not trained again.
    saved = json.loads((tmp_path / "out" / "checkpoint-1" / "trainer_state.json").read_text())["log_history"]
    assert steps[0] == next(e for e in saved if "reward" in e)


def test_pass_rate_window_and_where_select_prompts(tmp_path, tiny_model_dir, toy_catalog):
    from training.grpo import prepare_grpo

    catalog, _ = toy_catalog
    with catalog.reader() as con:
        ids = [r[0] for r in con.execute("SELECT prompt_id FROM prompts WHERE source = 'toy' ORDER BY 1").fetchall()]
    catalog.set_prompt_stats([{"prompt_id": pid, "run_id": "r_window", "samples": 10, "accepted": a,
                               "pass_rate": a / 10, "status": "open"} for pid, a in zip(ids, [0, 3, 8, 10])])
    prep = prepare_grpo(catalog, grpo_recipe(tmp_path, tiny_model_dir,
                                             prompts="{where: \"source = 'toy'\", pass_rate: [0.1, 0.9]}"))
    assert sorted(prep.dataset["prompt_id"]) == sorted(ids[1:3])
    assert prep.dataset[0]["prompt"].startswith("A conversation between User and Assistant")
    assert prep.dataset[0]["answer"] in {"3", "7", "11", "15"}


def test_a_reward_gated_by_the_format(tmp_path, tiny_model_dir, toy_catalog):
    from training.grpo import prepare_grpo

    catalog, _ = toy_catalog
    rewards = "  - {judge: math_accuracy, gated_by: [{judge: format, params: {template: r1_zero}}]}\n  - format"
    prep = prepare_grpo(catalog, grpo_recipe(tmp_path, tiny_model_dir, rewards=rewards))
    gated, fmt = prep.reward_funcs
    assert (gated.__name__, fmt.__name__) == ("math_accuracy_if_format", "format")
    comps = ["<think>x</think> <answer>\\boxed{3}</answer>", "<think>x</think> \\boxed{3}"]
    assert gated(prompts=["q"] * 2, completions=comps, answer=["3"] * 2) == [1.0, 0.0]


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"rewards": "  - math_accuracy\n  - {judge: vibes}"}, r"grpo.yaml:5: rewards: \[1\].judge 'vibes' is not a judge"),
    ({"rewards": "  - {judge: math_accuracy, gated_by: [{judge: formatt}]}"},
     r"grpo.yaml:5: rewards: \[0\].gated_by\[0\].judge 'formatt' is not a rule judge"),
    ({"trl": "  per_device_train_batch_size: 6\n  num_generations: 4"},
     r"grpo.yaml: trl.per_device_train_batch_size: 6 .* groups of trl.num_generations = 4"),
    ({"prompts": "{release: nope}"}, r"grpo.yaml: prompts.release: no release named 'nope'"),
    ({"prompts": "{where: \"source = 'nowhere'\"}"}, r"grpo.yaml: prompts: the selection .* matches no prompts"),
    ({"trl": "  num_generation: 4"}, r"grpo.yaml:10: trl.num_generation: unknown key; did you mean num_generations"),
])
def test_bad_grpo_recipes(tmp_path, tiny_model_dir, toy_catalog, kwargs, expected):
    from training.grpo import prepare_grpo

    catalog, _ = toy_catalog
    with pytest.raises(RecipeError, match=expected):
        prepare_grpo(catalog, grpo_recipe(tmp_path, tiny_model_dir, **kwargs))
    assert not (tmp_path / "out").exists()
