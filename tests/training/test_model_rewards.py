"""Model judges as GRPO rewards (training/model_rewards.py): a tiny reward model loaded by path, and the LLM judge
through the openai backend against a fake endpoint that fails and then answers, or never answers; each reward
applies only to the prompts its `where` selects.

The three trainings run as `r1f train grpo` in one process (`r1f_batch`: one set of torch/trl imports)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from catalogs.errors import RecipeError
from catalogs.records import Sample, Verdict, verdict
from judges.rewards import reward_func
from tests.helpers import ScriptedOpenAIServer, r1f_batch
from tests.training.conftest import write_recipe

PROMPTS = [
    {"problem": "What is 1 + 2?", "answer": "3", "kind": "reasoning"},
    {"problem": "What is 3 + 4?", "answer": "7", "kind": "reasoning"},
    {"problem": "Write a haiku about rain.", "kind": "non_reasoning"},
    {"problem": "Say hello politely.", "kind": "non_reasoning"},
]
EQUIVALENT = '{"verdict": "equivalent", "reason": "same number"}'


def test_a_reward_applies_where_its_column_says_and_is_none_elsewhere():
    fmt = reward_func("format", applies="reasoning_only")
    done = "<think>a</think>b"
    assert fmt(completions=[done, done, "no tags"], reasoning_only=[True, False, True]) == [1.0, None, 0.0]
    asked: list[list[str]] = []

    def judge(samples: list[Sample]) -> list[Verdict]:  # a model judge, as training holds it: one call per batch
        asked.append([s.problem for s in samples])
        return [verdict("helpfulness", "1", 0.5, True, "scored") for _ in samples]

    helpful = reward_func("helpfulness", weight=2.0, batch=judge, applies="general")
    assert helpful(completions=["x", "y", "z"], general=[False, True, True], problem=["p0", "p1", "p2"]) \
        == [None, 1.0, 1.0]
    assert asked == [["p1", "p2"]]
    assert helpful(completions=["x"], general=[False]) == [None] and asked == [["p1", "p2"]]  # nothing to ask


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    """A catalog of reasoning and non-reasoning prompts, and a tiny reward model: the tests' tiny Qwen2 with a
    randomly initialised sequence-classification head (one logit), saved by path."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from catalogs.ingest import IngestOptions, ingest
    from catalogs.store import Catalog

    root = tmp_path_factory.mktemp("model-rewards")
    src = root / "prompts.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS), encoding="utf-8")
    ingest(Catalog(root / "catalog"), src, IngestOptions(source="mixed"))
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    rm.save_pretrained(root / "rm")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(root / "rm")
    return {"root": root, "catalog": root / "catalog", "rm": root / "rm", "model": tiny_model_dir}


def grpo_recipe(path: Path, model: Path, rewards: str, prompts: str = "{}", batch: int = 8) -> Path:
    return write_recipe(path, f"""
model: {model}
output_dir: {path.with_suffix('')}-out
prompts: {prompts}
template: {{name: r1_zero}}
rewards:
{rewards}
trl:
  max_steps: 1
  per_device_train_batch_size: {batch}
  num_generations: 2
  max_completion_length: 8
  save_strategy: "no"
  seed: 0
""")


def reward_model_rewards(rm: Path | str) -> str:
    return f"""  - {{judge: math_accuracy, where: "kind = 'reasoning'"}}
  - {{judge: helpfulness, where: "kind = 'non_reasoning'", params: {{reward_model: {rm}, batch_size: 4}}}}
  - {{judge: harmlessness, where: "kind = 'non_reasoning'", params: {{reward_model: {rm}}}}}"""


def llm_judge_reward(url: str, attempts: int) -> str:
    # max_retries 0: the backend gives up at the first failed request, so the asking again is the bridge's own.
    return f"""  - judge: llm_judge
    attempts: {attempts}
    backend: {{name: openai, model: judge, base_url: "{url}", max_retries: 0, max_concurrency: 1}}"""


@pytest.fixture(scope="module")
def trained(mixed: dict[str, Any]) -> dict[str, Any]:
    """Three `r1f train grpo` runs of one step: reward models on the non-reasoning prompts; the LLM judge through an
    endpoint that fails twice, then answers; and through one that always fails."""
    root, model = mixed["root"], mixed["model"]
    reasoning = "{where: \"kind = 'reasoning'\"}"
    with ScriptedOpenAIServer(lambda body: EQUIVALENT, failures=2) as flaky, \
            ScriptedOpenAIServer(lambda body: EQUIVALENT, failures=None) as down:
        recipes = [grpo_recipe(root / "rm.yaml", model, reward_model_rewards(mixed["rm"])),
                   grpo_recipe(root / "flaky.yaml", model, llm_judge_reward(flaky.base_url, 3), reasoning, batch=4),
                   grpo_recipe(root / "down.yaml", model, llm_judge_reward(down.base_url, 2), reasoning, batch=4)]
        runs = r1f_batch([["train", "grpo", str(r), "--catalog", str(mixed["catalog"]), "--json"] for r in recipes])
    return {"runs": dict(zip(("rm", "flaky", "down"), runs)), "flaky": flaky, "down": down, **mixed}


def summary(ran: Any) -> dict[str, Any]:
    """The command's --json summary (trl's Trainer prints its own log lines to stdout before it)."""
    return json.loads(ran.stdout[ran.stdout.index('{\n  "'):])


def trainings(catalog: Path) -> list[tuple[str, str]]:
    from catalogs.store import Catalog

    with Catalog(catalog).reader() as con:
        return con.execute("SELECT output_dir, status FROM trainings ORDER BY output_dir").fetchall()


def test_a_reward_model_by_path_scores_the_non_reasoning_prompts(trained):
    ran = trained["runs"]["rm"]
    assert ran.returncode == 0, ran.stderr[-3000:]
    metrics = summary(ran)["metrics"]
    # One step sees all four prompts: each reward's mean is over the completions its `where` selects, so each is a
    # number (NaN would mean it applied nowhere).
    for name in ("math_accuracy", "helpfulness", "harmlessness"):
        value = metrics[f"rewards/{name}/mean"]
        assert isinstance(value, float) and not math.isnan(value), (name, metrics)
    # The reward model's score is sigmoid(logit): strictly between 0 and 1, never a failure's 0.
    assert 0.0 < metrics["rewards/helpfulness/mean"] < 1.0


def test_the_llm_judge_is_asked_again_after_failures_then_trains(trained):
    ran, server = trained["runs"]["flaky"], trained["flaky"]
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert server.failed == 2 and server.bodies, (server.failed, len(server.bodies))
    assert "try 1 of 3 failed" in ran.stderr and "try 2 of 3 failed" in ran.stderr
    metrics = summary(ran)["metrics"]
    assert metrics["rewards/llm_judge/mean"] > 0.0  # the answers it got: "equivalent", where there was a prediction


def test_a_judge_that_keeps_failing_stops_the_training_with_its_error(trained):
    ran, server = trained["runs"]["down"], trained["down"]
    assert ran.returncode == 2 and server.failed == 2 and not server.bodies
    assert "rewards[0] (llm_judge) failed 2 time(s)" in ran.stderr and "HTTP 500" in ran.stderr, ran.stderr[-3000:]
    assert "Traceback" not in ran.stderr
    statuses = {Path(out).name: status for out, status in trainings(trained["catalog"])}
    assert statuses["down-out"] == "failed" and statuses["flaky-out"] == "finished", statuses
    assert not (trained["root"] / "down-out" / "model.safetensors").exists()


def test_prepare_selects_each_rewards_prompts_and_checks_the_reward_model(mixed, tmp_path):
    from catalogs.store import Catalog
    from training.grpo import prepare_grpo

    catalog = Catalog(mixed["catalog"])
    prep = prepare_grpo(catalog, grpo_recipe(tmp_path / "g.yaml", mixed["model"], reward_model_rewards(mixed["rm"])))
    kinds = {p["problem"]: p["kind"] for p in PROMPTS}
    got = {(kinds[p], rule, rm) for p, rule, rm in zip(prep.dataset["problem"], prep.dataset["reward_0_applies"],
                                                        prep.dataset["reward_1_applies"])}
    assert len(prep.dataset) == 4 and got == {("reasoning", True, False), ("non_reasoning", False, True)}
    assert [j.reward.judge for j in prep.model_rewards] == ["helpfulness", "harmlessness"]

    for rewards, expected in [
        (reward_model_rewards(tmp_path / "no-rm"), r"rewards\[1\].params.reward_model: .*no-rm' does not exist"),
        ("  - {judge: format, where: \"kind = 'reasoning'\"}",
         r"rewards: no reward's `where` selects 2 of the 4 prompts .*kind 'non_reasoning'"),
        ("  - {judge: format, where: \"knd = 1\"}", r"rewards\[0\].where: `knd = 1` is not a valid SQL predicate"),
        ("  - {judge: helpfulness}", r"rewards: \[0\]: helpfulness asks a model; give `backend:`.* or "
                                     r"params.reward_model"),
        ("  - {judge: format, backend: {name: transformers, model: x}}",
         r"rewards: \[0\].backend: format is a rule judge and asks no model"),
        ("  - {judge: helpfulness, params: {reward_modl: x}}", r"reward_modl: unknown key; did you mean reward_model"),
        ("  - format\n  - math_accuracy\n  - format", r"rewards: format is given twice"),
    ]:
        with pytest.raises(RecipeError, match=expected):
            prepare_grpo(catalog, grpo_recipe(tmp_path / "bad.yaml", mixed["model"], rewards))


def test_unparseable_replies_are_asked_again_alone_and_stop_the_training_if_they_persist():
    from training.model_rewards import ModelReward, RewardJudgeError
    from training.recipe import RewardSpec

    samples = [Sample(problem=f"What is {a} + 1?", reference=str(a + 1), text=str(a + 1), answer=str(a + 1))
               for a in (1, 2, 3)]
    replies = iter(["Sure! Looks the same to me."] + [EQUIVALENT] * 3)
    with ScriptedOpenAIServer(lambda body: next(replies)) as srv:
        backend = {"name": "openai", "model": "judge", "base_url": srv.base_url, "max_concurrency": 1}
        judge = ModelReward(RewardSpec(judge="llm_judge", backend=backend, attempts=2), 0, "r.yaml")
        try:
            assert [v.reason for v in judge(samples)] == ["equivalent"] * 3
        finally:
            judge.close()
        # The first reply did not parse: that sample alone was asked again, and nothing was scored 0 for it.
        assert len(srv.bodies) == 4 and srv.bodies[3]["messages"] == srv.bodies[0]["messages"]
    with ScriptedOpenAIServer(lambda body: "no idea") as srv:
        judge = ModelReward(RewardSpec(judge="llm_judge", backend={**backend, "base_url": srv.base_url},
                                       attempts=2), 0, "r.yaml")
        with pytest.raises(RewardJudgeError, match=r"r.yaml: rewards\[0\] \(llm_judge\) failed 2 time\(s\) .*"
                                                   r"3 of 3 verdicts are unparseable_judge_response"):
            judge(samples)
        judge.close()
        assert len(srv.bodies) == 6
