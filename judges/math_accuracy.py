"""Math accuracy: the last `\\boxed{}` of the answer part against the reference, with Math-Verify.

Math-Verify's own timeouts use SIGALRM with whole seconds and cancel any outer alarm, so we
switch them off and put one timer around the whole (parse gold, parse prediction, verify) step:
a `setitimer` in the main thread, and a process with a hard kill everywhere else
(`judge_many`), because a pathological expression can also sit in C code that no signal reaches.
"""
from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from multiprocessing.connection import Connection, wait
from typing import Any

from catalogs.boxed import last_boxed
from catalogs.records import Sample, Verdict, verdict
from judges.base import JudgeSpec, params_model

NAME = "math_accuracy"
VERSION = "2"  # 2: the one box extractor (catalogs/boxed.py); it reads `\boxed {x}` as x

# Math-Verify warns once per process that its timeout is off; ours is on, so the warning misleads.
logging.getLogger("math_verify").setLevel(logging.ERROR)


class _SampleTimeout(BaseException):
    """BaseException so Math-Verify's `except Exception` blocks cannot swallow it."""


# A pure function of the string: cached, so that eval's answer classes reuse the parse the judge made of the same
# answer, and k samples of a problem parse its reference once (each parse costs milliseconds to a tenth of a second).
@functools.lru_cache(maxsize=1 << 14)
def parse_boxed(expr: str) -> list[Any]:
    """Math-Verify's reading of `expr` as the content of a `\\boxed{}`, its own timeout off: the one parse the
    judge and eval's answer classes (training/evaluate.py) share. See `parsed` for whether anything parsed.
    The list is shared by every caller of the same `expr`: read it, never change it."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    return parse("\\boxed{" + expr + "}", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                 parsing_timeout=None)


def parsed(result: list[Any]) -> bool:
    """Whether `parse_boxed` read an expression: with fallback on, Math-Verify returns the raw string when
    nothing parsed."""
    return any(not isinstance(x, str) for x in result)


def _check(reference: str, predicted: str) -> tuple[str, dict[str, Any]]:
    from math_verify import verify

    gold = parse_boxed(reference)
    if not parsed(gold):
        return "unparseable_gold", {}
    pred = parse_boxed(predicted)
    if not parsed(pred):
        return "unparseable_prediction", {}
    # Order matters: Math-Verify is not symmetric (assignments, equation -> interval), gold first.
    ok = verify(gold, pred, timeout_seconds=None)
    return ("correct" if ok else "wrong_answer"), {"gold_parsed": str(gold[0])[:200],
                                                   "pred_parsed": str(pred[0])[:200]}


def _extract(sample: Sample) -> tuple[str | None, dict[str, Any]]:
    if sample.answer.strip():
        return last_boxed(sample.answer), {"extracted_from": "answer"}
    # No separable answer part (no `</think>`, or an R1-Zero-style single block): use the whole text.
    return last_boxed(sample.text or sample.reasoning), {"extracted_from": "whole_text"}


def judge(sample: Sample, *, timeout_s: float = 5.0) -> Verdict:
    """Verdict for one sample. Off the main thread the check runs in a helper process."""
    if threading.current_thread() is not threading.main_thread() and timeout_s and timeout_s > 0:
        return _thread_pool().run([sample], timeout_s)[0]
    return _judge_here(sample, timeout_s)


def _judge_here(sample: Sample, timeout_s: float, use_signal: bool = True) -> Verdict:
    if sample.reference is None or not str(sample.reference).strip():
        return verdict(NAME, VERSION, 0.0, False, "no_reference")
    predicted, details = _extract(sample)
    if predicted is None or not predicted.strip():
        return verdict(NAME, VERSION, 0.0, False, "no_boxed_answer", **details)
    details["predicted"] = predicted[:200]
    import math_verify  # noqa: F401  (first import takes a second; not the sample's time)

    armed = bool(use_signal and timeout_s and timeout_s > 0)
    old_handler: Any = None
    outer_left = 0.0
    started = time.monotonic()
    if armed:
        def _on_alarm(signum: int, frame: Any) -> None:
            raise _SampleTimeout()
        # Someone else's timer (pytest-timeout, a caller's alarm) is put back afterwards.
        outer_left = signal.getitimer(signal.ITIMER_REAL)[0]
        old_handler = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        reason, more = _check(str(sample.reference), predicted)
    except _SampleTimeout:
        return verdict(NAME, VERSION, 0.0, False, "timeout", timeout_s=timeout_s, **details)
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
            if outer_left > 0:
                signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - started), 0.001))
    details.update(more)
    ok = reason == "correct"
    return verdict(NAME, VERSION, 1.0 if ok else 0.0, ok, reason, **details)


# ---------------------------------------------------------------- process pool with hard kills

def _warm_up() -> None:
    """Import Math-Verify and run one parse, so no sample's time limit pays for the start-up."""
    _check("1", "1")


def _worker(conn: Connection, timeout_s: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _warm_up()
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        for idx, fields in job:
            v = _judge_here(Sample(**fields), timeout_s)
            conn.send((idx, asdict(v)))


class VerifyPool:
    """Worker processes that judge chunks; a worker stuck past its deadline is killed and replaced."""

    def __init__(self, workers: int = 2, timeout_s: float = 5.0, grace_s: float = 2.0):
        self.n = max(1, workers)
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self._ctx = mp.get_context("spawn")  # fork beside torch/vLLM threads is not safe
        self._procs: list[Any] = [None] * self.n
        self._conns: list[Connection | None] = [None] * self.n
        self._ready: list[bool] = [False] * self.n
        self._lock = threading.Lock()

    def _start(self, k: int) -> None:
        parent, child = self._ctx.Pipe()
        p = self._ctx.Process(target=_worker, args=(child, self.timeout_s), daemon=True)
        p.start()
        child.close()
        self._procs[k], self._conns[k] = p, parent
        self._ready[k] = False

    def _wait_ready(self, k: int, timeout_s: float = 300.0) -> None:
        """Block until worker k has warmed up; deadlines start only after that."""
        conn = self._conns[k]
        if self._ready[k]:
            return
        try:
            if conn is not None and conn.poll(timeout_s) and conn.recv() == "ready":
                self._ready[k] = True
                return
        except (EOFError, OSError):
            pass
        raise RuntimeError(f"math_accuracy worker {k} did not start within {timeout_s:.0f} s")

    def _kill(self, k: int) -> None:
        p, c = self._procs[k], self._conns[k]
        if p is not None:
            p.kill()
            p.join(5)
        if c is not None:
            c.close()
        self._procs[k] = self._conns[k] = None
        self._ready[k] = False

    def run(self, samples: Sequence[Sample], timeout_s: float | None = None, chunk: int = 32) -> list[Verdict]:
        if timeout_s is not None and timeout_s != self.timeout_s:
            self.close()
            self.timeout_s = timeout_s
        with self._lock:
            return self._run(samples, chunk)

    def _run(self, samples: Sequence[Sample], chunk: int) -> list[Verdict]:
        out: list[Verdict | None] = [None] * len(samples)
        todo = [list(range(i, min(i + chunk, len(samples)))) for i in range(0, len(samples), chunk)]
        todo.reverse()
        pending: dict[int, list[int]] = {}  # worker -> indices not yet answered
        last: dict[int, float] = {}
        hard = self.timeout_s + self.grace_s

        def dispatch(k: int) -> None:
            if not todo:
                return
            if self._procs[k] is None or not self._procs[k].is_alive():
                self._kill(k)
                self._start(k)
                self._wait_ready(k)
            idxs = todo.pop()
            pending[k] = idxs
            last[k] = time.monotonic()
            self._conns[k].send([(i, asdict(samples[i])) for i in idxs])  # type: ignore[union-attr]

        for k in range(min(self.n, len(todo))):  # start workers side by side, then wait for them
            if self._procs[k] is None or not self._procs[k].is_alive():
                self._kill(k)
                self._start(k)
        for k in range(min(self.n, len(todo))):
            self._wait_ready(k)
            dispatch(k)
        while pending:
            now = time.monotonic()
            wait_s = max(0.01, min(last[k] + hard for k in pending) - now)
            ready = wait([self._conns[k] for k in pending], timeout=wait_s)  # type: ignore[misc]
            for k in list(pending):
                conn = self._conns[k]
                if conn in ready:
                    try:
                        while conn.poll():
                            idx, v = conn.recv()
                            out[idx] = Verdict(**v)
                            pending[k].remove(idx)
                            last[k] = time.monotonic()
                    except (EOFError, OSError):
                        self._fail_first(k, pending, out, samples, "worker_died")
                elif time.monotonic() > last[k] + hard:
                    self._fail_first(k, pending, out, samples, "hard_kill")
                if k in pending and not pending[k]:
                    del pending[k]
                    dispatch(k)
        return out  # type: ignore[return-value]

    def _fail_first(self, k: int, pending: dict[int, list[int]], out: list[Verdict | None],
                    samples: Sequence[Sample], how: str) -> None:
        """The worker's current sample stalled or crashed it: record a timeout, requeue the rest."""
        self._kill(k)
        idxs = pending[k]
        first, rest = idxs[0], idxs[1:]
        out[first] = verdict(NAME, VERSION, 0.0, False, "timeout", timeout_s=self.timeout_s, how=how)
        pending[k] = []
        if rest:
            self._start(k)
            self._wait_ready(k)
            pending[k] = rest
            self._conns[k].send([(i, asdict(samples[i])) for i in rest])  # type: ignore[union-attr]

    def close(self) -> None:
        for k in range(self.n):
            c = self._conns[k]
            if c is not None:
                try:
                    c.send(None)
                except OSError:
                    pass
            p = self._procs[k]
            if p is not None:
                p.join(2)
            self._kill(k)

    def __enter__(self) -> VerifyPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_THREAD_POOL: VerifyPool | None = None
_THREAD_POOL_LOCK = threading.Lock()


def _thread_pool() -> VerifyPool:
    global _THREAD_POOL
    with _THREAD_POOL_LOCK:
        if _THREAD_POOL is None:
            _THREAD_POOL = VerifyPool(workers=1)
        return _THREAD_POOL


def judge_many(samples: Sequence[Sample], workers: int = 2, *, timeout_s: float = 5.0,
               min_batch_for_pool: int = 64) -> list[Verdict]:
    """Verdicts for a batch, in order. Big batches use `workers` processes (both cores by default)."""
    samples = list(samples)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main and (workers <= 1 or len(samples) < min_batch_for_pool):
        # Starting worker processes costs about a second; small batches are faster here.
        return [_judge_here(s, timeout_s) for s in samples]
    workers = max(1, min(workers, os.cpu_count() or 1, len(samples)))
    with VerifyPool(workers=workers, timeout_s=timeout_s) as pool:
        return pool.run(samples)


JUDGE = JudgeSpec(NAME, VERSION, "rule", params_model(judge), judge=judge, many=judge_many)
