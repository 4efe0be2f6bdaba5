"""The one prompt renderer: the text a model is given for a request, and its tokens.

Every in-process engine (vLLM, transformers) renders through it, and so does the factory's length check before a
run, so the check counts exactly the tokens the engine receives:

- `extra["raw_prompt"]`: a finished prompt for a base model (the R1-Zero template), sent as is, no chat template;
- otherwise the tokenizer's chat template over the messages, with the generation prompt appended and
  `chat_template_kwargs` passed to the template (e.g. Qwen3's `enable_thinking`);
- tokenised without special tokens: the chat template already holds any BOS the model needs.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from backends.base import ChatRequest


def render_prompt(tokenizer: Any, messages: list[dict[str, str]], *, raw_prompt: str | None = None,
                  chat_template_kwargs: Mapping[str, Any] | None = None) -> str:
    """The prompt text: `raw_prompt` as is, else the chat template over `messages`."""
    if raw_prompt is not None:
        return raw_prompt
    # vLLM's tokenizer types messages as OpenAI's TypedDicts; ours are plain dicts with the same keys.
    text = tokenizer.apply_chat_template(cast("list[Any]", messages), add_generation_prompt=True, tokenize=False,
                                         **dict(chat_template_kwargs or {}))
    assert isinstance(text, str)  # tokenize=False: text, not ids
    return text


def request_template_kwargs(req: ChatRequest, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The chat template's keyword arguments for a request: the backend's (from the recipe's
    `backend.chat_template_kwargs`), overridden key by key by the request's `extra["chat_template_kwargs"]`."""
    return {**(defaults or {}), **(req.extra.get("chat_template_kwargs") or {})}


def render_request(tokenizer: Any, req: ChatRequest, defaults: Mapping[str, Any] | None = None) -> str:
    """The prompt text of a request, as every in-process backend sends it to its model."""
    raw = req.extra.get("raw_prompt")
    return render_prompt(tokenizer, req.messages, raw_prompt=None if raw is None else str(raw),
                         chat_template_kwargs=request_template_kwargs(req, defaults))


def prompt_token_ids(tokenizer: Any, text: str) -> list[int]:
    """The ids of a rendered prompt, tokenised as the engines tokenise it (no special tokens added)."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def count_prompt_tokens(tokenizer: Any, messages: list[dict[str, str]], raw_prompt: str | None = None,
                        chat_template_kwargs: Mapping[str, Any] | None = None) -> int:
    """Tokens of the prompt a model receives. A tokenizer without a chat template (an endpoint's model, whose
    template is the server's and unknown here) counts the messages' text: a lower bound, still worth checking."""
    if raw_prompt is None and not getattr(tokenizer, "chat_template", None):
        return len(prompt_token_ids(tokenizer, "\n".join(m["content"] for m in messages)))
    text = render_prompt(tokenizer, messages, raw_prompt=raw_prompt, chat_template_kwargs=chat_template_kwargs)
    return len(prompt_token_ids(tokenizer, text))
