"""The one small interface every generation backend implements.

Judges (the LLM judge) and the factory's sampling loop both talk to models through it, so a
DeepSeek API, a served model and the in-process vLLM engine are interchangeable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from catalogs.errors import UserError


class BackendError(UserError, RuntimeError):
    """A backend gave up: the endpoint or engine kept failing, or rejected the request.

    The message names the endpoint and the last failure; it never contains an API key.
    """


@dataclass(frozen=True)
class ChatRequest:
    """One prompt to sample `n` completions for."""

    messages: list[dict[str, str]]
    n: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int | None = None
    stop: list[str] | None = None
    # JSON schema for structured output (the LLM judge uses it so verdicts always parse).
    json_schema: dict[str, Any] | None = None
    # Caller's key, echoed back so results can be matched to requests.
    key: str = ""
    # One seed per sample index; when given, len(seeds) == n and each sample uses its own seed.
    seeds: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    finish_reason: str | None = None
    # Reasoning returned separately by the server (DeepSeek's `reasoning_content`), if any.
    reasoning: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None


class Backend(Protocol):
    name: str

    def generate(self, requests: list[ChatRequest]) -> list[list[Completion]]:
        """Return, for each request in order, its `n` completions in sample-index order."""
        ...

    def close(self) -> None: ...
