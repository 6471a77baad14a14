"""``[middlewares]``' usage layers: statistics, costs, budgets, OpenTelemetry.

::

    [middlewares]
    stats = true          # Stats: /api/v1/stats and /metrics ([stats]; [prometheus])
    costs = true          # Costs: response.cost from genai-prices ([prices])
    telemetry = true      # Telemetry, through the globally configured OpenTelemetry
                          # providers ([otel]); without an SDK set up it costs ~nothing

    [[middlewares.budgets]]
    limit_usd = 25.0
    period = "day"        # "hour", "day", "month" (UTC), or seconds (a rolling window)
    scope = "provider"    # "provider", "model", "deployment" or "tag"

All four are off unless written here, except Costs, which is on whenever
something counts costs: a budget here, or a virtual key with a ``budget``
(``costs = false`` with either is an error, as a budget that never counts
would be). Each layer is built once while the file is read, so a missing
extra or a bad value is an error naming the file, line and key.

Stats and every budget keep their counts across a reload while their own
settings are unchanged (a budget's limit, period and scope): a reload that
edits something else neither resets statistics nor restarts spending from
zero. A changed or new budget starts from zero.

With ``[redis]`` sharing them (``share`` holds ``"stats"``, ``"budgets"``),
statistics and spend are every worker's (see :mod:`gateway._redis`): a
budget's spend then lives in Redis by its period and scope, so a reload
that changes its limit keeps what was spent.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import attrs

from gateway._auth import PERIODS
from gateway._reader import Table

if TYPE_CHECKING:
    from gateway._redis import RedisLink
    from middlewares.usage._periods import Period

__all__ = ["Fresh", "Kept", "read_usage"]

SCOPES = ("provider", "model", "deployment", "tag")  # Budget's named scopes


@attrs.frozen
class Fresh:
    """An option built anew for every pipeline (a reload never shares a middleware)."""

    factory: Callable[[], Any]


@attrs.frozen
class Kept:
    """An option whose instance the next pipeline reuses while ``key`` (its
    settings) is unchanged: its counts survive a reload."""

    key: Hashable
    factory: Callable[[], Any]


def _built(table: Table, key: str, factory: Callable[[], Any], why: str = "") -> None:
    """Build the layer once now: a missing extra or a value it refuses is a config error."""
    try:
        factory()
    except (ImportError, TypeError, ValueError) as exc:  # MissingExtraError names the extra
        raise table.error(key, why + str(exc)) from exc


def _layer(table: Table, key: str, factory: Callable[[], Any]) -> bool:
    on: bool = table.flag(key, False)
    if on:
        _built(table, key, factory)
    return on


def _period(table: Table) -> Period:
    value = table.raw("period", "day")
    if isinstance(value, str):
        if value not in PERIODS:
            raise table.error("period", f"expected one of {', '.join(PERIODS)} or seconds")
        return cast("Period", value)
    seconds: float = table.number("period")
    return seconds


def _budgets(table: Table, redis: RedisLink | None) -> list[Kept]:
    from middlewares import Budget

    shared = redis if redis is not None and redis.shares("budgets") else None
    found: list[Kept] = []
    for entry in table.tables("budgets"):
        limit = entry.number("limit_usd")
        period = _period(entry)
        scope = entry.text("scope", "provider")
        if scope not in SCOPES:
            raise entry.error("scope", f"expected one of {', '.join(SCOPES)}")
        entry.done()
        factory: Callable[..., Any] = partial(Budget, limit, period, scope)
        _built(entry, "", factory)
        key: tuple[Any, ...] = ("budget", limit, period, scope)
        if shared is not None:
            factory = _on_redis(factory, shared)
            key += (shared.key,)
        if any(kept.key == key for kept in found):
            raise entry.error("", "the same budget is given twice")
        found.append(Kept(key, factory))
    return found


def _on_redis(factory: Callable[..., Any], redis: RedisLink) -> Callable[[], Any]:
    """``factory`` with ``redis=`` and ``prefix=`` from ``[redis]`` (asked at each build)."""
    return lambda: factory(redis=redis.redis, prefix=redis.settings.prefix)


def read_usage(
    table: Table, budgeted_keys: Sequence[str], redis: RedisLink | None = None
) -> Mapping[str, Any]:
    """``stats``, ``costs``, ``telemetry`` and ``[[budgets]]`` of ``[middlewares]``
    -> keyword arguments for ``Pipeline.default``."""
    from middlewares import Costs, Stats, Telemetry

    options: dict[str, Any] = {}
    if _layer(table, "stats", Stats):
        if redis is not None and redis.shares("stats"):
            options["stats"] = Kept(("stats", redis.key), _on_redis(Stats, redis))
        else:
            options["stats"] = Kept(("stats",), Stats)
    if _layer(table, "telemetry", Telemetry):
        options["telemetry"] = Fresh(Telemetry)
    budgets = _budgets(table, redis)
    if budgets:
        options["budgets"] = budgets
    costs = table.flag("costs", None)
    counted_by = "[[middlewares.budgets]]" if budgets else None
    if counted_by is None and budgeted_keys:
        counted_by = f"the budget of the virtual key {budgeted_keys[0]!r}"
    if costs is False and counted_by is not None:
        raise table.error("costs", f"is false, but {counted_by} counts each reply's cost")
    if costs or counted_by is not None:
        _built(table, "costs", Costs, "" if costs else f"needed by {counted_by}: ")
        options["costs"] = Fresh(Costs)
    return options
