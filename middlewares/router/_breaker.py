"""The circuit breaker's policy, and which outcomes count for it and call for failover.

The mechanism (counting, opening, the half-open probe) is the State's, so a
shared State applies it atomically; see :mod:`middlewares.state`.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import httpx

from middlewares.state import Outcome
from pipeline import errors

__all__ = ["NO_CAPACITY", "SKIPPED", "CircuitBreaker", "calls_for_failover", "outcome_of"]

# The ``code`` of the router's own RateLimitError ("no deployment has capacity").
NO_CAPACITY = "router_no_capacity"

# Failures that count against a deployment: it (or the way to it) is unhealthy,
# or another deployment may hold a valid key or model.
_COUNTED = (
    errors.RateLimitError,
    errors.InternalServerError,
    errors.APIConnectionError,
    errors.AuthenticationError,
    errors.PermissionDeniedError,
    errors.NotFoundError,
    errors.ProviderResponseError,
)
# Errors before any I/O that say "not this deployment" (a budget spent, a provider
# unknown, an endpoint or a parameter it cannot do): move on, count nothing.
SKIPPED = (
    errors.BudgetExceededError,
    errors.ProviderNotFoundError,
    errors.UnsupportedEndpointError,
    errors.InvalidRequestError,
)

# Not counted against the deployment, yet worth another one.
_FAILOVER_TOO = (*SKIPPED, errors.RateLimitError, errors.ContextWindowExceededError)


def _number(name: str, *, positive: bool = True) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (value <= 0 if positive else value < 0):  # type: ignore[operator]
            raise ValueError(f"CircuitBreaker {name} must be a finite number > 0, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class CircuitBreaker:
    """When a deployment is taken out of rotation, and for how long.

    It opens once its last ``window`` seconds hold at least ``min_requests``
    counted outcomes of which at least ``failure_ratio`` failed, for
    ``cooldown`` seconds or the provider's ``retry_after``, whichever is
    longer; a failure while open moves the reopening to the later deadline,
    never earlier. Then one probe goes through (half-open): its success closes
    the breaker, its failure opens it again.

    Counted failures: retryable errors (429, 5xx), connection errors and
    timeouts, 401/403/404, and bodies that cannot be parsed. Not counted: bad
    requests (context window, content policy included), cancellations,
    budget refusals and the router's own errors.
    """

    min_requests: int = 5
    failure_ratio: float = attrs.field(default=0.5, validator=_number("failure_ratio"))
    cooldown: float = attrs.field(default=30.0, validator=_number("cooldown"))
    window: float = attrs.field(default=60.0, validator=_number("window"))

    def __attrs_post_init__(self) -> None:
        count = self.min_requests
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"CircuitBreaker min_requests must be an int >= 1, got {count!r}")
        if self.failure_ratio > 1:
            raise ValueError(
                f"CircuitBreaker failure_ratio is at most 1, got {self.failure_ratio!r}"
            )


def outcome_of(exc: BaseException) -> Outcome:
    """How an exception from a deployment counts for its breaker."""
    if isinstance(exc, errors.DispatchError):
        if getattr(exc, "code", None) == NO_CAPACITY or isinstance(exc, SKIPPED):
            return "ignored"
        if exc.retryable or isinstance(exc, _COUNTED):
            return "failure"
        return "ignored"
    if isinstance(exc, httpx.TransportError):  # raw, when no ErrorMapping is inside
        return "failure"
    return "ignored"


def calls_for_failover(exc: BaseException) -> bool:
    """Whether another deployment of the group should be tried after ``exc``."""
    if not isinstance(exc, errors.DispatchError):
        return isinstance(exc, httpx.TransportError)
    return outcome_of(exc) == "failure" or isinstance(exc, _FAILOVER_TOO)
