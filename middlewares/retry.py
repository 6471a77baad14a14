"""Retry: a bounded retry policy with backoff, Retry-After and a budget shared across requests.

Put it outside ErrorMapping (which turns raw httpx errors into retryable
:mod:`pipeline.errors`) and inside Fallback, so each alternative gets its
own retries::

    Pipeline([Fallback(["other/model"]), Retry(attempts=3), ErrorMapping()])

The policy, for each failed try:

- only errors that call for it are retried: by default a
  :class:`errors.DispatchError` with ``retryable=True`` (rate limits, 5xx,
  timeouts, connection errors; a provider's ``x-should-retry`` decides where
  sent). Raw exceptions are never retried by default.
- at most ``attempts`` tries in all, and no new try starts once ``deadline``
  seconds have passed since the first began (a try in flight is bounded by
  the request's HTTP timeout, not cut by the deadline);
- the wait before try ``n + 1`` is drawn uniformly from
  ``[0, min(max_delay, base_delay * 2**(n-1))]`` ("full jitter"); when the
  LATEST error carries ``retry_after`` the wait is at least that, capped at
  ``max_delay``; a wait never runs past the deadline, and a Retry-After that
  does not fit in the time left gives up at once;
- each retry spends from the :class:`RetryBudget`; when it is spent the
  latest error is raised.

A stream counts as answered once ``call_next`` returns it (its first chunk has
arrived by then): an error while iterating it reaches the caller and is not
retried. A stream that fails before its first chunk raises from ``call_next``
and is retried like any call.

Every try is recorded: the result's (or the raised error's) ``attempts`` is
the tuple of :class:`pipeline.Attempt` it took, so Logging and Callbacks
outside see the count.

Waiting goes through ``anyio.sleep`` (asyncio and trio). Tests pass
``sleep=`` (an async callable taking seconds) to record waits instead of
sleeping, and ``clock=`` to drive the deadline.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from middlewares._attempts import attempts_of, record
from pipeline import Attempt, Handler, Request, Result, errors

__all__ = ["Retry", "RetryBudget", "is_retryable"]

Sleep = Callable[[float], Awaitable[object]]
Clock = Callable[[], float]
RetryPredicate = Callable[[Exception], bool]


def is_retryable(exc: Exception) -> bool:
    """The default ``retry_on``: a unified error marked ``retryable``."""
    return isinstance(exc, errors.DispatchError) and exc.retryable


class _Slot:
    __slots__ = ("index", "requests", "retries")

    def __init__(self, index: int) -> None:
        self.index = index
        self.requests = 0
        self.retries = 0


class RetryBudget:
    """Caps retries at a fraction of first tries, over a sliding time window.

    Over the last ``window`` seconds, retries may number at most
    ``ratio * requests + min_per_second * window``: with the defaults, 20 %
    on top of the requests seen, plus a floor of one retry per second so a
    quiet service can still be retried. A failing provider then sees at most
    about ``1 + ratio`` times its normal load, however many attempts each
    request allows (the idea of tower's and Finagle's retry budgets).

    One budget is shared by every request through the :class:`Retry` that
    holds it; pass the same budget to several Retry layers to share it wider.
    The window moves in ten steps. Counting takes a lock and never awaits, so
    one budget may serve several threads, each running its own event loop (a
    pipeline used from sync code and from async code at once).
    """

    __slots__ = (
        "_clock",
        "_lock",
        "_min_per_second",
        "_ratio",
        "_requests",
        "_retries",
        "_slot_seconds",
        "_slots",
        "_window",
    )

    _STEPS = 10

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        min_per_second: float = 1.0,
        window: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if not ratio >= 0:
            raise ValueError(f"ratio must be >= 0, got {ratio!r}")
        if not min_per_second >= 0:
            raise ValueError(f"min_per_second must be >= 0, got {min_per_second!r}")
        if not (window > 0 and math.isfinite(window)):
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        self._ratio = ratio
        self._min_per_second = min_per_second
        self._window = window
        self._clock = clock
        self._slot_seconds = window / self._STEPS
        self._slots: deque[_Slot] = deque()
        self._requests = 0
        self._retries = 0
        self._lock = threading.Lock()

    def _current(self) -> _Slot:
        index = int(self._clock() // self._slot_seconds)
        slots = self._slots
        while slots and slots[0].index <= index - self._STEPS:
            gone = slots.popleft()
            self._requests -= gone.requests
            self._retries -= gone.retries
        if not slots or slots[-1].index != index:
            slots.append(_Slot(index))
        return slots[-1]

    def deposit(self) -> None:
        """Count one request (its first try)."""
        with self._lock:
            self._current().requests += 1
            self._requests += 1

    def withdraw(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        with self._lock:
            slot = self._current()
            allowed = self._ratio * self._requests + self._min_per_second * self._window
            if self._retries + 1 > allowed:
                return False
            slot.retries += 1
            self._retries += 1
            return True

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self._ratio!r}, min_per_second={self._min_per_second!r}, "
            f"window={self._window!r})"
        )


class _OwnBudget:
    """Marker default: each Retry gets a fresh ``RetryBudget()``."""

    def __repr__(self) -> str:
        return "RetryBudget()"


_OWN_BUDGET = _OwnBudget()


class Retry:
    """Retries failed calls; see the module docstring for the policy.

    - ``attempts``: tries in all, the first included (1 turns retrying off);
    - ``deadline``: seconds after the first try after which none starts;
    - ``base_delay``, ``max_delay``: the backoff's first ceiling and its cap;
    - ``budget``: a :class:`RetryBudget` (default: one of its own, shared by
      every request through this Retry), or None for no budget;
    - ``retry_on``: which errors to retry (default :func:`is_retryable`);
    - ``sleep``, ``clock``: the waiting and its clock (``anyio.sleep`` and
      ``anyio.current_time``, the event loop's own); tests pass fakes.
    """

    __slots__ = (
        "_attempts",
        "_base_delay",
        "_budget",
        "_clock",
        "_deadline",
        "_max_delay",
        "_retry_on",
        "_sleep",
    )

    def __init__(
        self,
        attempts: int = 3,
        *,
        deadline: float = 60.0,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
        budget: RetryBudget | _OwnBudget | None = _OWN_BUDGET,
        retry_on: RetryPredicate = is_retryable,
        sleep: Sleep = anyio.sleep,
        clock: Clock = anyio.current_time,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, got {attempts!r}")
        if not deadline > 0:
            raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
        if not (base_delay >= 0 and max_delay >= base_delay and math.isfinite(max_delay)):
            raise ValueError(
                f"need 0 <= base_delay <= max_delay (finite), got {base_delay!r}, {max_delay!r}"
            )
        self._attempts = attempts
        self._deadline = deadline
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._budget = RetryBudget() if isinstance(budget, _OwnBudget) else budget
        self._retry_on = retry_on
        self._sleep = sleep
        self._clock = clock

    @property
    def budget(self) -> RetryBudget | None:
        return self._budget

    def __repr__(self) -> str:
        shown = (
            f"attempts={self._attempts!r}, deadline={self._deadline!r}, "
            f"base_delay={self._base_delay!r}, max_delay={self._max_delay!r}, "
            f"budget={self._budget!r}"
        )
        if self._retry_on is not is_retryable:
            shown += f", retry_on={getattr(self._retry_on, '__qualname__', self._retry_on)!r}"
        return f"Retry({shown})"

    def _wait(self, tries: int, error: Exception, remaining: float) -> float | None:
        """Seconds to wait before the next try, or None to give up with ``error``."""
        if tries >= self._attempts or remaining <= 0 or not self._retry_on(error):
            return None
        ceiling = min(self._max_delay, self._base_delay * 2.0 ** min(tries - 1, 64))
        wait = random.uniform(0.0, ceiling)
        hint = error.retry_after if isinstance(error, errors.DispatchError) else None
        if hint is not None:
            floor = min(hint, self._max_delay)
            if floor > remaining:
                return None
            wait = max(wait, floor)
        return min(wait, remaining)

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        give_up_at = self._clock() + self._deadline
        budget = self._budget
        if budget is not None:
            budget.deposit()
        path: list[Attempt] = []
        tries = 0
        while True:
            tries += 1
            try:
                result = await call_next(request)
            except Exception as exc:
                error = exc
            else:
                path.extend(attempts_of(request, result))
                record(result, path)
                return result
            path.extend(attempts_of(request, error))
            wait = self._wait(tries, error, give_up_at - self._clock())
            if wait is None or (budget is not None and not budget.withdraw()):
                record(error, path)
                raise error
            await self._sleep(wait)
