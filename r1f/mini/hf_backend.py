"""A `Backend` over transformers' `generate`, for Mini-R1's evaluation and cold-start collection.

Why not vLLM everywhere: on a 2-core machine the vLLM CPU engine takes 30-70 s to start, longer than a
tiny model needs to answer every held-out problem. Mini-R1 evaluates nine models, so the engine start
alone would break the 15-minute budget; the factory's rejection sampling (stage 6) still runs on vLLM.
It speaks the same protocol, so the factory's sampling loop, the judges and `r1f eval`'s scoring are the
same code either way.

Seeds: samples are generated in batches, and each batch is seeded from its requests' seeds, so the same
requests in the same order give the same samples.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.base import ChatRequest, Completion


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str | Path, *, batch_size: int = 128) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = str(model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Any: None once closed, and transformers types generate() with two selves (torch.no_grad on a method)
        self.lm: Any = AutoModelForCausalLM.from_pretrained(self.model, dtype=torch.float32)
        self.lm.eval()  # trl's trainers leave gradient checkpointing on; generation needs eval mode
        self.batch_size = batch_size
        self.max_model_len = int(self.lm.config.max_position_embeddings)

    def _prompt(self, req: ChatRequest) -> str:
        raw = req.extra.get("raw_prompt")
        if raw is not None:
            return str(raw)
        text = self.tokenizer.apply_chat_template(req.messages, add_generation_prompt=True, tokenize=False)
        assert isinstance(text, str)  # tokenize=False: text, not ids
        return text

    def generate(self, requests: list[ChatRequest],
                 on_result: Callable[[int, list[Completion]], None] | None = None) -> list[list[Completion]]:
        import torch

        jobs: list[tuple[int, str, ChatRequest, int]] = []
        for i, req in enumerate(requests):
            seeds = req.seeds or [(req.seed or 0) + j for j in range(req.n)]
            text = self._prompt(req)
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
                for (owner, _, req, _), ids in zip(batch, new.tolist()):
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
                                                     prompt_tokens=int(enc["attention_mask"][0].sum()),
                                                     completion_tokens=len(ids)))
        if on_result is not None:
            for i, completions in enumerate(results):
                on_result(i, completions)
        return results

    def close(self) -> None:
        self.lm = None
