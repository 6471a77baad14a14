"""One routed request's bookkeeping: its progress, the refusals met, the path
taken, and the error it ends with when no deployment answers."""

from __future__ import annotations

import attrs

from middlewares._attempts import record
from middlewares.router._breaker import NO_CAPACITY, CircuitBreaker, calls_for_failover
from middlewares.router._deployments import Deployment, Group
from middlewares.router._strategies import Context
from middlewares.state import Grant, Policy
from pipeline import Attempt, Request, Result, errors

__all__ = ["ROUTED", "Refusal", "Run", "attempts_at", "failed_on", "failure", "policy_for"]

# The provider a routed request carries until the router picks its deployment:
# a request for "chat-fast" is built as router/chat-fast, and "router/chat-fast"
# also names the group (a Fallback alternative can point at a group that way).
ROUTED = "router"


@attrs.define
class Refusal:
    """No deployment could take the request now: the earliest retry, and why."""

    retry_after: float | None = None
    reasons: list[str] = attrs.Factory(list)
    capacity: bool = False  # some deployment was refused for capacity (not only too small)

    def refused(self, name: str, grant: Grant) -> None:
        self.capacity = True
        self.reasons.append(f"{name}: {grant.reason}")
        after = grant.retry_after
        if after is not None and (self.retry_after is None or after < self.retry_after):
            self.retry_after = after


class Run:
    """One request's progress through its group."""

    __slots__ = ("context", "excluded", "failures", "floor", "group", "path", "request")

    def __init__(self, group: Group, request: Request, context: Context) -> None:
        self.group = group
        self.request = request
        self.context = context
        self.excluded: set[str] = set()
        self.path: list[Attempt] = []
        self.failures: list[Exception] = []
        self.floor = 0  # after a context-window error: only larger windows


def failed_on(run: Run, deployment: Deployment, exc: Exception) -> None:
    run.excluded.add(deployment.name or deployment.target)
    run.failures.append(exc)
    run.path.extend(attempts_at(deployment, exc))
    window = deployment.max_input_tokens
    if isinstance(exc, errors.ContextWindowExceededError) and window is not None:
        run.floor = max(run.floor, window)


def failure(run: Run, refusal: Refusal) -> errors.DispatchError:
    failures, group = run.failures, run.group.name
    first = failures[0] if failures else None
    if isinstance(first, errors.DispatchError) and (
        len(failures) == 1
        # A request no deployment would take as written: the first says why.
        or all(isinstance(f, errors.InvalidRequestError) for f in failures)
    ):
        record(first, run.path)
        return first
    if failures:
        each = "; ".join(f"{a.deployment}: {a.error}" for a in run.path if a.error is not None)
        exhausted = calls_for_failover(failures[-1])
        error: errors.DispatchError = errors.FallbackError(
            f"every deployment tried for {group!r} failed: {each}"
            if exhausted
            else f"failover in {group!r} stopped: {each}",
            failures,
            provider=ROUTED,
            model=group,
            # The group is spent, not the request: an outer Fallback moves on.
            retryable=exhausted,
        )
    elif refusal.capacity:
        error = errors.RateLimitError(
            f"no deployment of {group!r} has capacity ({'; '.join(refusal.reasons)})",
            provider=ROUTED,
            model=group,
            retry_after=refusal.retry_after,
            code=NO_CAPACITY,
        )
    else:
        error = errors.ContextWindowExceededError(
            f"a prompt of about {run.context.tokens.prompt} tokens fits no deployment "
            f"of {group!r} ({'; '.join(refusal.reasons)})",
            provider=ROUTED,
            model=group,
        )
    error.attempts = tuple(run.path)
    return error


def attempts_at(deployment: Deployment, outcome: Result | Exception) -> tuple[Attempt, ...]:
    """The tries behind one call to ``deployment``: those an inner layer (Retry)
    recorded, else one :class:`Attempt` naming the deployment."""
    recorded: tuple[Attempt, ...] = getattr(outcome, "attempts", ())
    if recorded:
        return tuple(recorded)
    error = type(outcome).__name__ if isinstance(outcome, Exception) else None
    return (Attempt(deployment.provider, deployment.model, error, deployment.name),)


def policy_for(deployment: Deployment, breaker: CircuitBreaker | None, decay: float) -> Policy:
    return Policy(
        rpm=deployment.rpm,
        tpm=deployment.tpm,
        max_concurrency=deployment.max_concurrency,
        min_requests=breaker.min_requests if breaker is not None else 0,
        failure_ratio=breaker.failure_ratio if breaker is not None else 1.0,
        cooldown=breaker.cooldown if breaker is not None else 0.0,
        breaker_window=breaker.window if breaker is not None else 60.0,
        decay=decay,
    )
