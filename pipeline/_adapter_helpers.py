"""Reading provider replies: JSON bodies, headers, error classes, stream ends.

Every error an adapter raises goes through one of three paths here, so each
carries the provider, the model and the call's own credentials to scrub:
:func:`status_error` (an HTTP error status), :func:`event_error` (an error
event inside a stream that began with 200) and :func:`parsing` /
:func:`stream_ended_early` (a body that is not what the provider promised).
The terminal then scrubs whatever credentials it actually sent.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from functools import lru_cache
from types import TracebackType
from typing import Any

import httpx

from pipeline import errors
from pipeline._request import Request


def timeout_extensions(seconds: float | None) -> dict[str, Any] | None:
    """The ``extensions=`` for an ``httpx.Request`` with an adapter's default
    timeout (None: the client's). A per-call ``timeout=`` overrides it."""
    return None if seconds is None else {"timeout": dict(_timeouts(seconds))}


@lru_cache(maxsize=64)
def _timeouts(seconds: float) -> dict[str, float | None]:
    return httpx.Timeout(seconds).as_dict()


def read_json(request: Request, response: httpx.Response) -> Any:
    """The response body as JSON, or :class:`errors.ProviderResponseError`."""
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise errors.ProviderResponseError(
            f"{request.provider} sent a body that is not JSON ({len(response.content)} bytes)",
            provider=request.provider,
            model=request.model,
            status_code=response.status_code,
            request_id=request_id_from(response.headers),
        ) from exc


def error_body(response: httpx.Response) -> Any:
    """An error response's body as JSON, or None when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def error_message(response: httpx.Response, field: str) -> str:
    """The message of an error body ``{field: "..."}``; for any other body, its
    first 500 characters (an HTML error page, a proxy's plain text)."""
    body = error_body(response)
    message = body.get(field) if isinstance(body, dict) else None
    return message if isinstance(message, str) else response.text[:500]


_MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError)


class parsing:  # lowercase: used like contextlib.suppress, ``with parsing(request):``
    """Turn a lookup or type error while reading a provider's body into
    :class:`errors.ProviderResponseError`: a malformed body never escapes as a
    bare ``KeyError`` or ``TypeError``.

    A class rather than a ``@contextmanager`` generator: it is entered once per
    response and once per stream event, and a generator costs several times more.
    """

    __slots__ = ("_request", "_what")

    def __init__(self, request: Request, what: str = "response") -> None:
        self._request = request
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, _MALFORMED):
            return
        request = self._request
        raise errors.ProviderResponseError(
            f"{request.provider} sent a {self._what} that does not have the expected shape "
            f"({type(exc).__name__}: {exc})",
            provider=request.provider,
            model=request.model,
            secrets=request.secrets(),
        ) from exc


def stream_ended_early(request: Request, marker: str) -> errors.ProviderResponseError:
    """The error for a stream whose body ended before the provider's end marker:
    a cut stream is never a complete reply."""
    return errors.ProviderResponseError(
        f"{request.provider}'s stream ended before {marker}: the reply is incomplete",
        provider=request.provider,
        model=request.model,
    )


def event_error(
    request: Request,
    cls: type[errors.DispatchError],
    message: str,
    *,
    code: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> errors.DispatchError:
    """An error event inside a stream: the status was 200, so the event's own
    code alone chooses ``cls``."""
    return cls(
        message or f"{request.provider} sent an error event",
        provider=request.provider,
        model=request.model,
        request_id=request_id,
        retry_after=retry_after,
        code=code,
        secrets=request.secrets(),
    )


_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id", "x-goog-request-id")


def request_id_from(headers: Mapping[str, str]) -> str | None:
    present = headers.keys()  # one pass over httpx's headers, not one per name
    for name in _REQUEST_ID_HEADERS:
        if name in present:
            value = headers.get(name)
            if value:
                return value
    return None


def retry_after_from(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _should_retry(headers: Mapping[str, str]) -> bool | None:
    value = headers.get("x-should-retry")
    return None if value is None else value.strip().lower() == "true"


# The one place a body may name a class outside its status's family: Gemini
# answers an invalid API key with 400 and reason API_KEY_INVALID.
_WIDENED: frozenset[tuple[int, type[errors.DispatchError]]] = frozenset(
    {(400, errors.AuthenticationError)}
)


def class_for_status(
    status: int, named: type[errors.DispatchError] | None = None
) -> type[errors.DispatchError]:
    """The HTTP status decides the class; what the body names (``named``) may only
    narrow it within the status's family (400 + ``context_length_exceeded`` is
    :class:`errors.ContextWindowExceededError`; 401 or 429 with a
    ``server_error`` body stay what their status says), as the openai SDK does."""
    by_status = errors.error_class_for_status(status)
    if named is None or named is by_status:
        return by_status
    if issubclass(named, by_status) or (status, named) in _WIDENED:
        return named
    return by_status


def status_error(
    request: Request,
    response: httpx.Response,
    message: str,
    *,
    cls: type[errors.DispatchError] | None = None,
    code: str | None = None,
) -> errors.DispatchError:
    """The unified error for an error response: the status's class, narrowed by
    ``cls`` (what the body names) only within the status's family
    (:func:`class_for_status`); headers read; ``x-should-retry`` from the
    provider overrides the class's retryability."""
    headers = response.headers
    chosen = class_for_status(response.status_code, cls)
    return chosen(
        message or f"HTTP {response.status_code}",
        provider=request.provider,
        model=request.model,
        status_code=response.status_code,
        retryable=_should_retry(headers),
        retry_after=retry_after_from(headers),
        request_id=request_id_from(headers),
        code=code,
        secrets=request.secrets(),
    )
