"""Every shipped training recipe parses and validates (trl's own config classes included) without training:
model names, GPU counts, accelerate configs, and the R1 stage order."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from catalogs.errors import RecipeError

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
STUDENTS = {
    "distill-qwen2.5-math-1.5b.yaml": ("Qwen/Qwen2.5-Math-1.5B", 8),
    "distill-qwen2.5-math-7b.yaml": ("Qwen/Qwen2.5-Math-7B", 8),
    "distill-qwen2.5-14b.yaml": ("Qwen/Qwen2.5-14B", 8),
    "distill-qwen2.5-32b.yaml": ("Qwen/Qwen2.5-32B", 16),
    "distill-llama-3.1-8b.yaml": ("meta-llama/Llama-3.1-8B", 8),
    "distill-llama-3.3-70b-instruct.yaml": ("meta-llama/Llama-3.3-70B-Instruct", 32),
}


@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_distill_recipes(name):
    from training.recipe import SFTRecipe, load_recipe

    r = load_recipe(RECIPES / name, SFTRecipe)
    model, gpus = STUDENTS[name]
    assert r.model == model and r.release == "r1-sft-v1" and r.resources.gpus == gpus
    args = r.training_args(for_validation=True)
    assert args.num_train_epochs == 2 and args.assistant_only_loss and args.bf16
    assert r.chat_template in ("chatml", "llama3")
    accel = yaml.safe_load((RECIPES.parent / r.resources.accelerate_config).read_text())
    assert accel["distributed_type"] == "DEEPSPEED" and accel["num_processes"] * 1 >= 8


def test_r1_zero_recipe():
    from training.recipe import GRPORecipe, load_recipe

    r = load_recipe(RECIPES / "r1-zero.yaml", GRPORecipe)
    assert [x.judge for x in r.rewards] == ["math_accuracy", "format"] and r.template.name == "r1_zero"
    args = r.training_args(for_validation=True)
    assert args.num_generations == 16 and args.beta == 0.001 and args.learning_rate == 3e-6


def test_r1_stages_in_order():
    from pipelines.recipe import check_pipeline

    stages = check_pipeline(RECIPES / "r1.yaml")
    assert [s.kind for s, _ in stages] == ["sft", "grpo", "generate", "judge", "filter", "release", "sft", "grpo"]
    (_, cold), (_, rl), (_, sampling), *_, (_, sft), (_, rl_all) = stages
    assert rl.model == cold.output_dir and sampling.backend.model == rl.output_dir
    assert rl_all.model == sft.output_dir and sft.release == "r1-sft-v1"
    assert "language_consistency" in [x.judge for x in rl.rewards]


def test_r1_stages_out_of_order_is_an_error(tmp_path):
    from pipelines.recipe import check_pipeline

    text = (RECIPES / "r1.yaml").read_text()
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("  - {name: cold-start-sft"))
    j = next(n for n, line in enumerate(lines) if line.startswith("  - {name: reasoning-rl"))
    lines[i], lines[j] = lines[j], lines[i]
    for src in ("r1", "judge_r1.yaml", "filters_r1.yaml", "release_r1.yaml"):
        (tmp_path / src).symlink_to(RECIPES / src)
    (tmp_path / "r1.yaml").write_text("\n".join(lines))
    with pytest.raises(RecipeError, match=r"stages\[0\].recipe: model 'runs/r1/1-cold-start-sft' is no earlier"):
        check_pipeline(tmp_path / "r1.yaml")


def test_a_stage_whose_input_is_missing_names_the_stage_to_run_first(tmp_path):
    from catalogs.store import Catalog
    from training.grpo import prepare_grpo

    with pytest.raises(RecipeError, match=r"2-reasoning-rl.yaml: model: .* does not exist yet.* run `r1f train sft "
                                          r"recipes/r1/1-cold-start-sft.yaml` first"):
        prepare_grpo(Catalog(tmp_path / "c"), RECIPES / "r1" / "2-reasoning-rl.yaml")


def test_eval_recipe_has_the_papers_settings():
    from training.recipe import EvalRecipe, load_recipe

    r = load_recipe(RECIPES / "eval-math.yaml", EvalRecipe)
    assert (r.k, r.sampling.temperature, r.sampling.top_p, r.sampling.max_tokens) == (64, 0.6, 0.95, 32768)
    assert [b.name for b in r.benchmarks] == ["aime24", "math500"] and r.judges == ["math_accuracy"]


GRPO_BEFORE_REWARD_OPTIONS = """\
name: zero
model: Qwen/Qwen2.5-Math-1.5B
output_dir: runs/zero
prompts: {where: "source = 'gsm8k'"}
rewards: [math_accuracy, {judge: format, weight: 0.5, params: {template: r1_zero}}]
trl: {max_steps: 10, learning_rate: 1.0e-6}
"""


def test_a_grpo_recipe_keeps_its_training_id_when_reward_options_are_added(tmp_path: Path) -> None:
    """Reward options added later (where, backend, attempts, gated_by) at their defaults leave a recipe's training id
    as the previous schema's code computed it (the value below), so an upgraded catalog's trainings keep their ids;
    a recipe that sets one gets another id."""
    from training.recipe import GRPORecipe, load_recipe
    from training.runs import training_id

    path = tmp_path / "grpo.yaml"
    path.write_text(GRPO_BEFORE_REWARD_OPTIONS)
    assert training_id("grpo", load_recipe(path, GRPORecipe), None) == "t_cf27818a6d8a93330fec7ecd"
    path.write_text(GRPO_BEFORE_REWARD_OPTIONS.replace("rewards: [math_accuracy,",
                                                       "rewards: [{judge: math_accuracy, where: \"kind = 'reasoning'\"},"))
    assert training_id("grpo", load_recipe(path, GRPORecipe), None) != "t_cf27818a6d8a93330fec7ecd"


def test_the_distillation_pipeline_plans_six_students_on_the_r1_release(tmp_path: Path) -> None:
    """`r1f run recipes/distill.yaml --dry-run` plans every student's SFT on r1-sft-v1, before any catalog exists."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "r1f", "run", str(RECIPES / "distill.yaml"), "--dry-run", "--json",
                          "--catalog", str(tmp_path / "catalog")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    students = sorted(p.name[len("distill-"):-len(".yaml")] for p in RECIPES.glob("distill-*.yaml"))
    assert sorted(s["name"][len("distill-"):] for s in plan["steps"]) == students
    assert {(s["kind"], s["action"]) for s in plan["steps"]} == {("sft", "run")}
    from pipelines.recipe import check_pipeline

    assert {r.release for _, r in check_pipeline(RECIPES / "distill.yaml")} == {"r1-sft-v1"}
