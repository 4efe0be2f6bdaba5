import json

import pytest

from judges.rewards import as_reward_funcs, combined_reward, completion_text, gated_reward, reward_func

GOOD = "<think>1+1 is 2</think>The answer is \\boxed{2}."
BAD_FORMAT = "The answer is \\boxed{2}."
WRONG = "<think>hmm</think>\\boxed{3}"


def test_reward_funcs_on_strings_and_messages():
    math_f, fmt_f = as_reward_funcs(["math_accuracy", "format"], weights=[1.0, 0.5])
    assert math_f.__name__ == "math_accuracy" and fmt_f.__name__ == "format"
    comps = [GOOD, BAD_FORMAT, WRONG]
    assert math_f(prompts=["q"] * 3, completions=comps, answer=["2", "2", "2"]) == [1.0, 1.0, 0.0]
    assert fmt_f(prompts=["q"] * 3, completions=comps, answer=["2"] * 3) == [0.5, 0.0, 0.5]
    chat = [[{"role": "assistant", "content": c}] for c in comps]
    assert math_f(prompts=[[{"role": "user", "content": "q"}]] * 3, completions=chat,
                  answer=["2"] * 3, trainer_state=None) == [1.0, 1.0, 0.0]
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "ab"


def test_params_weights_callables_and_combined():
    f = reward_func("format", params={"require_open": False})
    assert f(completions=["reasoning</think>answer"]) == [1.0]
    custom = lambda s: "answer is" in s.answer
    custom.__name__ = "says_answer_is"
    g = combined_reward(["math_accuracy", custom], weights=[2.0, 1.0])
    assert g.__name__ == "combined"
    assert g(prompts=None, completions=[GOOD, WRONG], answer=["2", "2"]) == [3.0, 0.0]
    with pytest.raises(ValueError, match="one weight per judge"):
        as_reward_funcs(["format"], weights=[1.0, 2.0])
    with pytest.raises(KeyError, match="known judges"):
        as_reward_funcs(["nope"])


def test_gated_reward_counts_only_where_every_gate_passes():
    r1_zero = ("format", {"template": "r1_zero"})
    acc = gated_reward(reward_func("math_accuracy", weight=2.0), [r1_zero])
    assert acc.__name__ == "math_accuracy_if_format"
    comps = ["<think>1+1=2</think> <answer>\\boxed{2}</answer>",   # right, in format
             "<think>1+1=2</think> \\boxed{2}",                      # right, no <answer> tags
             "<think>1+1=3</think> <answer>\\boxed{3}</answer>"]    # in format, wrong
    assert acc(prompts=["q"] * 3, completions=comps, answer=["2"] * 3) == [2.0, 0.0, 0.0]
    # Two gates: the format's reward only where the answer is also right.
    both = gated_reward(reward_func("format", params={"template": "r1_zero"}), [r1_zero, ("math_accuracy", {})])
    assert both.__name__ == "format_if_format_if_math_accuracy"
    assert both(completions=comps, answer=["2"] * 3) == [1.0, 0.0, 0.0]
    # A prompt the reward does not score (None: its `where` leaves it out) stays unscored.
    def where_first(prompts=None, completions=(), **kwargs):
        return [None, 1.0, 1.0]
    assert gated_reward(where_first, [r1_zero])(completions=comps, answer=["2"] * 3) == [None, 0.0, 1.0]
    with pytest.raises(ValueError, match="at least one gate"):
        gated_reward(acc, [])
    with pytest.raises(KeyError, match="known judges"):
        gated_reward(acc, [("formatt", {})])


def test_language_and_code_columns():
    lang = reward_func("language_consistency")
    assert lang(completions=["<think>我们先计算</think>6", "<think>we compute</think>6"], language=["zh", "zh"]) \
        == [1.0, 0.0]
    code = reward_func("code")
    tests = [[{"input": "3", "output": "9"}], json.dumps([{"input": "3", "output": "9"}])]
    prog = "<think>square it</think>```python\nprint(int(input())**2)\n```"
    assert code(completions=[prog, prog], tests=tests) == [1.0, 1.0]


def test_grpo_trainer_trains_with_our_judges(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ds = Dataset.from_list([{"prompt": f"What is {a} + {b}? Put the answer in \\boxed{{}}.", "answer": str(a + b)}
                            for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]])
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), use_cpu=True, max_steps=2, per_device_train_batch_size=4,
                      num_generations=4, max_completion_length=16, learning_rate=1e-4, logging_steps=1,
                      report_to=[], save_strategy="no", bf16=False, seed=0, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=str(tiny_model_dir), processing_class=tok,
                          reward_funcs=as_reward_funcs(["math_accuracy", "format"]), args=args, train_dataset=ds)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "rewards/math_accuracy/mean" in h]
    assert len(logs) == 2
    assert all("rewards/format/mean" in h and 0.0 <= h["rewards/format/mean"] <= 1.0 for h in logs)
    assert trainer.state.global_step == 2
