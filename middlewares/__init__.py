"""The standard middlewares, each an ``async (request, call_next)`` callable.

Any of them works alone or in any custom stack; :func:`default_stack` gives
the recommended order, outermost first::

    Logging -> Telemetry -> Stats -> Callbacks -> Cache -> Fallback -> Router -> Budget(s)
            -> Costs -> Retry -> ErrorMapping -> terminal
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from middlewares.cache import Cache, MemoryCache
from middlewares.callbacks import Callbacks
from middlewares.error_mapping import ErrorMapping
from middlewares.fallback import Alternative, Fallback
from middlewares.request_logging import Logging
from middlewares.retry import Retry, RetryBudget
from pipeline import Middleware

if TYPE_CHECKING:
    from middlewares.router import CircuitBreaker, Deployment, Hedge, Router, RoutingRule
    from middlewares.usage import Budget, Costs, Stats, Telemetry

__all__ = [
    "Budget",
    "Cache",
    "Callbacks",
    "CircuitBreaker",
    "Costs",
    "Deployment",
    "ErrorMapping",
    "Fallback",
    "Hedge",
    "Logging",
    "MemoryCache",
    "Retry",
    "RetryBudget",
    "Router",
    "RoutingRule",
    "Stats",
    "Telemetry",
    "default_stack",
]

# The usage layers (middlewares.usage) and the router (middlewares.router) are
# imported on first use: ``import middlewares`` stays as cheap as it was without them.
_LAZY = {
    **dict.fromkeys(("Budget", "Costs", "Stats", "Telemetry"), "middlewares.usage"),
    **dict.fromkeys(
        ("CircuitBreaker", "Deployment", "Hedge", "Router", "RoutingRule"), "middlewares.router"
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'middlewares' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def default_stack(
    *,
    logging: Logging | bool = True,
    telemetry: Telemetry | bool | None = None,
    stats: Stats | None = None,
    callbacks: Callbacks | None = None,
    cache: Cache | bool = True,
    fallbacks: Fallback | Sequence[Alternative] = (),
    router: Router | None = None,
    budgets: Sequence[Budget] = (),
    costs: Costs | bool | None = None,
    retry: Retry | bool = True,
) -> list[Middleware]:
    """The recommended middlewares, outermost first.

    Each option takes an instance (used as given), ``True`` (the standard one
    with its defaults) or ``False`` (left out). Callbacks and Fallback have no
    useful default, so they are in the stack only when given: ``callbacks=
    Callbacks(on_success=...)``, ``fallbacks=["anthropic/claude-3-5-haiku-latest"]``;
    so is a ``router=Router(...)``, between Fallback and the budgets (the README's
    "Routing" section says why there).
    ErrorMapping is always there, innermost: the layers outside it rely on
    unified errors.

    Usage (README, "Usage"): ``telemetry=`` (``True`` for the global
    OpenTelemetry providers), ``stats=Stats()``, ``budgets=[Budget(...)]``
    and ``costs=`` (``True`` or ``Costs()``). Budgets count each reply's
    cost, so when budgets are given without ``costs``, a ``Costs()`` is
    added for them. Telemetry and Stats sit outside Fallback (a request
    counts once, however many tries it took); Cache outside Budget (a hit
    spends nothing); Costs inside Budget (its cost is known when Budget
    counts) and outside Retry.
    """
    usage: Any = None
    if telemetry or stats or budgets or costs:
        usage = importlib.import_module("middlewares.usage")
        if not isinstance(budgets, Sequence) or not all(
            isinstance(b, usage.Budget) for b in budgets
        ):
            raise TypeError(f"budgets is a list of Budget, got {budgets!r}")
        if budgets and costs is None:
            costs = True
    stack: list[Middleware | None] = [
        Logging() if logging is True else logging or None,
        usage.Telemetry() if telemetry is True else telemetry or None,
        stats,
        callbacks,
        Cache() if cache is True else cache or None,
        fallbacks
        if isinstance(fallbacks, Fallback)
        else Fallback(fallbacks)
        if fallbacks
        else None,
        router,
        *budgets,
        usage.Costs() if costs is True else costs or None,
        Retry() if retry is True else retry or None,
        ErrorMapping(),
    ]
    return [layer for layer in stack if layer is not None]
