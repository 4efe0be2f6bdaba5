"""Retrying, written once: the catalog's file lock, the Hub's 5xx, an endpoint's malformed or failed answer.

Built on tenacity. Every retry the project makes by hand goes through here; HTTP retries inside the official
`openai` client stay the client's. The wait between tries is tenacity's "full jitter" exponential backoff (a
random wait below a bound that doubles from `first_s` up to `max_s`): the schedule that keeps processes
contending for one lock, or clients for one server, out of step.

tenacity is imported on the first failure only, so a call that succeeds at once (opening the catalog for
`r1f show`) pays no import for it.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import tenacity

T = TypeVar("T")


def _policy(when: Callable[[BaseException], bool], attempts: int | None, within_s: float | None,
            first_s: float, max_s: float, on_retry: Callable[[int, BaseException], None] | None) -> dict[str, Any]:
    import tenacity

    stops: list[Any] = []
    if attempts is not None:
        stops.append(tenacity.stop_after_attempt(attempts))
    if within_s is not None:
        stops.append(tenacity.stop_after_delay(within_s))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                on_retry(state.attempt_number, error)

    return {"retry": tenacity.retry_if_exception(when),
            "stop": tenacity.stop_any(*stops) if stops else tenacity.stop_never,
            "wait": tenacity.wait_random_exponential(multiplier=first_s, max=max_s),
            "before_sleep": before_sleep, "reraise": True}


def retry_call(fn: Callable[[], T], *, when: Callable[[BaseException], bool], attempts: int | None = None,
               within_s: float | None = None, first_s: float, max_s: float,
               on_retry: Callable[[int, BaseException], None] | None = None) -> T:
    """`fn()`, tried again while it raises an error `when` accepts, for at most `attempts` tries and `within_s`
    seconds (None: no bound of that kind). `on_retry(attempt, error)` runs before each wait. The last error is
    raised as it was, for the caller to turn into its own message."""
    try:
        return fn()
    except Exception as exc:
        if not when(exc) or attempts == 1 or within_s == 0:
            raise
        first = [exc]
    import tenacity

    def again() -> T:  # the first failure, replayed for tenacity to count and wait on, then fresh tries
        if first:
            raise first.pop()
        return fn()

    return tenacity.Retrying(**_policy(when, attempts, within_s, first_s, max_s, on_retry))(again)


async def retry_async(fn: Callable[[], Awaitable[T]], *, when: Callable[[BaseException], bool],
                      attempts: int | None = None, within_s: float | None = None, first_s: float, max_s: float,
                      on_retry: Callable[[int, BaseException], None] | None = None) -> T:
    """`retry_call` for a coroutine function: the waits are `asyncio.sleep`s, so other requests go on."""
    import tenacity

    return await tenacity.AsyncRetrying(**_policy(when, attempts, within_s, first_s, max_s, on_retry))(fn)
