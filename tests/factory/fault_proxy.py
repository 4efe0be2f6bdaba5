"""Loopback HTTP helpers for backend tests: a fault-injecting proxy and a fake DeepSeek API.

Both are real HTTP/1.1 servers on 127.0.0.1 (asyncio streams, in a background thread). The proxy
forwards to a real vLLM server and, following a schedule, injects the failures the OpenAI backend
must survive: dropped connections, 429 with Retry-After, 500, requests never answered (so the
client's timeout cuts them), bodies cut off mid-stream and malformed JSON.
The fake DeepSeek server stands in for DeepSeek's remote API, which cannot run here.

Nothing here is timed: where a test needs requests to be in a given state at once (in flight together,
answered only after another failed), the server holds them until that state is reached, rather than
sleeping and hoping the other side kept up.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

FAULTS = ("ok", "drop", "429", "500", "500-then-release", "hang", "hold", "cut", "malformed")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Send only this many body bytes (with the full Content-Length), then close: a cut-off body.
    truncate_at: int | None = None
    # Close the connection without answering.
    drop: bool = False
    # Never answer: keep the connection open until the client hangs up (its timeout, or it went away).
    hang: bool = False
    # Called once the client has read this response and hung up (so it has seen all of it).
    after_client_closed: Callable[[], None] | None = None


Handler = Callable[[Request], Awaitable[Response]]

_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error"}


class LoopbackServer:
    """A minimal HTTP/1.1 server on 127.0.0.1 running `handler` in its own thread and event loop.
    Every response closes its connection, which keeps the framing simple."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="loopback-http")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LoopbackServer:  # noqa: PYI034
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        fut.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in asyncio.all_tasks(self.loop):
            if task is not asyncio.current_task():
                task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            resp = await self.handler(Request(method, path, headers, body))
            if resp.drop:
                writer.transport.abort()
                return
            if resp.hang:
                try:
                    await self._until_client_closes(reader)
                finally:
                    if resp.after_client_closed is not None:
                        resp.after_client_closed()
                return
            hdrs = {"Content-Type": "application/json", **resp.headers,
                    "Content-Length": str(len(resp.body)), "Connection": "close"}
            out = f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Status')}\r\n"
            out += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
            payload = resp.body if resp.truncate_at is None else resp.body[: resp.truncate_at]
            writer.write(out.encode("latin-1") + payload)
            await writer.drain()
            if resp.truncate_at is not None:
                writer.transport.abort()
                return
            if resp.after_client_closed is not None:
                await self._until_client_closes(reader)
                resp.after_client_closed()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    @staticmethod
    async def _until_client_closes(reader: asyncio.StreamReader) -> None:
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass


class FaultProxy(LoopbackServer):
    """Forwards to `upstream` (a base URL ending in /v1) and injects faults into POSTs by schedule.

    `schedule(["drop", "429", ...])` sets the faults for the next POSTs, in order; after the schedule
    runs out, `default` applies ("ok" forwards). `seen` lists the fault applied to each POST.
    GETs (the backend's /models probe) are always forwarded.

    "hang" never answers (`hanging` counts those open now). "hold" forwards at once but answers only once
    released (`held` counts those that arrived and wait): by `release()`, or when a client has read a
    "500-then-release" (a 500) and hung up. After a release, "hold" answers at once until the next
    `schedule`.
    """

    def __init__(self, upstream: str, *, retry_after_s: float = 0.2) -> None:
        super().__init__(self._handle)
        self.upstream = upstream.rstrip("/")
        self.retry_after_s = retry_after_s
        self.default = "ok"
        self.seen: list[str] = []
        self.held = 0
        self.hanging = 0
        self._queue: list[str] = []
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        self._gate = asyncio.Event()

    def schedule(self, faults: list[str], default: str = "ok") -> None:
        bad = [f for f in faults + [default] if f not in FAULTS]
        if bad:
            raise ValueError(f"unknown faults {bad}; use {FAULTS}")
        self.release()  # nothing of an earlier schedule stays held
        with self._lock:
            self._queue = list(faults)
            self.default = default
            self.seen = []
            self._gate = asyncio.Event()

    def release(self) -> None:
        """Answer the held requests, and further "hold" requests at once (until the next `schedule`)."""
        self.loop.call_soon_threadsafe(self._gate.set)

    def _next_fault(self) -> str:
        with self._lock:
            fault = self._queue.pop(0) if self._queue else self.default
            self.seen.append(fault)
            return fault

    async def _forward(self, req: Request) -> Response:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=120)
        # upstream is .../v1 and the request path starts with /v1
        root = self.upstream.removesuffix("/v1")
        keep = {k: v for k, v in req.headers.items() if k in ("content-type", "authorization", "accept")}
        r = await self._client.request(req.method, root + req.path, content=req.body, headers=keep)
        return Response(status=r.status_code, body=r.content,
                        headers={"Content-Type": r.headers.get("content-type", "application/json")})

    async def _handle(self, req: Request) -> Response:
        if req.method != "POST":
            return await self._forward(req)
        fault = self._next_fault()
        if fault == "drop":
            return Response(drop=True)
        if fault == "429":
            return Response(429, b'{"error": {"message": "rate limited"}}',
                            {"Retry-After": str(self.retry_after_s)})
        if fault == "500":
            return Response(500, b'{"error": {"message": "internal error"}}')
        if fault == "500-then-release":
            gate = self._gate
            return Response(500, b'{"error": {"message": "internal error"}}',
                            after_client_closed=gate.set)
        if fault == "malformed":
            return Response(200, b'{"id": "x", "choices": [{"index": 0, "mess')
        if fault == "hang":
            self.hanging += 1
            return Response(hang=True, after_client_closed=self._hung_up)
        if fault == "hold":
            gate = self._gate
            self.held += 1
            try:
                resp = await self._forward(req)
                await gate.wait()
            finally:
                self.held -= 1
            return resp
        resp = await self._forward(req)
        if fault == "cut":
            resp.truncate_at = max(1, len(resp.body) // 2)
        return resp

    def _hung_up(self) -> None:
        self.hanging -= 1


class FakeDeepSeek(LoopbackServer):
    """Stands in for DeepSeek's API (deepseek-reasoner): answers with `reasoning_content` beside
    `content`, demands `Authorization: Bearer <api_key>`, and in `failing` mode answers 500 with a
    body that echoes the Authorization header (the worst a server could do with a key).

    With `together = k`, chat requests are held until k of them are in flight at once (then all go on, and
    later ones are not held): `max_inflight` then shows whether a client sends k at once, and never more
    than its bound, however fast or slow either side runs. A client that never sends k at once is let
    through after `together_wait_s`, so the test fails on `max_inflight` instead of hanging."""

    MODEL = "deepseek-reasoner"

    def __init__(self, api_key: str) -> None:
        super().__init__(self._handle)
        self.api_key = api_key
        self.failing = False
        self.together: int | None = None
        self.together_wait_s = 300.0
        self.bodies: list[dict] = []
        self.inflight = 0
        self.max_inflight = 0
        self._all_in = asyncio.Event()

    async def _handle(self, req: Request) -> Response:
        auth = req.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            return Response(401, b'{"error": {"message": "Authentication Fails (no such user)"}}')
        if req.method == "GET" and req.path.rstrip("/").endswith("/models"):
            return Response(200, json.dumps({"object": "list", "data": [{"id": self.MODEL}]}).encode())
        if req.method == "POST" and req.path.endswith("/chat/completions"):
            if self.failing:
                return Response(500, json.dumps({"error": f"upstream failed; got header {auth}"}).encode())
            body = json.loads(req.body)
            self.bodies.append(body)
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            try:
                if self.together is not None:
                    if self.inflight >= self.together:
                        self._all_in.set()
                    try:
                        await asyncio.wait_for(self._all_in.wait(), self.together_wait_s)
                    except asyncio.TimeoutError:
                        self._all_in.set()
            finally:
                self.inflight -= 1
            n = int(body.get("n", 1))
            question = body["messages"][-1]["content"]
            choices = [{
                "index": i,
                "message": {"role": "assistant", "content": f"The answer is 4. ({i})",
                            "reasoning_content": f"We need {question}. 2 + 2 = 4. Check: 4 - 2 = 2."},
                "finish_reason": "stop",
            } for i in range(n)]
            data = {"id": "fake", "object": "chat.completion", "created": int(time.time()),
                    "model": self.MODEL, "choices": choices,
                    "usage": {"prompt_tokens": 12, "completion_tokens": 20 * n, "total_tokens": 12 + 20 * n}}
            return Response(200, json.dumps(data).encode())
        return Response(404, b'{"error": "not found"}')
