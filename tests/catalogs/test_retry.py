"""The one retry helper (catalogs.retry), and the catalog's lock retry built on it."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from catalogs import Catalog, CatalogError
from catalogs.retry import retry_async, retry_call


class Busy(Exception):
    pass


def flaky(failures: int, error: type[Exception] = Busy) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= failures:
            raise error(f"try {len(calls)}")
        return "done"

    return calls, fn


def busy(exc: BaseException) -> bool:
    return isinstance(exc, Busy)


def test_retries_until_it_succeeds_and_reports_each_retry() -> None:
    calls, fn = flaky(2)
    seen: list[tuple[int, str]] = []
    assert retry_call(fn, when=busy, attempts=5, first_s=0.001, max_s=0.01,
                      on_retry=lambda n, exc: seen.append((n, str(exc)))) == "done"
    assert calls == [1, 2, 3]
    assert seen == [(1, "try 1"), (2, "try 2")]


def test_gives_up_after_attempts_with_the_last_error_as_it_was() -> None:
    calls, fn = flaky(10)
    with pytest.raises(Busy, match="try 3"):
        retry_call(fn, when=busy, attempts=3, first_s=0.001, max_s=0.01)
    assert calls == [1, 2, 3]


def test_an_error_it_does_not_accept_is_raised_at_once() -> None:
    calls, fn = flaky(1, ValueError)
    with pytest.raises(ValueError, match="try 1"):
        retry_call(fn, when=busy, attempts=5, first_s=0.001, max_s=0.01)
    assert calls == [1]
    calls, fn = flaky(1)
    with pytest.raises(Busy):  # no time to retry in
        retry_call(fn, when=busy, within_s=0, first_s=0.001, max_s=0.01)
    assert calls == [1]


def test_the_async_form_retries_the_same_way() -> None:
    calls, fn = flaky(2)

    async def attempt() -> str:
        return fn()

    assert asyncio.run(retry_async(attempt, when=busy, attempts=3, first_s=0.001, max_s=0.01)) == "done"
    assert calls == [1, 2, 3]


def test_a_catalog_locked_by_another_process_gives_up_with_the_fix(tmp_path: Path) -> None:
    """A writer retries while another process holds the file, and after lock_timeout says what to do."""
    Catalog(root := tmp_path / "cat")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from catalogs import Catalog
        with Catalog({str(root)!r}).connect(write=True):
            print("open", flush=True)
            sys.stdin.readline()  # holds the file until the test says
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(CatalogError, match=r"stayed locked by another process .*raise --lock-timeout"):
            Catalog(root, lock_timeout=0.3).add_run({"model": "m", "backend": "vllm"})
        holder.stdin.write("close\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
    finally:
        holder.kill()
    Catalog(root).add_run({"model": "m", "backend": "vllm"})  # free again
