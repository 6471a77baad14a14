"""Google's ``{"error": {"code", "message", "status", "details"}}`` as unified errors."""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx

from pipeline.adapter import (
    Request,
    SSEParser,
    errors,
    event_error,
    status_error,
)

# google.rpc status names -> the class they call for (when the HTTP status alone says less).
_STATUS_CLASSES: dict[str, type[errors.DispatchError]] = {
    "UNAUTHENTICATED": errors.AuthenticationError,
    "PERMISSION_DENIED": errors.PermissionDeniedError,
    "NOT_FOUND": errors.NotFoundError,
    "RESOURCE_EXHAUSTED": errors.RateLimitError,
    "INTERNAL": errors.InternalServerError,
    "UNAVAILABLE": errors.ServiceUnavailableError,
    "INVALID_ARGUMENT": errors.BadRequestError,
    "FAILED_PRECONDITION": errors.BadRequestError,
}
# google.rpc.ErrorInfo reasons that say more than the status.
_REASON_CLASSES: dict[str, type[errors.DispatchError]] = {
    "API_KEY_INVALID": errors.AuthenticationError,
}
_CONTEXT_WINDOW = "exceeds the maximum number of tokens"


def _error_body(content: bytes) -> Any:
    """The error JSON, also when it comes as SSE ``data:`` or wrapped in an array."""
    try:
        body: Any = json.loads(content)
    except ValueError:
        body = None
        try:
            events = SSEParser()
            for event in [*events.feed(content), *events.close()]:
                body = json.loads(event.data)
                break
        except ValueError:
            body = None
    if isinstance(body, list) and body:
        body = body[0]
    return body


@attrs.frozen
class _ErrorFacts:
    message: str
    status: str | None
    reason: str | None
    retry_after: float | None
    daily_quota: bool


def _duration(value: Any) -> float | None:
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


def _error_facts(body: Any, fallback: str) -> _ErrorFacts:
    inner = body.get("error") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return _ErrorFacts(fallback, None, None, None, False)
    reason = None
    retry_after = None
    daily = False
    details = inner.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        if isinstance(detail.get("reason"), str):
            reason = reason or detail["reason"]
        retry_after = (
            retry_after if retry_after is not None else _duration(detail.get("retryDelay"))
        )
        violations = detail.get("violations")
        for violation in violations if isinstance(violations, list) else ():
            quota = violation.get("quotaId") if isinstance(violation, dict) else None
            daily = daily or (isinstance(quota, str) and "PerDay" in quota)
    status = inner.get("status")
    message = inner.get("message")
    return _ErrorFacts(
        message=message if isinstance(message, str) and message else fallback,
        status=status if isinstance(status, str) else None,
        reason=reason,
        retry_after=retry_after,
        daily_quota=daily,
    )


def _error_class(facts: _ErrorFacts) -> type[errors.DispatchError] | None:
    if facts.reason in _REASON_CLASSES:
        return _REASON_CLASSES[facts.reason]
    if _CONTEXT_WINDOW in facts.message:
        return errors.ContextWindowExceededError
    return None


def error_from(request: Request, response: httpx.Response) -> errors.DispatchError:
    """Google's ``{"error": {"code", "message", "status", "details"}}`` as a unified error."""
    body = _error_body(response.content)
    facts = _error_facts(body, response.text[:500])
    error = status_error(
        request,
        response,
        facts.message,
        cls=_error_class(facts),
        code=facts.reason or facts.status,
    )
    if error.retry_after is None:
        error.retry_after = facts.retry_after
    if facts.daily_quota:
        error.retryable = False  # a per-day quota does not come back within a retry
    return error


def stream_error(request: Request, data: dict[str, Any]) -> errors.DispatchError:
    facts = _error_facts(data, "Gemini sent an error in the stream")
    cls = (
        _error_class(facts) or _STATUS_CLASSES.get(facts.status or "") or errors.InternalServerError
    )
    return event_error(
        request,
        cls,
        facts.message,
        retry_after=facts.retry_after,
        code=facts.reason or facts.status,
    )
