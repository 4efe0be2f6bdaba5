"""The review page's server: one page and a small JSON API, on 127.0.0.1 only.

Built on the standard library's ThreadingHTTPServer, not starlette/uvicorn: those arrive only with vLLM (the
`cpu`/`gpu` extras), and a page for one reviewer on the loopback needs nothing they give, so `r1f review` works
on an install without a model engine. Every request that touches the catalog runs under one lock: DuckDB lets a
process hold a file through one configuration at a time, and the catalog is opened briefly per request, so a
second `r1f review` (another reviewer) or any other r1f command can write between two clicks.
"""
from __future__ import annotations

import errno
import json
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from catalogs.errors import UserError
from catalogs.html import render_page
from catalogs.store import Catalog

from .decisions import REJECT_REASONS, Decision, ReviewError, apply, reject_reason
from .queue import Queue, summary

MAX_BODY = 16 * 2**20


class ReviewApp:
    def __init__(self, catalog: Catalog, queue: Queue, reviewer: str) -> None:
        self.catalog, self.queue, self.reviewer = catalog, queue, reviewer
        self.lock = threading.Lock()

    def state(self) -> dict[str, Any]:
        from catalogs.query import show

        with self.lock:
            q = self.queue.state(self.catalog)
            item = show(self.catalog, q["current"], full_text=True) if q["current"] else None
            done = summary(self.catalog, self.queue.ids) if q["current"] is None else None
        return {"reviewer": self.reviewer, "queue": q, "item": item, "summary": done,
                "reject_reasons": REJECT_REASONS}

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        gid = str(body.get("generation_id") or "")
        if gid not in set(self.queue.ids):
            raise ReviewError(f"sample {gid or '(none)'} is not in this review queue; reload the page.")
        decision = body.get("decision")
        reason = "approved"
        if decision == "reject":
            reason = reject_reason(body.get("reason"), body.get("note"))
        d = Decision(generation_id=gid, reviewer=self.reviewer, decision=str(decision), reason=reason,
                     reasoning=body.get("reasoning"), answer=body.get("answer"), origin="this edit")
        with self.lock:
            result = apply(self.catalog, [d])[0]
        words = {"approve": "approved", "reject": f"rejected ({reason})",
                 "edit": f"edited: new generation {result['edit_id']}"}[d.decision]
        message = f"Saved: {gid} {words}, as reviewer {self.reviewer} ({result['judge_version']})."
        if result["others"]:
            seen = "; ".join(f"{o['reviewer']} ({o['decision']}, {o['reason']}, {o['time']})" for o in result["others"])
            message += (f" Another reviewer had already decided this sample: {seen}. Both decisions are kept as "
                        f"separate verdicts; the newest counts in releases.")
        return {"ok": True, "message": message, **result}

    def skip(self, body: dict[str, Any]) -> dict[str, Any]:
        gid = str(body.get("generation_id") or "")
        with self.lock:
            self.queue.skip(gid)
        return {"ok": True, "message": f"Skipped {gid}: it comes back at the end of the queue."}


def make_handler(app: ReviewApp) -> type[BaseHTTPRequestHandler]:
    # The page is the same for every request: review/templates/page.html, rendered once per server.
    page = render_page("review", "page.html", reject_keys=len(REJECT_REASONS)).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "r1f-review"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows decisions only
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data, ensure_ascii=False, default=str).encode(), "application/json")

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/":
                self._send(200, page, "text/html; charset=utf-8")
            elif path == "/api/state":
                self._call(app.state)
            else:
                self._json(404, {"error": f"no page {path}"})

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            actions = {"/api/decide": app.decide, "/api/skip": app.skip}
            if path not in actions:
                self._json(404, {"error": f"no action {path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error": "edit too large (over 16 MiB)"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._json(400, {"error": "request body is not JSON"})
                return
            self._call(lambda: actions[path](body if isinstance(body, dict) else {}))

        def _call(self, fn: Any) -> None:
            try:
                self._json(200, fn())
            except UserError as exc:
                self._json(400, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - a bug: the page says so, the terminal keeps the traceback
                traceback.print_exc()
                self._json(500, {"error": f"internal error ({type(exc).__name__}: {exc}); the traceback is in the "
                                          f"terminal running r1f review. Decisions made before it are saved."})

    return Handler


def bind(app: ReviewApp, port: int) -> ThreadingHTTPServer:
    """Listen on 127.0.0.1 only: the page writes to the catalog and has no login."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(app))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ReviewError(f"port {port} on 127.0.0.1 is already in use (another r1f review?); pass another "
                              f"--port, or --port 0 for any free one.") from None
        raise ReviewError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; pass another --port.") from None
    server.daemon_threads = True
    return server
