"""Budget: stop spending once a scope has spent its limit in the period.

>>> from middlewares import Budget
>>> Budget(10.0)                                          # USD per provider per UTC day
>>> Budget(2.0, period="hour", scope="model")
>>> Budget(50.0, period="month", scope="tag")             # per metadata tag
>>> Budget(1.0, period=600, scope=lambda request: team_of(request))   # rolling 10 minutes

What a user relies on:

- **Refusal before I/O.** A request whose scope has spent ``limit_usd`` or
  more in the current period raises :class:`errors.BudgetExceededError`
  (``scope``, ``spent``, ``limit``, ``resets_at``, and ``retry_after`` in
  seconds) without reaching the provider. Inside a Router that means "skip
  this deployment"; outside one, Fallback moves on to its next alternative.
- **Spend is counted when a response or stream ends**, from its ``cost``
  (set by a :class:`Costs` layer inside this one; ``Pipeline.default`` adds
  one when budgets are given). Failed requests spend nothing; a reply whose
  price is unknown spends nothing and is logged once per scope
  (``budget.unpriced``).
- **Concurrency.** The check is made when a request starts and the spend
  added when it ends, so requests already in flight when the limit is
  reached still finish and count: the overshoot is at most what those
  in-flight requests cost, never more.
- **Periods.** ``"hour"``, ``"day"``, ``"month"`` are calendar windows in
  UTC: spending starts from zero at each window's start. A number is a
  rolling window of that many seconds, kept in 60 slots: a spend counts for
  at least that long and at most 1/60th longer.
- **Scopes.** Each scope key has its own limit: ``"provider"``
  (``provider:openai``), ``"model"`` (``model:openai/gpt-4o``),
  ``"deployment"`` (``deployment:<name>``, routed requests only), ``"tag"``
  (``tag:<tag>`` for each of the request's ``metadata["tags"]`` and its
  deployment's tags: any spent tag refuses, and the cost counts for each), or
  a callable ``request -> str | None`` (its string is the key; None leaves
  the request outside this budget). A request with no key for the scope is
  not limited by it.
- Time comes from ``clock`` (Unix seconds; ``time.time`` by default), so
  tests can move it.
- **Across processes** (``redis=``, a URL or a
  :class:`~middlewares.shared.SharedRedis`; the ``[redis]`` extra): each
  scope's spend is kept in Redis (:mod:`middlewares.usage._shared_ledgers`),
  so every process checks against, and adds to, the same total: the
  overshoot is at most what the requests in flight in all processes cost.
  The check is one round trip before the request; the spend one after it
  (a stream's, in the background once it ends). ``spent()`` and
  ``snapshot()`` show this process's own spend; ``await aspent()`` and
  ``await asnapshot()`` everyone's. While Redis is out, each process checks
  its own spend (so together they may spend up to the limit each), with one
  warning; what it spent meanwhile reaches Redis once Redis is back. Two
  budgets with the same period that count the same scope (``provider:openai``)
  and the same ``prefix`` share their spend in Redis: give them different
  prefixes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from middlewares._log import logger
from middlewares.shared import RedisUnavailable, SharedRedis, spawn
from middlewares.usage._periods import Ledger, Period, ledger_factory
from middlewares.usage._routed import deployment_of, tags_of
from middlewares.usage._shared_ledgers import SharedLedgers
from pipeline import Handler, Request, Result, Stream, errors, observe

__all__ = ["Budget", "Scope"]

Scope = Literal["provider", "model", "deployment", "tag"] | Callable[[Request], str | None]
Keys = tuple[str, ...]


def _provider(request: Request) -> Keys:
    return (f"provider:{request.provider}",)


def _model(request: Request) -> Keys:
    return (f"model:{request.provider}/{request.model}",)


def _deployment(request: Request) -> Keys:
    deployment = deployment_of(request)
    return () if deployment is None else (f"deployment:{deployment.name}",)


def _tag(request: Request) -> Keys:
    return tuple(f"tag:{tag}" for tag in sorted(tags_of(request)))


_SCOPES: dict[str, Callable[[Request], Keys]] = {
    "provider": _provider,
    "model": _model,
    "deployment": _deployment,
    "tag": _tag,
}


def _custom(scope: Callable[[Request], str | None]) -> Callable[[Request], Keys]:
    def keys(request: Request) -> Keys:
        key = scope(request)
        return () if key is None else (str(key),)

    return keys


class Budget:
    """Refuses requests once their scope has spent ``limit_usd`` in ``period``;
    see the module docstring."""

    __slots__ = (
        "_clock",
        "_keys",
        "_ledgers",
        "_limit",
        "_new_ledger",
        "_period",
        "_scope",
        "_shared",
        "_unpriced",
    )

    def __init__(
        self,
        limit_usd: float,
        period: Period = "day",
        scope: Scope = "provider",
        *,
        redis: str | SharedRedis | None = None,
        prefix: str = "dispatchline",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (
            isinstance(limit_usd, bool)
            or not isinstance(limit_usd, int | float)
            or not (0 < limit_usd < float("inf"))
        ):
            raise ValueError(f"limit_usd must be a positive number of USD, got {limit_usd!r}")
        self._new_ledger = ledger_factory(period)
        if callable(scope):
            self._keys = _custom(scope)
        elif scope in _SCOPES:
            self._keys = _SCOPES[scope]
        else:
            raise ValueError(
                f"scope must be one of {', '.join(map(repr, _SCOPES))} or a callable, got {scope!r}"
            )
        self._limit = float(limit_usd)
        self._period = period
        self._scope = scope
        self._clock = clock
        self._ledgers: dict[str, Ledger] = {}
        self._unpriced: set[str] = set()
        self._shared: SharedLedgers | None = None
        if redis is not None:
            self._shared = SharedLedgers(redis, prefix=prefix, period=period)

    def __repr__(self) -> str:
        scope = (
            self._scope
            if isinstance(self._scope, str)
            else getattr(self._scope, "__qualname__", repr(self._scope))
        )
        shared = "" if self._shared is None else f", redis={self._shared.redis.url!r}"
        return f"Budget({self._limit!r}, period={self._period!r}, scope={scope!r}{shared})"

    @property
    def limit(self) -> float:
        return self._limit

    @property
    def redis(self) -> SharedRedis | None:
        """The Redis the spend is kept in, or None (this process only)."""
        return None if self._shared is None else self._shared.redis

    async def aclose(self) -> None:
        """Close the Redis connections this budget opened (``redis=`` a URL)."""
        if self._shared is not None:
            await self._shared.aclose()

    def spent(self, scope: str) -> float:
        """USD spent by ``scope`` (a key such as ``"provider:openai"``) this period,
        by this process."""
        ledger = self._ledgers.get(scope)
        return 0.0 if ledger is None else ledger.spent(self._clock())

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every scope this process has spent on: ``{scope: {"spent", "limit", "resets_at"}}``."""
        now = self._clock()
        return {key: self._entry(ledger, now) for key, ledger in list(self._ledgers.items())}

    async def aspent(self, scope: str) -> float:
        """USD spent by ``scope`` this period by every process (``redis=``); without
        Redis, or while it is out, :meth:`spent`."""
        if self._shared is None:
            return self.spent(scope)
        now = self._clock()
        try:
            (ledger,) = await self._shared.ledgers([scope], now)
        except RedisUnavailable:
            return self.spent(scope)
        return ledger.spent(now)

    async def asnapshot(self) -> dict[str, dict[str, float]]:
        """:meth:`snapshot` of every process's spend (``redis=``); without Redis, or
        while it is out, this process's."""
        if self._shared is None:
            return self.snapshot()
        now = self._clock()
        try:
            scopes = await self._shared.scopes()
            ledgers = await self._shared.ledgers(scopes, now)
        except RedisUnavailable:
            return self.snapshot()
        return {key: self._entry(ledger, now) for key, ledger in zip(scopes, ledgers, strict=True)}

    def _entry(self, ledger: Ledger, now: float) -> dict[str, float]:
        return {
            "spent": ledger.spent(now),
            "limit": self._limit,
            "resets_at": ledger.resets_at(now, self._limit),
        }

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        keys = self._keys(request)
        if keys:
            now = self._clock()
            if self._shared is None:
                for key in keys:
                    ledger = self._ledgers.get(key)
                    if ledger is not None and ledger.spent(now) >= self._limit:
                        raise self._refusal(request, key, ledger, now)
            else:
                await self._check_shared(request, keys, now)
        result = await call_next(request)
        if not keys:
            return result
        if isinstance(result, Stream):
            spend = _StreamSpend(self, keys, result)
            return observe(result, on_end=spend.on_end, on_error=spend.on_error)
        cost = self._spend(keys, result.cost, complete=True)
        if cost is not None and self._shared is not None:
            await self._shared.add(keys, self._clock(), cost)
        return result

    async def _check_shared(self, request: Request, keys: Keys, now: float) -> None:
        """The check against every process's spend; this process's own while Redis is out."""
        assert self._shared is not None
        try:
            found: list[Ledger | None] = list(await self._shared.ledgers(keys, now))
        except RedisUnavailable:
            found = [self._ledgers.get(key) for key in keys]
        for key, ledger in zip(keys, found, strict=True):
            if ledger is not None and ledger.spent(now) >= self._limit:
                raise self._refusal(request, key, ledger, now)

    def _spend(self, keys: Keys, cost: float | None, *, complete: bool) -> float | None:
        """Count ``cost`` here; the amount to count in Redis too, if any."""
        if cost is None:
            if not complete:  # a stream cut short, a failure: no price is expected
                return None
            for key in keys:
                if key not in self._unpriced:
                    self._unpriced.add(key)
                    logger().warning("budget.unpriced", scope=key, budget=repr(self))
            return None
        if cost <= 0:
            return None
        now = self._clock()
        for key in keys:
            ledger = self._ledgers.get(key)
            if ledger is None:
                ledger = self._ledgers[key] = self._new_ledger()
            ledger.add(now, cost)
        return cost

    def _spend_later(self, keys: Keys, cost: float | None, *, complete: bool) -> None:
        """:meth:`_spend`, from a stream's end (no await there): Redis hears of it
        in the background."""
        amount = self._spend(keys, cost, complete=complete)
        shared = self._shared
        if amount is None or shared is None:
            return
        now = self._clock()

        async def share() -> None:
            try:
                await shared.add(keys, now, amount)
            except Exception as exc:  # a background task must not raise
                logger().warning("budget.not_shared", error=type(exc).__name__)

        spawn(share, "dispatchline-budget")

    def _refusal(
        self, request: Request, key: str, ledger: Ledger, now: float
    ) -> errors.BudgetExceededError:
        spent = ledger.spent(now)
        resets_at = ledger.resets_at(now, self._limit)
        when = datetime.fromtimestamp(resets_at, UTC).isoformat(timespec="seconds")
        return errors.BudgetExceededError(
            f"budget for {key} is spent: ${spent:.6g} of ${self._limit:.6g} "
            f"(period {self._period!r}); spending resumes at {when}",
            scope=key,
            spent=spent,
            limit=self._limit,
            resets_at=resets_at,
            retry_after=max(0.0, resets_at - now),
            provider=request.provider,
            model=request.model,
        )


class _StreamSpend:
    """Counts a stream's cost once it ends, however it ends."""

    __slots__ = ("_budget", "_keys", "_stream")

    def __init__(self, budget: Budget, keys: Keys, stream: Stream[Any]) -> None:
        self._budget = budget
        self._keys = keys
        self._stream = stream

    def on_end(self, completed: bool) -> None:
        self._budget._spend_later(self._keys, self._stream.cost, complete=completed)

    def on_error(self, exc: BaseException) -> None:
        self._budget._spend_later(self._keys, self._stream.cost, complete=False)
