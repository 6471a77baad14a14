"""Errors as OpenAI answers them: ``{"error": {"message", "type", "param", "code"}}``.

Each :class:`pipeline.errors.DispatchError` class has the status that makes
the openai SDK raise the matching exception (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 409/422
as given by the provider, 429 RateLimitError, 5xx InternalServerError). The
class is looked up along its MRO, so a subclass the table does not name
(a provider's own) gets its parent's answer. ``retry-after`` and
``retry-after-ms`` come from the error's ``retry_after``; ``x-should-retry:
false`` is sent when a retry cannot help. Messages are the errors' own,
already scrubbed of secrets; anything that is not a DispatchError is a
generic 500 that says nothing about the gateway's insides.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import structlog

from pipeline import errors


@attrs.frozen
class Shape:
    status: int
    type: str
    code: str


# Most specific first is not needed: the lookup walks each error's MRO.
_SHAPES: dict[type[BaseException], Shape] = {
    errors.InvalidRequestError: Shape(400, "invalid_request_error", "invalid_request"),
    errors.UnsupportedEndpointError: Shape(400, "invalid_request_error", "unsupported_endpoint"),
    errors.ProviderNotFoundError: Shape(404, "invalid_request_error", "model_not_found"),
    errors.BadRequestError: Shape(400, "invalid_request_error", "bad_request"),
    errors.ContextWindowExceededError: Shape(
        400, "invalid_request_error", "context_length_exceeded"
    ),
    errors.ContentPolicyViolationError: Shape(
        400, "invalid_request_error", "content_policy_violation"
    ),
    errors.AuthenticationError: Shape(401, "authentication_error", "invalid_api_key"),
    errors.PermissionDeniedError: Shape(403, "permission_error", "permission_denied"),
    errors.NotFoundError: Shape(404, "not_found_error", "model_not_found"),
    errors.RateLimitError: Shape(429, "rate_limit_error", "rate_limit_exceeded"),
    errors.InternalServerError: Shape(502, "server_error", "upstream_error"),
    errors.ServiceUnavailableError: Shape(503, "server_error", "service_unavailable"),
    errors.APIConnectionError: Shape(502, "server_error", "upstream_connection_error"),
    errors.TimeoutError: Shape(504, "server_error", "upstream_timeout"),
    errors.ProviderResponseError: Shape(502, "server_error", "bad_upstream_response"),
    errors.APIStatusError: Shape(502, "server_error", "upstream_error"),
    errors.DispatchError: Shape(500, "server_error", "internal_error"),
}
_BUDGET = getattr(errors, "BudgetExceededError", None)
if _BUDGET is not None:
    _SHAPES[_BUDGET] = Shape(429, "insufficient_quota", "budget_exceeded")

INTERNAL = Shape(500, "server_error", "internal_error")


def _shape(exc: BaseException) -> Shape:
    for cls in type(exc).__mro__:
        found = _SHAPES.get(cls)
        if found is not None:
            return found
    return INTERNAL


def _innermost(exc: errors.DispatchError) -> errors.DispatchError:
    """A FallbackError answers as its last attempt failed (the most recent cause)."""
    while isinstance(exc, errors.FallbackError) and exc.exceptions:
        last = exc.exceptions[-1]
        if not isinstance(last, errors.DispatchError):
            break
        exc = last
    return exc


@attrs.frozen
class ErrorAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def answer(exc: BaseException) -> ErrorAnswer:
    """The status, OpenAI error body and headers for ``exc``."""
    if not isinstance(exc, errors.DispatchError):
        structlog.get_logger("dispatchline.gateway").error(
            "gateway.internal_error", error=type(exc).__name__, exc_info=exc
        )
        return ErrorAnswer(500, body("internal error", INTERNAL.type, INTERNAL.code), {})
    cause = _innermost(exc)
    shape = _shape(cause)
    status = shape.status
    given = getattr(cause, "status_code", None)
    # A provider's own 409 or 422 passes through: the SDK has a class for each.
    if isinstance(cause, errors.APIStatusError) and given in (409, 422):
        status = given
    code = getattr(cause, "code", None) or shape.code
    message = exc.message
    if cause is not exc:
        message = f"{message}; last attempt: {cause.message}"
    if cause.provider or cause.model:
        where = "/".join(p for p in (cause.provider, cause.model) if p)
        message = f"{where}: {message}"
    headers: dict[str, str] = {}
    retry_after = cause.retry_after
    if retry_after is not None and status in (429, 503) and math.isfinite(retry_after):
        headers["retry-after"] = str(max(0, math.ceil(retry_after)))
        headers["retry-after-ms"] = str(max(0, round(retry_after * 1000)))
    if not cause.retryable:
        headers["x-should-retry"] = "false"
    param = getattr(cause, "param", None)
    return ErrorAnswer(status, body(message, shape.type, code, param), headers)


def body(message: str, type: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
