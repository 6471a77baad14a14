"""The standard middlewares, each an ``async (request, call_next)`` callable.

Any of them works alone or in any custom stack; :func:`default_stack` gives
the recommended order, outermost first::

    Logging -> Callbacks -> Cache -> Fallback -> Router -> Retry -> ErrorMapping -> terminal
"""

from __future__ import annotations

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

__all__ = [
    "Cache",
    "Callbacks",
    "CircuitBreaker",
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
    "default_stack",
]

# The router's names load on first use: `import middlewares` stays as quick as it was.
_ROUTING = frozenset({"CircuitBreaker", "Deployment", "Hedge", "Router", "RoutingRule"})


def __getattr__(name: str) -> Any:
    if name in _ROUTING:
        from middlewares import router

        return getattr(router, name)
    raise AttributeError(f"module 'middlewares' has no attribute {name!r}")


def default_stack(
    *,
    logging: Logging | bool = True,
    callbacks: Callbacks | None = None,
    cache: Cache | bool = True,
    fallbacks: Fallback | Sequence[Alternative] = (),
    router: Router | None = None,
    retry: Retry | bool = True,
) -> list[Middleware]:
    """The recommended middlewares, outermost first.

    Each option takes an instance (used as given), ``True`` (the standard one
    with its defaults) or ``False`` (left out). Callbacks and Fallback have no
    useful default, so they are in the stack only when given: ``callbacks=
    Callbacks(on_success=...)``, ``fallbacks=["anthropic/claude-3-5-haiku-latest"]``;
    so is a ``router=Router(...)``, between Fallback and Retry (the README's
    "Routing" section says why there).
    ErrorMapping is always there, innermost: the layers outside it rely on
    unified errors.
    """
    stack: list[Middleware | None] = [
        Logging() if logging is True else logging or None,
        callbacks,
        Cache() if cache is True else cache or None,
        fallbacks
        if isinstance(fallbacks, Fallback)
        else Fallback(fallbacks)
        if fallbacks
        else None,
        router,
        Retry() if retry is True else retry or None,
        ErrorMapping(),
    ]
    return [layer for layer in stack if layer is not None]
