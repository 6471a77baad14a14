"""Hedged requests: another copy when the first is slow to answer; the first answer wins."""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, Literal, TypeVar

import anyio
import attrs

from middlewares.retry import RetryBudget
from pipeline import Request, Result, Stream

__all__ = ["Hedge", "Latencies", "Race", "race"]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[object]]

_HEDGE_BUDGET_RATIO = 0.1


def _after(instance: object, attribute: attrs.Attribute[object], value: object) -> None:
    if value == "p95":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"Hedge after= is a number of seconds >= 0 or 'p95', got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"Hedge after= must be finite, got {value!r}")


def _max_extra(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Hedge max_extra must be an int >= 1, got {value!r}")


def _default_budget() -> RetryBudget:
    return RetryBudget(_HEDGE_BUDGET_RATIO, min_per_second=0.1)


@attrs.frozen(kw_only=True)
class Hedge:
    """Send another copy of a slow request; keep whichever answers first.

    - ``after``: seconds without a first byte (a response, or a stream's first
      chunk) before another copy goes out, or ``"p95"``: the 95th percentile
      of the first copy's deployment's recent latencies (no hedge until it has
      ``min_samples`` of them);
    - ``max_extra``: copies beyond the first, at most;
    - ``budget``: a :class:`~middlewares.RetryBudget` that every routed request
      deposits into and every extra copy withdraws from (default: extra copies
      up to 10 % of requests, plus one per ten seconds), so hedging cannot
      double the load on a provider that is slow for everyone;
    - ``tools``: whether requests with ``tools`` are hedged (off: a tool call
      may act in the world, and two copies may act twice).

    The extra copy goes to the next deployment the strategy would pick (never
    one already running this request), or to the same one when no other is
    available. The loser is cancelled and its connection or stream closed.
    """

    after: float | Literal["p95"] = attrs.field(kw_only=False, validator=_after)
    max_extra: int = attrs.field(default=1, validator=_max_extra)
    budget: RetryBudget = attrs.field(factory=_default_budget, eq=False)
    tools: bool = False
    min_samples: int = 20

    def applies_to(self, request: Request) -> bool:
        return self.tools or not (request.params.get("tools") or request.params.get("functions"))


class Latencies:
    """The last ``size`` latencies of each deployment, for ``after="p95"``."""

    __slots__ = ("_samples", "_size")

    def __init__(self, size: int = 100) -> None:
        self._size = size
        self._samples: dict[str, deque[float]] = {}

    def add(self, key: str, seconds: float) -> None:
        samples = self._samples.get(key)
        if samples is None:
            samples = self._samples[key] = deque(maxlen=self._size)
        samples.append(seconds)

    def p95(self, key: str, min_samples: int) -> float | None:
        samples = self._samples.get(key)
        if samples is None or len(samples) < max(min_samples, 2):
            return None
        return statistics.quantiles(samples, n=20, method="inclusive")[-1]


@attrs.define
class Race(Generic[T]):
    """How a race ended: the winner (if any), the copies that failed, those cancelled."""

    winner: tuple[T, Result] | None = None
    failures: list[tuple[T, Exception]] = attrs.Factory(list)
    cancelled: list[T] = attrs.Factory(list)


async def _close(result: Result) -> None:
    if isinstance(result, Stream):
        with anyio.CancelScope(shield=True):
            await result.aclose()


async def race(
    first: T,
    run: Callable[[T], Awaitable[Result]],
    more: Callable[[], Awaitable[T | None]],
    *,
    after: float,
    max_extra: int,
    sleep: Sleep,
) -> Race[T]:
    """Run ``first``; every ``after`` seconds with no answer yet, start ``more()``
    (up to ``max_extra`` times; None means no copy can go). The first copy to
    return wins and the others are cancelled (``run`` must release what it
    holds when cancelled). When every running copy has failed, the race ends
    without a winner and no further copy starts: failover is the caller's.
    """
    outcome: Race[T] = Race()
    running: list[T] = [first]

    async with anyio.create_task_group() as group:

        async def copy(item: T) -> None:
            try:
                result = await run(item)
            except Exception as exc:
                running.remove(item)
                outcome.failures.append((item, exc))
                if not running:
                    group.cancel_scope.cancel()
                return
            running.remove(item)
            if outcome.winner is None:
                outcome.winner = (item, result)
                group.cancel_scope.cancel()
            else:  # answered while the winner's cancellation was on its way
                await _close(result)

        async def launch() -> None:
            for _ in range(max_extra):
                await sleep(after)
                if outcome.winner is not None or not running:
                    return
                with anyio.CancelScope(shield=True):  # a slot taken is always run (and released)
                    item = await more()
                if item is None:
                    return
                running.append(item)
                group.start_soon(copy, item)

        group.start_soon(copy, first)
        group.start_soon(launch)
    outcome.cancelled = running
    return outcome
