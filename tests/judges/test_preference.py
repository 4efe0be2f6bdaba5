import pytest

from catalogs.records import Sample
from judges.preference import RewardModelScorer, parse_score, score_with_llm, text_for
from tests.helpers import ScriptedOpenAIServer

S = Sample(problem="Say hello politely.", reasoning="The user wants a greeting. SECRET-REASONING",
           answer="Hello! How can I help you today?",
           text="<think>The user wants a greeting. SECRET-REASONING</think>Hello! How can I help you today?")


def test_helpfulness_sees_summary_only_harmlessness_sees_all():
    assert text_for(S, "helpfulness") == "Hello! How can I help you today?"
    assert "SECRET-REASONING" in text_for(S, "harmlessness") and "Hello!" in text_for(S, "harmlessness")
    with pytest.raises(ValueError, match="known"):
        text_for(S, "funniness")


def test_parse_score():
    v = parse_score('{"score": 10, "reason": "great"}', judge="h", version="1", pass_score=6)
    assert v.passed and v.score == 1.0
    v = parse_score('{"score": 3, "reason": "meh"}', judge="h", version="1", pass_score=6)
    assert not v.passed and abs(v.score - 2 / 9) < 1e-9
    for bad in ["", '{"score": 11}', '{"score": "high"}', '{"score": true}', "seven"]:
        assert parse_score(bad, judge="h", version="1", pass_score=6).reason == "unparseable_judge_response"


def test_llm_rubric_prompts_show_the_right_part():
    """Through the real openai backend against a scripted remote API: what each rubric prompt showed."""
    from backends.openai_backend import OpenAIBackend

    with ScriptedOpenAIServer(lambda body: '{"score": 8, "reason": "fine"}') as srv:
        be = OpenAIBackend(srv.base_url, "judge", max_retries=0, timeout_s=10)
        help_v = score_with_llm([S, Sample(problem="q", reasoning="r", answer="")], be, "helpfulness")
        harm_v = score_with_llm([S], be, "harmlessness")
        be.close()
    assert help_v[0].passed and help_v[0].details["raw_score"] == 8 and help_v[1].reason == "no_summary"
    assert len(srv.bodies) == 2  # the sample with no summary was never sent
    help_prompt, harm_prompt = srv.bodies[0]["messages"][0]["content"], srv.bodies[1]["messages"][0]["content"]
    assert "SECRET-REASONING" not in help_prompt and "Hello!" in help_prompt
    assert "SECRET-REASONING" in harm_prompt
    assert srv.bodies[0]["response_format"]["json_schema"]["schema"]["properties"]["score"]["maximum"] == 10
    assert harm_v[0].judge == "harmlessness_llm" and harm_v[0].judge_version == "1+harmlessness_v1"


@pytest.fixture(scope="module")
def tiny_reward_model(tiny_model_dir, tmp_path_factory):
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForSequenceClassification

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=1, num_key_value_heads=1, num_labels=1,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    path = tmp_path_factory.mktemp("tiny-rm")
    Qwen2ForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_reward_model_path(tiny_reward_model):
    rm = RewardModelScorer(tiny_reward_model, threshold=0.0)
    other = Sample(problem=S.problem, reasoning="totally different reasoning", answer=S.answer,
                   text="<think>totally different reasoning</think>" + S.answer)
    help_v = rm.score([S, other, Sample(problem="q", answer="")], "helpfulness")
    harm_v = rm.score([S, other], "harmlessness")
    assert help_v[2].reason == "no_summary"
    for v in help_v[:2] + harm_v:
        assert v.reason == "scored" and 0.0 < v.score < 1.0 and v.passed == (v.details["reward"] >= 0.0)
    # Helpfulness ignores the reasoning; harmlessness does not.
    assert help_v[0].details["reward"] == pytest.approx(help_v[1].details["reward"], abs=1e-6)
    assert harm_v[0].details["reward"] != pytest.approx(harm_v[1].details["reward"], abs=1e-6)
    with pytest.raises(FileNotFoundError, match="config.json"):
        RewardModelScorer(tiny_reward_model / "nope")


def test_reward_model_judge_through_a_recipe(tiny_reward_model, tmp_path):
    """A model judge through the driver, declared by its module (judges/helpfulness.py): the reward model's path
    is read from the recipe's folder, and the judge is made once, with no `backend`."""
    import json
    import os

    from catalogs import Catalog
    from catalogs.ingest import IngestOptions, ingest
    from catalogs.recipes import load_model
    from judges.run import JudgeRecipe, judge_catalog

    gens = tmp_path / "gens.jsonl"
    gens.write_text(json.dumps({"problem": S.problem, "response": S.text}) + "\n")
    cat = Catalog(tmp_path / "cat")
    ingest(cat, gens, IngestOptions(source="t", generations=True, model="m"))
    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "rm.yaml"
    recipe.write_text(f"judges:\n  - name: helpfulness\n    params:\n      reward_model: "
                      f"{os.path.relpath(tiny_reward_model, recipe.parent)}\n      threshold: -1000.0\n")
    assert judge_catalog(cat, load_model(recipe, JudgeRecipe)) == {"helpfulness": {"judged": 1, "passed": 1}}
    [v] = cat.verdicts().to_dicts()
    assert v["judge"] == "helpfulness" and v["reason"] == "scored"
    assert json.loads(v["details"])["reward_model"] == tiny_reward_model.name
    # The verdict is found again: a rerun scores nothing.
    assert judge_catalog(cat, load_model(recipe, JudgeRecipe)) == {"helpfulness": {"judged": 0, "passed": 0}}


def test_llm_rubric_end_to_end_against_served_tiny_model(vllm_server, tiny_model_dir):
    from transformers import AutoTokenizer

    from backends.openai_backend import OpenAIBackend

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # As in the LLM judge test: keep the random model from filling the reply with JSON whitespace.
    spaces = {str(i): -100 for i in range(len(tok)) if tok.decode([i]).strip() == "" and tok.decode([i])}
    backend = OpenAIBackend(vllm_server, "tiny", max_retries=1, timeout_s=120)
    for aspect in ("helpfulness", "harmlessness"):
        v = score_with_llm([S], backend, aspect, max_tokens=400, request_extra={"body": {"logit_bias": spaces}})[0]
        assert v.reason == "scored", v
        assert 1 <= v.details["raw_score"] <= 10 and v.score == pytest.approx((v.details["raw_score"] - 1) / 9)
