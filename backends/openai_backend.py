"""Any OpenAI-compatible chat endpoint as a backend: DeepSeek's API, a served vLLM or SGLang.

Async over httpx, with a concurrency bound, request- and token-per-minute limits, and retries with
exponential backoff and jitter on 429, 5xx, timeouts, dropped connections and malformed bodies.
The API key is read from an environment variable whose name is configured; it is never logged,
never put in an exception and never shown by repr.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from backends import BackendError
from backends.base import ChatRequest, Completion

log = logging.getLogger("backends.openai")

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class _Secret:
    """Holds the API key; shows as *** however it is printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def get(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "***" if self._value else "<unset>"

    __str__ = __repr__


class _RateLimiter:
    """Token bucket refilled continuously at `per_minute`/60 per second, holding at most ten seconds'
    worth, so a burst cannot spend a whole minute's allowance at once (providers meter sub-minute too).

    It keeps its state outside any event loop, so successive `generate` calls (each with its own loop)
    share one budget. No await sits between the check and the take, so one loop's tasks cannot
    overdraw it.
    """

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError(f"rate limit must be positive, got {per_minute}; leave it unset for no limit.")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * 10.0)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self._mutex = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def acquire(self, cost: float) -> float:
        """Wait until `cost` is available, take it, and return what was charged."""
        cost = min(cost, self.capacity)  # a request larger than the bucket waits for a full bucket
        while True:
            with self._mutex:
                self._refill()
                if self.level >= cost:
                    self.level -= cost
                    return cost
                wait = (cost - self.level) / self.rate
            await asyncio.sleep(min(wait, 5.0))

    def adjust(self, delta: float) -> None:
        """Give back (positive) or charge more (negative) once the true cost is known."""
        with self._mutex:
            self._refill()
            self.level = min(self.capacity, self.level + delta)


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class _LoopState:
    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    semaphore: asyncio.Semaphore


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class OpenAIBackend:
    """Backend for an OpenAI-compatible `/chat/completions` endpoint.

    base_url: the API root, ending in /v1 for vLLM and OpenAI (e.g. http://127.0.0.1:8000/v1,
      https://api.deepseek.com).
    model: the model name the server serves (`deepseek-reasoner`, or vLLM's --served-model-name).
    api_key_env: NAME of the environment variable holding the key (read at construction). Unset is
      fine for a local server without auth.
    max_concurrency: requests in flight at once.
    requests_per_minute / tokens_per_minute: client-side limits (None: none). Tokens are estimated
      before sending (prompt chars / 4 + max_tokens * n) and corrected from `usage` afterwards.
    timeout_s: per-attempt read timeout; a slower response counts as a failure and is retried.
    max_retries: retries per HTTP request after the first attempt; then `BackendError`.
    split_n: send n requests with n=1 instead of one with n (for servers that ignore `n`, e.g. DeepSeek).
    probe: check at construction that `GET {base_url}/models` answers and serves `model`.
    extra_body: fields merged into every request body (e.g. vLLM's `top_k`); a request's
      `extra["body"]` is merged after it.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 32,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        split_n: bool = False,
        probe: bool = True,
        probe_timeout_s: float = 10.0,
        extra_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"OpenAIBackend: base_url {base_url!r} is not an http(s) URL; give the API root, e.g. "
                "http://127.0.0.1:8000/v1 or https://api.deepseek.com."
            )
        if max_concurrency < 1:
            raise ValueError(f"OpenAIBackend: max_concurrency={max_concurrency}; it must be at least 1.")
        if max_retries < 0:
            raise ValueError(f"OpenAIBackend: max_retries={max_retries}; it must be 0 or more.")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self._key = _Secret(os.environ.get(api_key_env) or None)
        self.max_concurrency = max_concurrency
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.split_n = split_n
        self.extra_body = dict(extra_body or {})
        self._extra_headers = dict(headers or {})
        self._rpm = _RateLimiter(requests_per_minute) if requests_per_minute else None
        self._tpm = _RateLimiter(tokens_per_minute) if tokens_per_minute else None
        # One HTTP client per event loop (httpx clients are bound to the loop they run on).
        self._states: dict[int, _LoopState] = {}
        # Count of HTTP attempts that failed and were retried (for tests, logs and progress).
        self.retries = 0
        if probe:
            self._probe(probe_timeout_s)

    def __repr__(self) -> str:
        return (f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r}, key={self._key!r})")

    # -- plumbing -------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", **self._extra_headers}
        key = self._key.get()
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _scrub(self, text: str) -> str:
        key = self._key.get()
        return text.replace(key, "***") if key else text

    def _probe(self, timeout_s: float) -> None:
        url = f"{self.base_url}/models"
        how = ("check that the server is running and that base_url is the API root (vLLM: "
               "http://HOST:PORT/v1), or pass probe=False to skip this check")
        try:
            r = httpx.get(url, headers=self._headers(), timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise BackendError(
                f"cannot reach the OpenAI-compatible endpoint {url}: {self._scrub(type(exc).__name__ + ': ' + str(exc))}; {how}."
            ) from None
        if r.status_code in (401, 403):
            state = "is set" if self._key.get() else "is NOT set"
            raise BackendError(
                f"{url} refused the API key (HTTP {r.status_code}); the key comes from the environment variable "
                f"{self.api_key_env}, which {state}. Set it to a valid key, or set api_key_env to the right name."
            )
        if r.status_code == 404:
            raise BackendError(f"{url} answered 404; base_url looks wrong (missing /v1?); {how}.")
        if r.status_code >= 400:
            raise BackendError(f"{url} answered HTTP {r.status_code}: {self._scrub(r.text[:300])}; {how}.")
        try:
            served = [m.get("id") for m in r.json().get("data", [])]
        except (ValueError, AttributeError):
            return  # not every compatible server lists models; the first request will tell
        if served and self.model not in served:
            raise BackendError(
                f"{self.base_url} does not serve model {self.model!r}; it serves {served[:20]}. "
                "Set model to one of those."
            )

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(id(loop))
        if state is None or state.loop is not loop:
            limits = httpx.Limits(max_connections=self.max_concurrency,
                                  max_keepalive_connections=self.max_concurrency)
            client = httpx.AsyncClient(timeout=self.timeout, limits=limits)
            state = self._states[id(loop)] = _LoopState(loop, client, asyncio.Semaphore(self.max_concurrency))
        return state

    def _body(self, req: ChatRequest, n: int, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": req.messages,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
        }
        if n != 1:
            body["n"] = n
        if seed is not None:
            body["seed"] = seed
        if req.stop:
            body["stop"] = list(req.stop)
        if req.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": req.json_schema, "strict": True},
            }
        body.update(self.extra_body)
        body.update(req.extra.get("body") or {})
        return body

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # Full jitter on an exponential ceiling, so many clients that failed together spread out.
        delay = random.uniform(0.5, 1.0) * min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max_s))
        return delay

    @staticmethod
    def _parse(data: Any, n: int) -> tuple[list[Completion], int | None, int | None]:
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise _Retryable("malformed response body: no `choices` list")
        usage = data.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        total_completion = usage.get("completion_tokens")
        out = []
        for ch in sorted(data["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
            msg = ch.get("message") if isinstance(ch, dict) else None
            if not isinstance(msg, dict):
                raise _Retryable("malformed response body: a choice has no `message` object")
            reasoning = msg.get("reasoning_content")
            if reasoning is None:
                reasoning = msg.get("reasoning")  # vLLM's name for it
            out.append(Completion(
                text=msg.get("content") or "",
                finish_reason=ch.get("finish_reason"),
                reasoning=reasoning,
                prompt_tokens=prompt_tokens,
                # usage counts all choices together; per choice it is exact only for n == 1.
                completion_tokens=total_completion if len(data["choices"]) == 1 else None,
            ))
        if len(out) != n:
            raise _Retryable(f"malformed response body: asked for n={n} choices, got {len(out)}")
        return out, prompt_tokens, total_completion

    async def _post(self, req: ChatRequest, n: int, seed: int | None, index: int) -> list[Completion]:
        state = self._loop_state()
        url = f"{self.base_url}/chat/completions"
        body = self._body(req, n, seed)
        payload = json.dumps(body).encode()
        estimate = sum(len(str(m.get("content", ""))) for m in req.messages) / 4 + req.max_tokens * n
        start = time.perf_counter()
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries += 1
            if self._rpm:
                await self._rpm.acquire(1)
            charged = await self._tpm.acquire(estimate) if self._tpm else 0.0
            try:
                async with state.semaphore:
                    r = await state.client.post(url, content=payload, headers=self._headers())
                    if r.status_code == 200:
                        try:
                            data = r.json()
                        except ValueError:
                            raise _Retryable("malformed response body: not JSON") from None
                        comps, p_tok, c_tok = self._parse(data, n)
                        if self._tpm and p_tok is not None and c_tok is not None:
                            self._tpm.adjust(charged - (p_tok + c_tok))
                        latency = time.perf_counter() - start
                        for c in comps:
                            c.latency_s = latency
                        return comps
                    if r.status_code in RETRYABLE_STATUS or r.status_code >= 500:
                        raise _Retryable(f"HTTP {r.status_code}: {r.text[:200]}",
                                         _parse_retry_after(r.headers.get("retry-after")))
                    raise BackendError(
                        f"{url} rejected request {index} (key={req.key!r}) with HTTP {r.status_code}: "
                        f"{self._scrub(r.text[:500])}. This is not retried; fix the request or the recipe."
                    )
            except _Retryable as exc:
                last, retry_after = exc.reason, exc.retry_after
            except httpx.TimeoutException as exc:
                last, retry_after = f"timeout ({type(exc).__name__}) after {self.timeout.read} s read timeout", None
            except httpx.TransportError as exc:
                last, retry_after = f"connection failure ({type(exc).__name__}: {exc})", None
            last = self._scrub(last)
            if attempt < self.max_retries:
                delay = self._backoff(attempt, retry_after)
                log.warning("%s: request %d (key=%r) attempt %d/%d failed: %s; retrying in %.2f s",
                            url, index, req.key, attempt + 1, self.max_retries + 1, last, delay)
                await asyncio.sleep(delay)
        raise BackendError(
            f"{url}: request {index} (key={req.key!r}) failed {self.max_retries + 1} times; last failure: "
            f"{last}. The endpoint keeps failing: check the server, or raise max_retries / timeout_s."
        )

    async def _one(self, req: ChatRequest, index: int) -> list[Completion]:
        if req.n < 1:
            raise ValueError(f"request {index} (key={req.key!r}): n={req.n}; n must be at least 1.")
        if req.seeds is not None:
            if len(req.seeds) != req.n:
                raise ValueError(f"request {index} (key={req.key!r}): len(seeds)={len(req.seeds)} but "
                                 f"n={req.n}; give one seed per sample index.")
            parts = await asyncio.gather(*(self._post(req, 1, s, index) for s in req.seeds))
        elif self.split_n and req.n > 1:
            seeds = [None if req.seed is None else req.seed + k for k in range(req.n)]
            parts = await asyncio.gather(*(self._post(req, 1, s, index) for s in seeds))
        else:
            parts = [await self._post(req, req.n, req.seed, index)]
        return [c for part in parts for c in part]

    # -- public ---------------------------------------------------------------------------------
    async def agenerate(
        self,
        requests: list[ChatRequest],
        on_result: Callable[[int, list[Completion]], None] | None = None,
    ) -> list[list[Completion]]:
        """Async form of `generate`. `on_result(index, completions)` is called as each request finishes,
        so a caller can commit work done before a later request fails."""
        async def one(i: int, req: ChatRequest) -> list[Completion]:
            comps = await self._one(req, i)
            if on_result is not None:
                on_result(i, comps)
            return comps

        tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(requests)]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            # One request gave up: stop the others rather than leave them running unobserved.
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def generate(
        self,
        requests: list[ChatRequest],
        on_result: Callable[[int, list[Completion]], None] | None = None,
    ) -> list[list[Completion]]:
        """Return, for each request in order, its `n` completions in sample-index order."""

        async def run() -> list[list[Completion]]:
            try:
                return await self.agenerate(requests, on_result)
            finally:
                await self.aclose()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run())
        # Called from inside a running loop (a notebook, an async app): run in a thread of our own.
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = asyncio.run(run())
            except BaseException as exc:  # noqa: BLE001  re-raised in the caller's thread
                box["error"] = exc

        th = threading.Thread(target=target, name="openai-backend")
        th.start()
        th.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    async def aclose(self) -> None:
        """Close the HTTP client of the current event loop."""
        state = self._states.pop(id(asyncio.get_running_loop()), None)
        if state is not None:
            await state.client.aclose()

    def close(self) -> None:
        """Close clients whose loops can still run them; clients of finished loops are just dropped."""
        states, self._states = list(self._states.values()), {}
        for state in states:
            if not state.loop.is_closed() and not state.loop.is_running():
                state.loop.run_until_complete(state.client.aclose())
