"""The path a request took, as Retry, Fallback and Router record it on results and errors."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline import Attempt, Request, Result, errors


def attempts_of(request: Request, outcome: Result | Exception) -> tuple[Attempt, ...]:
    """The tries behind one call of ``call_next``: those an inner layer recorded,
    else one :class:`Attempt` at ``request``'s target (the error's class name,
    or None for a success; the router's deployment name when it chose one)."""
    recorded: tuple[Attempt, ...] = getattr(outcome, "attempts", ())
    if recorded:
        return tuple(recorded)
    error = type(outcome).__name__ if isinstance(outcome, Exception) else None
    deployment = getattr(request.options.get("deployment"), "name", None)
    return (Attempt(request.provider, request.model, error, deployment),)


def record(outcome: Result | Exception, path: Sequence[Attempt]) -> None:
    """Store ``path`` on a result, or on an error that can carry it (a
    :class:`errors.DispatchError`; a foreign exception is left untouched)."""
    if isinstance(outcome, Exception) and not isinstance(outcome, errors.DispatchError):
        return
    outcome.attempts = tuple(path)
