"""transformers' `generate` as a backend: for `r1f eval` and generation with small models on the CPU, where
starting vLLM costs more than generating.

On a 2-core machine the vLLM CPU engine takes 30-70 s to start, longer than a tiny model needs to answer every
held-out problem; Mini-R1 (`r1f demo`) evaluates nine models, so it evaluates with this backend, while its
rejection sampling runs on vLLM. It speaks the same `Backend` protocol and renders prompts with the same
`backends.render`, so the factory's sampling loop, the judges and `r1f eval`'s scoring are the same code either way.
For large models or many samples, use `vllm`: this backend has no paged KV cache and no continuous batching.

In a recipe:

    backend:
      name: transformers
      model: ./models/tiny       # a saved model folder (or a Hub id in the local cache)
      max_model_len: 256         # optional: cap on prompt + completion (default: the model's context)
      dtype: float32             # optional: a torch dtype name, or auto (default float32, safe on the CPU)
      engine_kwargs: {batch_size: 64}   # optional: sequences per `generate` call (default 128)

Seeds: samples are generated in batches, and each batch is seeded from its requests' seeds, so the same
requests in the same order give the same samples. A sample's seed alone does not fix it, as it does on vLLM:
its batch company matters too.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.base import ChatRequest, Completion
from backends.render import render_request


class TransformersBackend:
    """Backend over `transformers.AutoModelForCausalLM.generate`.

    model: a saved model folder (or a Hub id in the cache); batch_size: sequences per `generate` call;
    max_model_len: cap on prompt plus completion tokens (default and upper bound: the model's context);
    dtype: a torch dtype name (`float32`, `bfloat16`, ...) or `auto` (default float32);
    chat_template_kwargs: for the chat template, with every request.
    Per-request options: `ChatRequest.extra["raw_prompt"]` and `extra["chat_template_kwargs"]`, as on vLLM.
    """

    name = "transformers"

    def __init__(self, model: str | Path, *, batch_size: int = 128, max_model_len: int | None = None,
                 dtype: str | None = None, chat_template_kwargs: dict[str, Any] | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = str(model)
        if self.model.startswith((".", "/", "~")) and not Path(self.model).expanduser().exists():
            raise FileNotFoundError(
                f"TransformersBackend: model path {self.model!r} does not exist; pass an existing model directory "
                "(with config.json and tokenizer files) or a Hub id."
            )
        if batch_size < 1:
            raise ValueError(f"TransformersBackend: batch_size={batch_size}; it must be at least 1.")
        if dtype in (None, "auto"):
            torch_dtype: Any = torch.float32 if dtype is None else "auto"
        else:
            torch_dtype = getattr(torch, dtype, None)
            if not isinstance(torch_dtype, torch.dtype):
                raise ValueError(f"TransformersBackend: dtype {dtype!r} is not a torch dtype; use float32, "
                                 "bfloat16, float16 or auto.")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Any: None once closed, and transformers types generate() with two selves (torch.no_grad on a method)
        self.lm: Any = AutoModelForCausalLM.from_pretrained(self.model, dtype=torch_dtype)
        self.lm.eval()  # trl's trainers leave gradient checkpointing on; generation needs eval mode
        self.batch_size = batch_size
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        context = int(self.lm.config.max_position_embeddings)
        self.max_model_len = min(context, max_model_len) if max_model_len else context

    def __repr__(self) -> str:
        return f"TransformersBackend(model={self.model!r}, max_model_len={self.max_model_len})"

    def generate(self, requests: list[ChatRequest],
                 on_result: Callable[[int, list[Completion]], None] | None = None) -> list[list[Completion]]:
        import torch

        jobs: list[tuple[int, str, ChatRequest, int]] = []
        for i, req in enumerate(requests):
            if req.json_schema is not None:
                raise ValueError(f"request {i} (key={req.key!r}): the transformers backend has no structured output "
                                 "(json_schema); use the vllm or openai backend for it (the LLM judge needs it).")
            seeds = req.seeds or [(req.seed or 0) + j for j in range(req.n)]
            text = render_request(self.tokenizer, req, self.chat_template_kwargs)
            jobs.extend((i, text, req, s) for s in seeds)
        results: list[list[Completion]] = [[] for _ in requests]
        # Same sampling settings batch together; within a batch, order is the request order.
        groups: dict[tuple, list[tuple[int, str, ChatRequest, int]]] = {}
        for job in jobs:
            r = job[2]
            groups.setdefault((r.temperature, r.top_p, r.max_tokens), []).append(job)
        eos = self.tokenizer.eos_token_id
        for (temperature, top_p, max_tokens), group in groups.items():
            for start in range(0, len(group), self.batch_size):
                batch = group[start:start + self.batch_size]
                digest = hashlib.sha256(",".join(str(j[3]) for j in batch).encode()).digest()
                torch.manual_seed(int.from_bytes(digest[:8], "little") % (2**63))
                enc = self.tokenizer([j[1] for j in batch], return_tensors="pt", padding=True,
                                     add_special_tokens=False)
                prompt_lengths = [int(n) for n in enc["attention_mask"].sum(dim=1).tolist()]
                for (owner, _, req, _), n in zip(batch, prompt_lengths):
                    if n >= self.max_model_len:
                        raise ValueError(
                            f"request {owner} (key={req.key!r}): the prompt has {n} tokens, at or over the "
                            f"backend's max_model_len={self.max_model_len}; shorten the prompt or raise max_model_len.")
                room = self.max_model_len - enc["input_ids"].shape[1]
                kwargs: dict[str, Any] = {"max_new_tokens": max(1, min(max_tokens, room)), "pad_token_id": eos,
                                          "eos_token_id": eos}
                if temperature > 0:
                    kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
                else:
                    kwargs.update(do_sample=False)
                with torch.no_grad():
                    out = self.lm.generate(**enc, **kwargs)
                new = out[:, enc["input_ids"].shape[1]:]
                for (owner, _, req, _), ids, prompt_tokens in zip(batch, new.tolist(), prompt_lengths):
                    finish = "length"
                    if eos in ids:
                        ids = ids[:ids.index(eos)]
                        finish = "stop"
                    decoded = self.tokenizer.decode(ids, skip_special_tokens=True)
                    assert isinstance(decoded, str)  # one sequence of ids: one text
                    text = decoded
                    for s in req.stop or []:
                        if s in text:
                            text, finish = text[:text.index(s)], "stop"
                    results[owner].append(Completion(text=text, finish_reason=finish,
                                                     prompt_tokens=prompt_tokens,
                                                     completion_tokens=len(ids)))
        if on_result is not None:
            for i, completions in enumerate(results):
                on_result(i, completions)
        return results

    def close(self) -> None:
        self.lm = None
