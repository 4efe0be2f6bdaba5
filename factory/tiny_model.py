"""A tiny Qwen2-architecture causal LM and BPE tokenizer, built locally for tests and the CPU demo.

Nothing is downloaded: the tokenizer is trained with `tokenizers` on built-in text and the weights are
random from a fixed seed, so two builds give the same model. The head size is 64 because the CPU
vLLM attention kernels reject smaller heads.
"""
from __future__ import annotations

import json
from pathlib import Path

# Qwen-like ChatML template. No default system message, so the rendered prompt is exactly the messages.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
                  "<answer>", "</answer>", "|special_token|"]

# Training text for the BPE merges: some English, some math, some JSON and code, so common
# fragments of reasoning traces and judge verdicts become single tokens.
_CORPUS = [
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it.",
    ("The assistant first thinks about the reasoning process in the mind and then provides the user"
     " with the answer."),
    "Let me think step by step. First, we compute the sum. Wait, let me verify that again.",
    "So the final answer is \\boxed{42}. Therefore the result is correct.",
    "What is 2 + 3? The answer is 5. What is 7 * 8? The answer is 56. 12 / 4 = 3. 9 - 4 = 5.",
    "x^2 + 2x + 1 = (x + 1)^2, so x = -1. The roots of the equation are real and equal.",
    "Hello! How can I help you today? I am an AI assistant. Translate this sentence into French.",
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with one step.",
    '{"verdict": "correct", "score": 1, "reason": "the prediction matches the ground truth"}',
    '{"verdict": "incorrect", "score": 0, "reason": "the answer differs"}',
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 100 1000 3.14 2.718",
    "Summary: the problem reduces to counting; we check each case and verify the total.",
    "Le renard brun rapide saute par-dessus le chien paresseux. Bonjour, comment allez-vous ?",
    "Der schnelle braune Fuchs springt über den faulen Hund. 你好，世界。こんにちは。",
]


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodes, whatever the text
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    return tok


def build_tiny_model(
    path: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    vocab_size: int = 1024,
    max_position_embeddings: int = 4096,
) -> Path:
    """Write a tiny Qwen2 model, tokenizer and chat template to `path` and return it.

    Loadable by `vllm.LLM(model=path)` and `transformers.AutoModelForCausalLM.from_pretrained(path)`.
    Idempotent: an existing complete build at `path` is reused.
    """
    import torch
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = Path(path)
    marker = out / ".tiny-model-complete"
    if marker.exists():
        return out
    if hidden_size // num_heads < 64:
        raise ValueError(
            f"build_tiny_model: head size hidden_size/num_heads = {hidden_size // num_heads} is below 64; "
            "the CPU vLLM attention kernels reject it. Raise hidden_size or lower num_heads."
        )
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(vocab_size),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:2] + SPECIAL_TOKENS[3:],
        model_max_length=max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)

    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert isinstance(im_end, int) and isinstance(eot, int)  # one token in, one id out
    # The embedding table matches the tokenizer exactly: a random model samples every id it has, and
    # an id the tokenizer cannot decode would break detokenisation.
    padded_vocab = len(tokenizer)
    config = Qwen2Config(
        vocab_size=padded_vocab,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        max_window_layers=num_layers,
        tie_word_embeddings=True,
        # transformers 5 takes rope_theta through **kwargs (into rope_parameters), untyped; 4.x names it.
        rope_theta=10000.0,  # type: ignore[call-arg]
        bos_token_id=eot,
        eos_token_id=im_end,
        pad_token_id=eot,
    )
    torch.manual_seed(seed)
    # PreTrainedModel.to is wrapped with functools.wraps, which typeshed types as an unbound function.
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)  # type: ignore[arg-type]
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot).save_pretrained(out)
    marker.write_text(json.dumps({"seed": seed, "hidden_size": hidden_size, "layers": num_layers}))
    return out


if __name__ == "__main__":
    import sys

    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))
