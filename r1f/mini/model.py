"""The Mini-R1 base models: a character-level tokenizer and tiny Qwen2 models trained from scratch.

The tokenizer is byte-level BPE with no merges (one token per ASCII character), plus a few whole tokens
for the tags every trace uses, so a trace stays short. It is built with `tokenizers` and saved as a
`PreTrainedTokenizerFast`, which transformers and vLLM's CPU build both load. The tags are ordinary
added tokens, not special ones, so decoding keeps them. Its chat template is a plain `User:/Assistant:`
dialogue with `{% generation %}` markers, so trl's SFT can put the loss on the assistant turn only.

Pretraining is trl's SFTTrainer on raw text (a language-modelling dataset, no chat format).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from r1f.mini.world import EOS

log = logging.getLogger("r1f.mini")

TAGS = ["<think>", "</think>", "<answer>", "</answer>", "\\boxed{"]
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{- 'User: ' + message['content'] + '\\nAssistant: ' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '" + EOS + "' }}{% endgeneration %}"
    "{%- endif %}"
    "{%- endfor %}"
)


@dataclass(frozen=True)
class ModelSize:
    hidden: int = 128
    layers: int = 2
    heads: int = 2          # head size hidden/heads must stay >= 64 for the CPU vLLM kernels
    intermediate: int = 256


BASE = ModelSize()
STUDENT = ModelSize(hidden=64, layers=2, heads=1, intermediate=128)


def build_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    # Vocabulary = the 256 byte symbols and the EOS: no room for merges, so one token per character.
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + 1, special_tokens=[EOS], initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(["a"], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token=EOS, pad_token=EOS,
                                   unk_token=None, model_max_length=512, clean_up_tokenization_spaces=False)
    fast.add_tokens(TAGS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def init_model(out: Path, size: ModelSize, seed: int) -> Path:
    """A random tiny Qwen2 with the character tokenizer, saved to `out`."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if size.hidden // size.heads < 64:
        raise ValueError(f"head size {size.hidden // size.heads} is below 64; the CPU vLLM kernels reject it")
    tok = build_tokenizer()
    eos = tok.convert_tokens_to_ids(EOS)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=size.hidden, intermediate_size=size.intermediate,
                         num_hidden_layers=size.layers, num_attention_heads=size.heads,
                         num_key_value_heads=size.heads, max_position_embeddings=512, max_window_layers=size.layers,
                         tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
                         # transformers 5 takes rope_theta through **kwargs (into rope_parameters), untyped
                         rope_theta=10000.0)  # type: ignore[call-arg]
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    GenerationConfig(bos_token_id=eos, eos_token_id=[eos], pad_token_id=eos).save_pretrained(out)
    return out


def param_count(model_dir: Path | str) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    with __import__("torch").device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())


def pretrain(out: Path, corpus: Path, size: ModelSize, *, steps: int, seed: int, batch: int = 32,
             lr: float = 4e-3) -> dict[str, Any]:
    """Train a base model from scratch on the raw corpus with trl's SFTTrainer (language modelling)."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    marker = out / ".mini-base-complete"
    settings = {"size": asdict(size), "steps": steps, "seed": seed, "batch": batch, "lr": lr,
                "corpus": corpus.name}
    if marker.exists() and json.loads(marker.read_text()).get("settings") == settings:
        return json.loads(marker.read_text())
    init = out.parent / f"{out.name}-init"
    init_model(init, size, seed)
    tok = AutoTokenizer.from_pretrained(init)
    model = AutoModelForCausalLM.from_pretrained(init)
    ds = datasets.load_dataset("json", data_files=str(corpus), split="train")
    args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch, learning_rate=lr,
                     lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20), weight_decay=0.01,
                     max_length=96, logging_steps=max(1, steps // 10), save_strategy="no", report_to="none",
                     use_cpu=True, seed=seed, data_seed=seed, dataset_text_field="text",
                     gradient_checkpointing=False, disable_tqdm=True, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    result = trainer.train()
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    model.generation_config.save_pretrained(str(out))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    info = {"settings": settings, "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None, "train_seconds": result.metrics.get("train_runtime")}
    marker.write_text(json.dumps(info))
    return info
