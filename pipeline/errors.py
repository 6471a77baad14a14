"""The unified exception hierarchy.

Every error dispatchline raises is a :class:`DispatchError`::

    DispatchError
    ├── ProviderNotFoundError          unknown provider (before any I/O)
    ├── UnsupportedEndpointError       provider lacks the endpoint (before any I/O)
    ├── InvalidRequestError            bad input found before any I/O
    ├── SyncInEventLoopError           a sync call made inside a running event loop
    ├── PipelineClosedError            the pipeline was used after it was closed
    ├── BudgetExceededError            a spending budget is used up (before any I/O)
    ├── ProviderResponseError          a provider body the adapter cannot parse
    ├── APIConnectionError             transport failure (retryable)
    │   └── TimeoutError               no answer in time (retryable): a transport timeout,
    │                                  the per-call ``timeout=`` deadline, or HTTP 408
    ├── APIStatusError                 the provider answered with an error status
    │   ├── BadRequestError            400 / 422
    │   │   ├── ContextWindowExceededError
    │   │   └── ContentPolicyViolationError
    │   ├── AuthenticationError        401 (and Gemini's 400 API_KEY_INVALID)
    │   ├── PermissionDeniedError      403
    │   ├── NotFoundError              404
    │   ├── RateLimitError             429 (retryable)
    │   └── InternalServerError        5xx (retryable)
    │       └── ServiceUnavailableError   503, Anthropic's 529 overloaded (retryable)
    └── FallbackError                  every alternative failed; also an ExceptionGroup

Every error carries ``provider``, ``model``, ``status_code`` (or None),
``retryable``, ``retry_after`` (seconds or None), ``request_id`` (the
provider's, where given), ``code`` (the provider's error code) and
``attempts`` (every try the request took, as :class:`pipeline.Attempt`).
Messages are scrubbed of secrets before they are stored: no API key ever
appears in ``str(error)`` or ``repr(error)``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, ClassVar

from pipeline._responses import Attempt
from pipeline._secrets import scrub

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "DispatchError",
    "FallbackError",
    "InternalServerError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "PipelineClosedError",
    "ProviderNotFoundError",
    "ProviderResponseError",
    "RateLimitError",
    "ServiceUnavailableError",
    "SyncInEventLoopError",
    "TimeoutError",
    "UnsupportedEndpointError",
    "error_class_for_status",
]


class DispatchError(Exception):
    """Root of every error dispatchline raises."""

    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        code: str | None = None,
        secrets: Sequence[str | None] = (),
    ) -> None:
        self._message = scrub(message, secrets)
        super().__init__(self._message)
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.request_id = request_id
        self.code = code
        # Every try the request took before this error (Retry and Fallback fill it in).
        self.attempts: tuple[Attempt, ...] = ()

    def redact(self, secrets: Sequence[str | None]) -> None:
        """Remove more secrets from the message (the terminal passes the
        credentials it actually sent, wherever they came from)."""
        self._message = scrub(self._message, secrets)
        self.args = (self._message, *self.args[1:])

    @property
    def message(self) -> str:
        """The provider's (or our) explanation, scrubbed of secrets."""
        return self._message

    def __str__(self) -> str:
        where = "/".join(part for part in (self.provider, self.model) if part)
        status = f" [{self.status_code}]" if self.status_code is not None else ""
        return f"{where}{status}: {self.message}" if where else f"{self.message}{status}"

    def __repr__(self) -> str:
        fields: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "status_code": self.status_code,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "request_id": self.request_id,
        }
        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items() if v is not None)
        return f"{type(self).__name__}({self.message!r}{', ' if shown else ''}{shown})"


class ProviderNotFoundError(DispatchError):
    """No provider of that name is registered."""


class UnsupportedEndpointError(DispatchError):
    """The provider is registered but does not offer this endpoint."""


class InvalidRequestError(DispatchError):
    """The input is malformed; found before any I/O."""


class SyncInEventLoopError(DispatchError):
    """A blocking (sync) call was made from inside a running event loop."""


class PipelineClosedError(DispatchError, RuntimeError):
    """The pipeline was closed (``aclose``, ``close``, the end of its ``with``
    block) and then used; like httpx's closed client, it does not reopen."""


class BudgetExceededError(DispatchError):
    """A :class:`middlewares.Budget` has spent its limit for this period; raised before I/O.

    ``scope`` names what the budget was counting (``"provider:openai"``,
    ``"deployment:east"``...), ``spent`` and ``limit`` are USD, ``resets_at``
    is when spending is allowed again (Unix time, seconds), and
    ``retry_after`` the seconds until then. Inside a Router it means "skip
    this deployment", never a deployment failure.
    """

    def __init__(
        self,
        message: str,
        *,
        scope: str,
        spent: float,
        limit: float,
        resets_at: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.scope = scope
        self.spent = spent
        self.limit = limit
        self.resets_at = resets_at


class ProviderResponseError(DispatchError):
    """The provider's body could not be parsed into a response."""


class APIConnectionError(DispatchError):
    """The request could not reach the provider, or the connection broke."""

    default_retryable = True


class TimeoutError(APIConnectionError, builtins.TimeoutError):
    """The provider did not answer in time: a transport timeout, the request's
    deadline (``timeout=``: each attempt end to end, and each wait for a stream
    chunk), or the provider's own HTTP 408 (then ``status_code`` is 408). All
    of them are retryable and the same class, wherever the time ran out."""


class APIStatusError(DispatchError):
    """The provider answered with an error status."""


class BadRequestError(APIStatusError):
    """400 or 422: the provider rejected the request."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus max tokens) does not fit the model's context window."""


class ContentPolicyViolationError(BadRequestError):
    """The provider's content filter refused the prompt or the reply."""


class AuthenticationError(APIStatusError):
    """401, or no API key at all (raised before I/O, naming the variable to set)."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404: unknown model, deployment or route."""


class RateLimitError(APIStatusError):
    """429."""

    default_retryable = True


class InternalServerError(APIStatusError):
    """5xx."""

    default_retryable = True


class ServiceUnavailableError(InternalServerError):
    """503, or Anthropic's 529 overloaded."""


class FallbackError(DispatchError, ExceptionGroup):
    """Every alternative failed; ``exceptions`` holds each attempt's error, in order."""

    def __new__(cls, message: str, exceptions: Sequence[Exception], **kwargs: Any) -> FallbackError:
        return super().__new__(cls, message, exceptions)

    def __init__(self, message: str, exceptions: Sequence[Exception], **kwargs: Any) -> None:
        DispatchError.__init__(self, message, **kwargs)

    def derive(self, excs: Sequence[Exception]) -> FallbackError:  # type: ignore[override]
        return FallbackError(self.message, excs, provider=self.provider, model=self.model)

    def __str__(self) -> str:
        return f"{DispatchError.__str__(self)} ({len(self.exceptions)} attempts)"


_BY_STATUS: dict[int, type[DispatchError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: TimeoutError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    529: ServiceUnavailableError,
}


def error_class_for_status(status: int) -> type[DispatchError]:
    """The most specific class for an HTTP status; unknown 5xx are server errors."""
    found = _BY_STATUS.get(status)
    if found is not None:
        return found
    return InternalServerError if status >= 500 else APIStatusError
