"""Any OpenAI-compatible chat endpoint as a backend: DeepSeek's API, a served vLLM or SGLang.

Transport and retries are the official `openai.AsyncOpenAI` client's: it retries 408, 409, 429, 5xx,
timeouts and dropped or cut-off connections with exponential backoff and jitter, and honours
`Retry-After`. Around it we keep what the client does not do: a concurrency bound, request- and
token-per-minute limits charged on every attempt (its retries included), a per-result callback,
DeepSeek's `reasoning_content`, retries of malformed 200 bodies, and errors that name the endpoint
and the fix. The API key is read from an environment variable whose name is configured; it is never
logged, never put in an exception and never shown by repr.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from backends.base import BackendError, ChatRequest, Completion
from backends.render import request_template_kwargs
from catalogs.retry import retry_async

log = logging.getLogger("backends.openai")

# The statuses the official client retries by itself (see its `_should_retry`); any other 4xx is final.
RETRYABLE_STATUS = frozenset({408, 409, 429})


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


class _Malformed(Exception):
    """A 200 whose body is not a chat completion we can use."""


class _TryAnother(Exception):
    """An attempt on one of several endpoints failed in a way worth another try, on whichever endpoint is up."""


class _Unreachable(BackendError):
    """The endpoint did not answer at all (nothing listens, or the network is down)."""


@dataclass
class _Call:
    """One logical request (all its attempts). The HTTP client's event hooks find it through `_CALL`,
    because the official client retries inside one `create` call where we cannot see the attempts."""

    index: int
    key: str
    estimate: float  # tokens charged to the token bucket per attempt
    charged: float = 0.0
    attempts: int = 0
    last: str | None = None  # what went wrong with the previous attempt, when the hooks saw it
    url: str | None = None  # the endpoint of the current attempt, when there are several


@dataclass
class _Endpoint:
    """One of several replicas: its health, shared by every call and event loop of the backend.

    After a failure an endpoint rests for a backoff that doubles with each failure in a row (0.5 s up to 30 s,
    with jitter, or the server's Retry-After); the first success makes it healthy again. A rested endpoint is
    tried again by the next request that picks it, so a replica that comes back is used again."""

    url: str
    failures: int = 0
    down_until: float = 0.0
    in_flight: int = 0
    served: int = 0
    failed: int = 0
    max_backoff_s: float = 30.0
    last_error: str | None = field(default=None, repr=False)

    def up(self, now: float) -> bool:
        return self.down_until <= now

    def ok(self) -> None:
        self.failures, self.down_until = 0, 0.0
        self.served += 1

    def fail(self, why: str, retry_after: float | None = None) -> float:
        self.failures += 1
        self.failed += 1
        self.last_error = why
        # Hand-written, not catalogs.retry: this rest belongs to the endpoint and is shared by every call that
        # might pick it, while a retry policy's waits belong to one call's tries.
        rest = min(self.max_backoff_s, 0.5 * 2 ** (self.failures - 1)) * random.uniform(0.75, 1.0)
        if retry_after is not None:
            rest = min(max(rest, retry_after), 120.0)
        self.down_until = time.monotonic() + rest
        return rest


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("openai_backend_call", default=None)
# Set by `agenerate` when one of its requests gives up: requests not yet sent are not sent.
_STOP: contextvars.ContextVar[asyncio.Event | None] = contextvars.ContextVar("openai_backend_stop", default=None)


class _NotSent(Exception):
    """A request left unsent because another request of the same call gave up."""


@contextlib.asynccontextmanager
async def _slot(semaphore: asyncio.Semaphore) -> AsyncIterator[None]:
    """A concurrency slot for one request. Once a request of the same call has given up, no new request is
    sent; a request that gives up says so before its slot goes to the next one."""
    async with semaphore:
        stop = _STOP.get()
        if stop is not None and stop.is_set():
            raise _NotSent
        try:
            yield
        except (_NotSent, asyncio.CancelledError):
            raise
        except BaseException:
            if stop is not None:
                stop.set()
            raise


@dataclass
class _LoopState:
    loop: asyncio.AbstractEventLoop
    client: openai.AsyncOpenAI
    semaphore: asyncio.Semaphore
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)  # one per endpoint, when there are several


class OpenAIBackend:
    """Backend for an OpenAI-compatible `/chat/completions` endpoint.

    base_url: the API root, ending in /v1 for vLLM and OpenAI (e.g. http://127.0.0.1:8000/v1,
      https://api.deepseek.com). Or a list of them, replicas serving the same model: each request goes to the
      healthy one with the fewest requests in flight; a failed attempt (connection, timeout, 429, 5xx, a
      malformed body) rests that endpoint with a doubling backoff and moves the request to another, within
      max_retries + 1 attempts in all. A replica that cannot be reached at construction starts resting.
    model: the model name the server serves (`deepseek-reasoner`, or vLLM's --served-model-name).
    api_key_env: NAME of the environment variable holding the key (read at construction). Unset is
      fine for a local server without auth.
    max_concurrency: requests in flight at once.
    requests_per_minute / tokens_per_minute: client-side limits (None: none), charged on every attempt.
      Tokens are estimated before sending (prompt chars / 4 + max_tokens * n) and corrected from
      `usage` afterwards.
    timeout_s: per-attempt read timeout; a slower response counts as a failure and is retried.
    max_retries: retries per HTTP request after the first attempt; then `BackendError`. The official
      client's backoff applies (0.5 s doubling to 8 s, with jitter; a Retry-After of up to 2 min wins).
    split_n: send n requests with n=1 instead of one with n (for servers that ignore `n`, e.g. DeepSeek).
    probe: check at construction that `GET {base_url}/models` answers and serves `model`.
    extra_body: fields merged into every request body (e.g. vLLM's `top_k`); a request's
      `extra["body"]` is merged after it.
    chat_template_kwargs: sent with every request as the body's `chat_template_kwargs` (vLLM's and SGLang's
      servers pass them to the chat template), a request's `extra["chat_template_kwargs"]` merged over them.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 32,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 6,
        split_n: bool = False,
        probe: bool = True,
        probe_timeout_s: float = 10.0,
        extra_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("OpenAIBackend: base_url is an empty list; give at least one API root.")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(
                    f"OpenAIBackend: base_url {url!r} is not an http(s) URL; give the API root, e.g. "
                    "http://127.0.0.1:8000/v1 or https://api.deepseek.com."
                )
        if max_concurrency < 1:
            raise ValueError(f"OpenAIBackend: max_concurrency={max_concurrency}; it must be at least 1.")
        if max_retries < 0:
            raise ValueError(f"OpenAIBackend: max_retries={max_retries}; it must be 0 or more.")
        self.base_urls = [u.rstrip("/") for u in urls]
        self.base_url = self.base_urls[0]
        self.endpoints = [_Endpoint(u) for u in self.base_urls] if len(urls) > 1 else []
        self.model = model
        self.api_key_env = api_key_env
        self._key = _Secret(os.environ.get(api_key_env) or None)
        self.max_concurrency = max_concurrency
        # No pool timeout: the semaphore already keeps requests from queueing on the pool.
        self.timeout = openai.Timeout(timeout_s, connect=connect_timeout_s, pool=None)
        self.max_retries = max_retries
        self.split_n = split_n
        self.extra_body = dict(extra_body or {})
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._extra_headers = dict(headers or {})
        self._rpm = _RateLimiter(requests_per_minute) if requests_per_minute else None
        self._tpm = _RateLimiter(tokens_per_minute) if tokens_per_minute else None
        # One client per event loop (its connection pool is bound to the loop it runs on).
        self._states: dict[int, _LoopState] = {}
        # Count of HTTP attempts that failed and were retried (for tests, logs and progress).
        self.retries = 0
        if probe:
            self._probe_all(probe_timeout_s)

    def __repr__(self) -> str:
        shown = self.base_url if not self.endpoints else self.base_urls
        return (f"OpenAIBackend(base_url={shown!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r}, key={self._key!r})")

    # -- plumbing -------------------------------------------------------------------------------
    def _client_kwargs(self, base_url: str | None = None) -> dict[str, Any]:
        # The client insists on a key. Without one we give it a placeholder and omit the
        # Authorization header per request (`_auth_override`), so a keyless server sees no bogus key.
        return {"api_key": self._key.get() or "unset", "base_url": base_url or self.base_url,
                "default_headers": self._extra_headers}

    def _auth_override(self) -> dict[str, Any] | None:
        return None if self._key.get() else {"Authorization": openai.omit}

    def _scrub(self, text: str) -> str:
        key = self._key.get()
        return text.replace(key, "***") if key else text

    def _probe_all(self, timeout_s: float) -> None:
        """Probe the endpoint; of several, each: a wrong URL, key or model is an error, but a replica that
        cannot be reached only starts resting, as long as one answers."""
        if not self.endpoints:
            self._probe(timeout_s)
            return
        unreachable = []
        for ep in self.endpoints:
            try:
                self._probe(timeout_s, ep.url)
            except _Unreachable as exc:
                unreachable.append(str(exc))
                ep.fail(str(exc))
                log.warning("%s; it rests and is tried again later", exc)
        if len(unreachable) == len(self.endpoints):
            raise BackendError(f"none of the {len(self.endpoints)} endpoints answers: " + " | ".join(unreachable))

    def _probe(self, timeout_s: float, base_url: str | None = None) -> None:
        base_url = base_url or self.base_url
        url = f"{base_url}/models"
        how = ("check that the server is running and that base_url is the API root (vLLM: "
               "http://HOST:PORT/v1), or pass probe=False to skip this check")
        client = openai.OpenAI(**self._client_kwargs(base_url), max_retries=0, timeout=timeout_s)
        try:
            raw = client.models.with_raw_response.list(extra_headers=self._auth_override())
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status in (401, 403):
                state = "is set" if self._key.get() else "is NOT set"
                raise BackendError(
                    f"{url} refused the API key (HTTP {status}); the key comes from the environment variable "
                    f"{self.api_key_env}, which {state}. Set it to a valid key, or set api_key_env to the right name."
                ) from None
            if status == 404:
                raise BackendError(f"{url} answered 404; base_url looks wrong (missing /v1?); {how}.") from None
            raise BackendError(
                f"{url} answered HTTP {status}: {self._scrub(exc.response.text[:300])}; {how}.") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise _Unreachable(
                f"cannot reach the OpenAI-compatible endpoint {url}: "
                f"{self._scrub(type(cause).__name__ + ': ' + str(cause))}; {how}."
            ) from None
        finally:
            client.close()
        try:
            served = [m.get("id") for m in raw.http_response.json().get("data", [])]
        except (ValueError, AttributeError):
            return  # not every compatible server lists models; the first request will tell
        if served and self.model not in served:
            raise BackendError(
                f"{base_url} does not serve model {self.model!r}; it serves {served[:20]}. "
                "Set model to one of those."
            )

    async def _on_request(self, request: Any) -> None:
        """Runs before every HTTP attempt, the client's own retries included: counts and logs
        retries, and charges the rate limits, so a retry storm cannot exceed them."""
        call = _CALL.get()
        if call is None:
            return
        call.attempts += 1
        if call.attempts > 1:
            self.retries += 1
            why = call.last or "no response (timeout, dropped connection or cut-off body)"
            log.warning("%s/chat/completions: request %d (key=%r) attempt %d/%d failed: %s; retrying",
                        call.url or self.base_url, call.index, call.key, call.attempts - 1, self.max_retries + 1,
                        self._scrub(why))
        call.last = None
        if self._rpm:
            await self._rpm.acquire(1)
        if self._tpm:
            call.charged = await self._tpm.acquire(call.estimate)

    async def _on_response(self, response: Any) -> None:
        # Runs once the headers are in, before the body is read; the body of an error is not ours
        # to read here, so the status is all a retry log line gets.
        call = _CALL.get()
        if call is not None:
            status = response.status_code
            call.last = f"HTTP {status}" if status >= 400 else f"HTTP {status}, but the body did not arrive whole"

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(id(loop))
        if state is None or state.loop is not loop:
            # The Limits class of whichever HTTP library this openai release speaks (httpx2 today).
            limits = type(openai.DEFAULT_CONNECTION_LIMITS)(
                max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
            http = openai.DefaultAsyncHttpxClient(
                timeout=self.timeout, limits=limits,
                event_hooks={"request": [self._on_request], "response": [self._on_response]})
            client = openai.AsyncOpenAI(**self._client_kwargs(), timeout=self.timeout,
                                        max_retries=self.max_retries, http_client=http)
            # Several endpoints: one client each, retrying nothing by itself; `_post_balanced` moves a failed
            # attempt to another endpoint instead of retrying a sick one.
            clients = [client.with_options(base_url=ep.url, max_retries=0) for ep in self.endpoints]
            state = self._states[id(loop)] = _LoopState(loop, client, asyncio.Semaphore(self.max_concurrency),
                                                        clients)
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
        template_kwargs = request_template_kwargs(req, self.chat_template_kwargs)
        if template_kwargs:  # the server renders the prompt: vLLM and SGLang take these beside the messages
            body["chat_template_kwargs"] = template_kwargs
        if req.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": req.json_schema, "strict": True},
            }
        body.update(self.extra_body)
        body.update(req.extra.get("body") or {})
        return body

    @staticmethod
    def _parse(data: Any, n: int) -> tuple[list[Completion], int | None, int | None]:
        # Read from the JSON ourselves rather than the client's pydantic models: those build without
        # validation, so a malformed body would pass silently, and vLLM's `reasoning` and DeepSeek's
        # `reasoning_content` are not fields of theirs.
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise _Malformed("malformed response body: no `choices` list")
        usage = data.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        total_completion = usage.get("completion_tokens")
        out = []
        for ch in sorted(data["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
            msg = ch.get("message") if isinstance(ch, dict) else None
            if not isinstance(msg, dict):
                raise _Malformed("malformed response body: a choice has no `message` object")
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
            raise _Malformed(f"malformed response body: asked for n={n} choices, got {len(out)}")
        return out, prompt_tokens, total_completion

    def _gave_up(self, url: str, req: ChatRequest, index: int, attempts: int, last: str) -> BackendError:
        return BackendError(
            f"{url}: request {index} (key={req.key!r}) failed {attempts} times; last failure: "
            f"{self._scrub(last)}. The endpoint keeps failing: check the server, or raise max_retries / timeout_s."
        )

    def _request(self, req: ChatRequest, n: int, seed: int | None, index: int
                 ) -> tuple[Any, Any, dict[str, Any], _Call]:
        """What one attempt sends (model, messages, the rest of the body) and its record for the rate limits."""
        body = self._body(req, n, seed)
        model, messages = body.pop("model"), body.pop("messages")
        estimate = sum(len(str(m.get("content", ""))) for m in req.messages) / 4 + req.max_tokens * n
        return model, messages, body, _Call(index=index, key=req.key, estimate=estimate)

    def _done(self, call: _Call, comps: list[Completion], p_tok: int | None, c_tok: int | None,
              start: float) -> list[Completion]:
        """Settle the token budget with what the request really used, and stamp each completion's latency."""
        if self._tpm and p_tok is not None and c_tok is not None:
            self._tpm.adjust(call.charged - (p_tok + c_tok))
        latency = time.perf_counter() - start
        for c in comps:
            c.latency_s = latency
        return comps

    def _failure(self, exc: BaseException, url: str, req: ChatRequest, index: int) -> tuple[str, float | None]:
        """What went wrong with one attempt, and the server's Retry-After (seconds) if it sent one: the one
        reading of an attempt's error. A status no client retries (a 4xx but 408, 409, 429) is final: a
        BackendError. An error that is not an attempt's failure is raised as it was."""
        if isinstance(exc, openai.APIStatusError):
            status, text = exc.status_code, exc.response.text
            if not (status in RETRYABLE_STATUS or status >= 500):
                raise BackendError(
                    f"{url} rejected request {index} (key={req.key!r}) with HTTP {status}: "
                    f"{self._scrub(text[:500])}. This is not retried; fix the request or the recipe."
                ) from None
            try:
                retry_after: float | None = float(exc.response.headers.get("retry-after") or "")
            except ValueError:
                retry_after = None
            return f"HTTP {status}: {text[:200]}", retry_after
        if isinstance(exc, openai.APITimeoutError):  # before its base class, APIConnectionError
            return f"timeout after {self.timeout.read} s read timeout", None
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return f"connection failure ({type(cause).__name__}: {cause})", None
        if isinstance(exc, _Malformed):
            return str(exc), None
        raise exc

    def _completions(self, raw: Any, n: int) -> tuple[list[Completion], int | None, int | None]:
        """The completions of a 200. The client hands back any 200 as success; a body that is not a usable
        completion (a proxy's error page, a half-written JSON) is `_Malformed`, ours to retry."""
        try:
            data = raw.http_response.json()
        except ValueError:
            raise _Malformed("malformed response body: not JSON") from None
        return self._parse(data, n)

    async def _post(self, req: ChatRequest, n: int, seed: int | None, index: int) -> list[Completion]:
        if self.endpoints:
            return await self._post_balanced(req, n, seed, index)
        state = self._loop_state()
        url = f"{self.base_url}/chat/completions"
        model, messages, body, call = self._request(req, n, seed, index)

        async def attempt() -> tuple[list[Completion], int | None, int | None]:
            # The client retries failed HTTP attempts by itself; a retry of ours (a malformed body) gets what
            # is left of the same budget, max_retries in all.
            client = state.client if not call.attempts else state.client.with_options(
                max_retries=self.max_retries - call.attempts)
            try:
                # Everything but model and messages goes as extra_body: the body is then exactly
                # what we built, request extras merged last, whatever the client's typed params are.
                raw = await client.chat.completions.with_raw_response.create(
                    model=model, messages=messages, extra_body=body, extra_headers=self._auth_override())
                return self._completions(raw, n)
            except Exception as exc:
                failure, _ = self._failure(exc, url, req, index)
                if not isinstance(exc, _Malformed) or call.attempts >= self.max_retries + 1:
                    raise self._gave_up(url, req, index, call.attempts, failure) from None
                call.last = failure
                raise

        token = _CALL.set(call)
        start = time.perf_counter()
        try:
            async with _slot(state.semaphore):
                # The client's own schedule for our retries: a wait doubling from 0.5 s to 8 s, with jitter.
                comps, p_tok, c_tok = await retry_async(attempt, when=lambda e: isinstance(e, _Malformed),
                                                        first_s=0.5, max_s=8.0)
            return self._done(call, comps, p_tok, c_tok, start)
        finally:
            _CALL.reset(token)

    async def _pick(self) -> int:
        """The healthy endpoint with the fewest requests in flight (ties: fewest served); while every endpoint
        rests, wait for the first to come back."""
        while True:
            now = time.monotonic()
            up = [i for i, ep in enumerate(self.endpoints) if ep.up(now)]
            if up:
                return min(up, key=lambda i: (self.endpoints[i].in_flight, self.endpoints[i].served))
            await asyncio.sleep(max(0.01, min(ep.down_until for ep in self.endpoints) - now))

    async def _post_balanced(self, req: ChatRequest, n: int, seed: int | None, index: int) -> list[Completion]:
        state = self._loop_state()
        model, messages, body, call = self._request(req, n, seed, index)

        async def attempt() -> tuple[list[Completion], int | None, int | None]:
            i = await self._pick()
            ep = self.endpoints[i]
            call.url = ep.url
            url = f"{ep.url}/chat/completions"
            ep.in_flight += 1
            try:
                raw = await state.clients[i].chat.completions.with_raw_response.create(
                    model=model, messages=messages, extra_body=body, extra_headers=self._auth_override())
                out = self._completions(raw, n)
            except Exception as exc:
                failure, retry_after = self._failure(exc, url, req, index)
                rest = ep.fail(failure, retry_after)
                call.last = f"{failure}; {ep.url} rests {rest:.1f} s"
                if call.attempts >= self.max_retries + 1:
                    raise self._gave_up(url, req, index, call.attempts, failure) from None
                raise _TryAnother(failure) from None
            finally:
                ep.in_flight -= 1
            ep.ok()
            return out

        token = _CALL.set(call)
        start = time.perf_counter()
        try:
            async with _slot(state.semaphore):
                # No wait of the call's own: the failed endpoint rests, and `_pick` waits only while all do.
                comps, p_tok, c_tok = await retry_async(attempt, when=lambda e: isinstance(e, _TryAnother),
                                                        first_s=0.0, max_s=0.0)
            return self._done(call, comps, p_tok, c_tok, start)
        finally:
            _CALL.reset(token)

    def health(self) -> list[dict[str, Any]]:
        """Per endpoint: requests in flight, served and failed, failures in a row, seconds left resting, the last
        error."""
        now = time.monotonic()
        return [{"url": ep.url, "in_flight": ep.in_flight, "served": ep.served, "failed": ep.failed,
                 "failures_in_a_row": ep.failures,
                 "resting_s": round(max(0.0, ep.down_until - now), 3),
                 "last_error": self._scrub(ep.last_error) if ep.last_error else None} for ep in self.endpoints]

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
        stop = asyncio.Event()

        async def one(i: int, req: ChatRequest) -> list[Completion]:
            try:
                comps = await self._one(req, i)
            except _NotSent:
                raise
            except BaseException:
                stop.set()
                raise
            if on_result is not None:
                on_result(i, comps)
            return comps

        # One request gave up: send no more, but let those already sent finish and hand their results over
        # (`on_result`), since they are paid for; then raise the first real failure.
        reset = _STOP.set(stop)  # the tasks copy this context when they are created
        try:
            tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(requests)]
        finally:
            _STOP.reset(reset)
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for t in tasks:  # only when this call itself is cancelled (Ctrl-C)
                if not t.done():
                    t.cancel()
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, _NotSent):
                raise r
        return list(results)  # type: ignore[arg-type]

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
        """Close the client of the current event loop."""
        state = self._states.pop(id(asyncio.get_running_loop()), None)
        if state is not None:
            await state.client.close()

    def close(self) -> None:
        """Close clients whose loops can still run them; clients of finished loops are just dropped."""
        states, self._states = list(self._states.values()), {}
        for state in states:
            if not state.loop.is_closed() and not state.loop.is_running():
                state.loop.run_until_complete(state.client.close())
