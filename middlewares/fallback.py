"""Fallback: ordered alternatives, tried when an error calls for another provider or model.

::

    Fallback(["anthropic/claude-3-5-haiku-latest", to_azure])

An alternative is a ``"provider/model"`` string (split on the first ``/``) or
a callable ``request -> request`` that evolves the original request. Each
alternative is derived from the ORIGINAL request, never from the previous one.

- Which errors move on to the next alternative: by default those that are
  retryable (rate limits, 5xx, timeouts, connection errors),
  :class:`errors.ContextWindowExceededError`,
  :class:`errors.ServiceUnavailableError`, every
  :class:`errors.RateLimitError` (an exhausted quota is not worth a retry,
  but is worth another provider) and :class:`errors.BudgetExceededError`
  (likewise, a spent budget); pass ``should_fallback`` to
  decide otherwise. Authentication, permission and invalid-request errors
  stop the chain by default. The same rule applies to every alternative's
  error: one that does not call for fallback ends the chain there.
- An alternative the pipeline cannot route (unknown provider, endpoint not
  offered) is skipped: its :class:`errors.ProviderNotFoundError` or
  :class:`errors.UnsupportedEndpointError` is kept among the failures and
  the next alternative is tried.
- Credentials: a per-call ``api_key``, ``api_base`` or ``api_version``
  belongs to the provider it was given for. A string alternative naming
  another provider clears all three, so the alternative uses its own
  configured key. A callable alternative may set its own; if it moves to
  another provider, any of the three it left equal to the original's is
  cleared as carried over.
- A stream counts as answered once ``call_next`` returns it (its first chunk
  has arrived): an error while iterating it reaches the caller, no fallback.
- The primary failing with an error that does not call for fallback is raised
  as is. Otherwise, when the chain ends without a success, an
  :class:`errors.FallbackError` (a DispatchError and an ExceptionGroup) holds
  every failure in order; its provider/model are the original request's.
- The path taken is recorded in ``attempts`` (of the response, or of the
  raised error): each try in order, including retries recorded by a Retry
  inside this layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import attrs

from middlewares._attempts import attempts_of, record
from pipeline import Attempt, Handler, Request, Result, errors

__all__ = ["Alternative", "Fallback", "calls_for_fallback"]

Alternative = str | Callable[[Request], Request]
FallbackPredicate = Callable[[Exception], bool]

_CREDENTIALS = ("api_key", "api_base", "api_version")
_UNROUTABLE = (errors.ProviderNotFoundError, errors.UnsupportedEndpointError)
# Worth another provider even when not worth a retry (an exhausted quota, x-should-retry: false).
_ALWAYS = (
    errors.ContextWindowExceededError,
    errors.ServiceUnavailableError,
    errors.RateLimitError,
    errors.BudgetExceededError,
)


def calls_for_fallback(exc: Exception) -> bool:
    """The default ``should_fallback``: retryable errors, context window exceeded,
    service unavailable, any rate limit (an exhausted quota too) and a spent budget."""
    return isinstance(exc, errors.DispatchError) and (exc.retryable or isinstance(exc, _ALWAYS))


def _target(alternative: str) -> tuple[str, str]:
    provider, _, model = alternative.partition("/")
    if not provider or not model:
        raise ValueError(f"a fallback alternative must be 'provider/model', got {alternative!r}")
    return provider, model


def _to_target(request: Request, provider: str, model: str) -> Request:
    if provider == request.provider:
        return attrs.evolve(request, model=model)
    return attrs.evolve(
        request, provider=provider, model=model, api_key=None, api_base=None, api_version=None
    )


def _evolved_by(request: Request, alternative: Callable[[Request], Request]) -> Request:
    evolved = alternative(request)
    if not isinstance(evolved, Request):
        raise TypeError(f"fallback alternative {alternative!r} returned {evolved!r}, not a Request")
    if evolved.provider == request.provider:
        return evolved
    carried: dict[str, Any] = {
        name: None
        for name in _CREDENTIALS
        if getattr(evolved, name) is not None and getattr(evolved, name) == getattr(request, name)
    }
    return attrs.evolve(evolved, **carried) if carried else evolved


def _describe(option: object) -> str:
    if isinstance(option, str):
        return repr(option)
    return getattr(option, "__qualname__", None) or repr(option)


class Fallback:
    """Tries ``alternatives`` in order after a failure; see the module docstring."""

    __slots__ = ("_alternatives", "_should_fallback", "_steps")

    def __init__(
        self,
        alternatives: Sequence[Alternative],
        *,
        should_fallback: FallbackPredicate = calls_for_fallback,
    ) -> None:
        if isinstance(alternatives, str):
            raise TypeError("alternatives is a list: Fallback(['provider/model', ...])")
        steps: list[Callable[[Request], Request]] = []
        for alternative in alternatives:
            if isinstance(alternative, str):
                provider, model = _target(alternative)
                steps.append(partial(_to_target, provider=provider, model=model))
            elif callable(alternative):
                steps.append(partial(_evolved_by, alternative=alternative))
            else:
                raise TypeError(
                    f"a fallback alternative is a 'provider/model' string or a callable, "
                    f"got {alternative!r}"
                )
        if not steps:
            raise ValueError("Fallback needs at least one alternative")
        self._alternatives = tuple(alternatives)
        self._steps = tuple(steps)
        self._should_fallback = should_fallback

    def __repr__(self) -> str:
        shown = f"[{', '.join(_describe(a) for a in self._alternatives)}]"
        if self._should_fallback is not calls_for_fallback:
            shown += f", should_fallback={_describe(self._should_fallback)}"
        return f"Fallback({shown})"

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        path: list[Attempt] = []
        failures: list[Exception] = []
        tried: list[Request] = []
        candidate = request
        for step in (None, *self._steps):
            if step is not None:
                candidate = step(request)
            try:
                result = await call_next(candidate)
            except Exception as exc:
                error = exc
            else:
                path.extend(attempts_of(candidate, result))
                record(result, path)
                return result
            path.extend(attempts_of(candidate, error))
            failures.append(error)
            tried.append(candidate)
            if step is not None and isinstance(error, _UNROUTABLE):
                continue
            if not self._should_fallback(error):
                break
        if len(failures) == 1:
            record(failures[0], path)
            raise failures[0]
        raise self._failed(request, tried, failures, path)

    def _failed(
        self,
        request: Request,
        tried: Sequence[Request],
        failures: Sequence[Exception],
        path: Sequence[Attempt],
    ) -> errors.FallbackError:
        exhausted = len(failures) == len(self._steps) + 1
        outcome = "every alternative failed" if exhausted else "fallback stopped"
        each = "; ".join(
            f"{r.target}: {type(e).__name__}" for r, e in zip(tried, failures, strict=True)
        )
        group = errors.FallbackError(
            f"{outcome}: {each}",
            failures,
            provider=request.provider,
            model=request.model,
            secrets=request.secrets(),
        )
        group.attempts = tuple(path)
        return group
