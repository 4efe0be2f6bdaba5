"""The Mini-R1 base models: a character-level tokenizer and tiny Qwen2 models trained from scratch.

The tokenizer is byte-level BPE with no merges (one token per ASCII character), plus a few whole tokens
for the tags every trace uses, so a trace stays short. It is built with `tokenizers` and saved as a
`PreTrainedTokenizerFast`, which transformers and vLLM's CPU build both load. The tags are ordinary
added tokens, not special ones, so decoding keeps them. Its chat template is a plain `User:/Assistant:`
dialogue with `{% generation %}` markers, so trl's SFT can put the loss on the assistant turn only.

Pretraining is trl's SFTTrainer on raw text (a language-modelling dataset, no chat format). The demo trains its
two bases at once, the student in a spawned process beside the base (`pretrain_apart`): each on one torch thread
with its own seeds, so each model's bytes are those of training it alone, in half the wall time on two cores.
"""
from __future__ import annotations

import json
import logging
import os
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1f.mini.world import EOS

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from pipelines.recipe import TorchSettings

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
MARKER = ".mini-base-complete"  # in a pretrained base's folder: its settings and losses


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


def pretrain_settings(corpus: Path, size: ModelSize, *, steps: int, seed: int, batch: int = 32,
                      lr: float = 4e-3) -> dict[str, Any]:
    """What makes a pretrained base (its marker records them; a base made with other settings is made again)."""
    return {"size": asdict(size), "steps": steps, "seed": seed, "batch": batch, "lr": lr, "corpus": corpus.name}


def pretrain(out: Path, corpus: Path, size: ModelSize, *, steps: int, seed: int, batch: int = 32,
             lr: float = 4e-3) -> dict[str, Any]:
    """Train a base model from scratch on the raw corpus with trl's SFTTrainer (language modelling); a base these
    settings made already is reused (its record returned)."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    marker = out / MARKER
    settings = pretrain_settings(corpus, size, steps=steps, seed=seed, batch=batch, lr=lr)
    if (done := pretrained(out, settings)) is not None:
        return done
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


def pretrained(out: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the base in `out` if these pretraining settings made it, else None."""
    marker = out / MARKER
    if marker.exists() and (info := json.loads(marker.read_text())).get("settings") == settings:
        return dict(info)
    return None


@dataclass
class Pretraining:
    """A base pretraining in a spawned process (`pretrain_apart`): `result()` waits for its record."""

    out: Path
    log: Path
    info: dict[str, Any] | None = None   # set at once where the base was made already
    process: BaseProcess | None = field(default=None, repr=False)
    conn: Connection | None = field(default=None, repr=False)

    def result(self) -> dict[str, Any]:
        """pretrain()'s record, once the process has finished; raises if it failed, naming its log."""
        if self.info is not None:
            return self.info
        assert self.process is not None and self.conn is not None
        try:
            status, value = self.conn.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            status, value = "error", f"the process exited with code {self.process.exitcode}"
        self.process.join()
        self.conn.close()
        if status != "ok":
            raise RuntimeError(f"pretraining {self.out} in a second process failed (its log: {self.log}):\n{value}")
        self.info = value
        return value

    def stop(self) -> None:
        """End the process if it still runs (the demo failed beside it)."""
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join()


def pretrain_apart(out: Path, corpus: Path, size: ModelSize, torch_settings: TorchSettings, *, steps: int,
                   seed: int) -> Pretraining:
    """`pretrain` in a spawned process with `torch_settings` (the same thread count and deterministic algorithms as
    this process), its output in OUT.log beside the model folder; returns at once. Nothing is shared with this
    process but the corpus file, so the model is the one `pretrain` makes here, byte for byte."""
    import multiprocessing as mp

    from catalogs.stage import main_not_rerun

    log = out.parent / f"{out.name}.log"
    if (done := pretrained(out, pretrain_settings(corpus, size, steps=steps, seed=seed))) is not None:
        return Pretraining(out, log, info=done)
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")  # fork beside torch's threads is not safe
    ours, theirs = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_pretrain_child, args=(theirs, log, torch_settings, out, corpus, size, steps, seed),
                          name=f"pretrain-{out.name}", daemon=True)
    with main_not_rerun():  # the child must not run the caller's script again (it may lack the __main__ guard)
        process.start()
    theirs.close()  # the child's end: recv() then sees EOF if the child dies
    return Pretraining(out, log, process=process, conn=ours)


def _pretrain_child(conn: Connection, log: Path, torch_settings: TorchSettings, out: Path, corpus: Path,
                    size: ModelSize, steps: int, seed: int) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)  # the trainer's log lines go to the log, not between the parent's
    os.dup2(fd, 2)
    try:
        from pipelines.run import set_torch

        set_torch(torch_settings)
        conn.send(("ok", pretrain(out, corpus, size, steps=steps, seed=seed)))
    except BaseException:  # noqa: BLE001 - whatever it was goes back to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
