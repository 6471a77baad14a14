"""The provider adapter contract (sans-I/O), and helpers every adapter shares.

An adapter never does I/O. The terminal handler calls:

1. ``adapter.build(request) -> httpx.Request``;
2. sends it (the pipeline's pooled client, or ``adapter.transport`` when the
   adapter brings its own, as the ``mock`` provider does);
3. on an error status, ``adapter.parse_error(request, response)`` (body read)
   gives the unified error (through the ErrorMapping middleware);
4. otherwise ``adapter.parse(request, response)`` (body read) for a whole
   response, or ``adapter.stream_decoder(request)`` fed the body's bytes.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import httpx

from pipeline import errors
from pipeline._request import Endpoint, Request
from pipeline._responses import AnyResponse, ChatChunk

__all__ = [
    "Adapter",
    "StreamDecoder",
    "parsing",
    "read_json",
    "request_id_from",
    "retry_after_from",
    "status_error",
    "timeout_extensions",
]


class StreamDecoder(Protocol):
    """Incremental: bytes in (any split, down to one byte at a time), chunks out."""

    def feed(self, data: bytes) -> list[ChatChunk]: ...

    def close(self) -> list[ChatChunk]:
        """The body ended: flush what is left (raise if it ended mid-event)."""
        ...


@runtime_checkable
class Adapter(Protocol):
    """What the registry holds for each provider name."""

    @property
    def name(self) -> str: ...

    @property
    def endpoints(self) -> frozenset[Endpoint]: ...

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        """None: requests go through the pipeline's pooled httpx.AsyncClient."""
        ...

    @property
    def models(self) -> frozenset[str]:
        """Bare model names this provider claims for auto-detection."""
        ...

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Model-name prefixes this provider claims for auto-detection."""
        ...

    @property
    def priority(self) -> int:
        """Wins a contested name or prefix when higher."""
        ...

    def build(self, request: Request) -> httpx.Request: ...

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse: ...

    def stream_decoder(self, request: Request) -> StreamDecoder: ...

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError: ...


def timeout_extensions(seconds: float | None) -> dict[str, Any] | None:
    """The ``extensions=`` for an ``httpx.Request`` with an adapter's default
    timeout (None: the client's). A per-call ``timeout=`` overrides it."""
    return None if seconds is None else {"timeout": httpx.Timeout(seconds).as_dict()}


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


@contextmanager
def parsing(request: Request, what: str = "response") -> Iterator[None]:
    """Turn a lookup or type error while reading a provider's body into
    :class:`errors.ProviderResponseError`: a malformed body never escapes as a
    bare ``KeyError`` or ``TypeError``."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise errors.ProviderResponseError(
            f"{request.provider} sent a {what} that does not have the expected shape "
            f"({type(exc).__name__}: {exc})",
            provider=request.provider,
            model=request.model,
            secrets=request.secrets(),
        ) from exc


_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id", "x-goog-request-id")


def request_id_from(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
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


def status_error(
    request: Request,
    response: httpx.Response,
    message: str,
    *,
    cls: type[errors.DispatchError] | None = None,
    code: str | None = None,
) -> errors.DispatchError:
    """The unified error for an error response: most specific class, headers read.

    ``cls`` overrides the class chosen by status (an adapter that recognises
    ``context_length_exceeded`` passes :class:`errors.ContextWindowExceededError`).
    ``x-should-retry`` from the provider overrides the class's retryability.
    """
    headers = response.headers
    chosen = cls or errors.error_class_for_status(response.status_code)
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
