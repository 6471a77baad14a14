"""ErrorMapping: raw transport and HTTP errors become :mod:`pipeline.errors`, at the boundary.

Put it innermost (last in the list), so every layer outside it (Retry,
Fallback, Logging...) sees only unified errors. It maps, most specific first,
always ``raise mapped from original``::

    pipeline.UpstreamStatusError   the provider adapter's own error parser
                                   (``exc.unified()``); if that parser fails,
                                   the class for the HTTP status
    other httpx.HTTPStatusError    the class for the HTTP status
    httpx.TimeoutException         errors.TimeoutError            (retryable)
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.TooManyRedirects         errors.APIConnectionError      (not retryable:
                                                                    resending cannot help)
    other httpx.TransportError     errors.APIConnectionError      (retryable)
    httpx.DecodingError            errors.ProviderResponseError
    errors.DispatchError           unchanged
    anything else                  unchanged

The same mapping applies while a returned stream is iterated. Errors carry the
request's provider and model. The terminal has already given every transport's
failures as httpx's own exceptions and scrubbed the credentials it sent from
them (``pipeline._redact``), so what is mapped here holds no key.
``Retry-After`` (seconds or an HTTP date), ``retry-after-ms`` and
``x-should-retry`` are read by the adapter's parser (through
``pipeline.adapter.status_error``). Error responses have already been read and
closed by the terminal handler, so no connection is held by a raised error.
"""

from __future__ import annotations

from typing import TypeVar

import httpx

from pipeline import Handler, Request, Result, Stream, UpstreamStatusError, errors
from pipeline.adapter import status_error

__all__ = ["ErrorMapping", "MappedStream", "unify"]

T = TypeVar("T")

# httpx exception class -> (unified class, retryable override or None for the class default).
# Looked up along the raised exception's MRO, so the most specific entry wins.
_TRANSPORT: dict[type[Exception], tuple[type[errors.DispatchError], bool | None]] = {
    httpx.TimeoutException: (errors.TimeoutError, None),
    httpx.UnsupportedProtocol: (errors.APIConnectionError, False),
    httpx.LocalProtocolError: (errors.APIConnectionError, False),
    httpx.TooManyRedirects: (errors.APIConnectionError, False),
    httpx.TransportError: (errors.APIConnectionError, None),
    httpx.DecodingError: (errors.ProviderResponseError, None),
}


def _from_status(request: Request, exc: httpx.HTTPStatusError) -> errors.DispatchError:
    if isinstance(exc, UpstreamStatusError):
        return exc.unified()
    status = exc.response.status_code
    return status_error(request, exc.response, f"{request.provider} answered HTTP {status}")


def _from_transport(request: Request, exc: Exception) -> errors.DispatchError | None:
    for cls in type(exc).__mro__:
        found = _TRANSPORT.get(cls)
        if found is not None:
            mapped, retryable = found
            detail = str(exc) or "no details"
            return mapped(
                f"{type(exc).__name__} talking to {request.provider}: {detail}",
                provider=request.provider,
                model=request.model,
                retryable=retryable,
                secrets=request.secrets(),
            )
    return None


def unify(request: Request, exc: Exception) -> errors.DispatchError | None:
    """The unified error for ``exc`` raised while serving ``request``, or None
    when ``exc`` is already unified or is not a transport or HTTP error."""
    if isinstance(exc, errors.DispatchError):
        return None
    if isinstance(exc, httpx.HTTPStatusError):
        return _from_status(request, exc)
    return _from_transport(request, exc)


class MappedStream(Stream[T]):
    """``inner``, with errors raised while it is iterated mapped by :func:`unify`."""

    __slots__ = ("_inner", "_request")

    def __init__(self, inner: Stream[T], request: Request) -> None:
        super().__init__()
        self._copy_meta(inner)
        self._inner = inner
        self._request = request

    async def __anext__(self) -> T:
        try:
            return await self._inner.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as exc:
            mapped = unify(self._request, exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._inner.aclose()


class ErrorMapping:
    """Maps raw httpx errors to :mod:`pipeline.errors`; see the module docstring.

    Stateless, no options. Cancellation and other ``BaseException`` pass untouched.
    """

    __slots__ = ()

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        try:
            result = await call_next(request)
        except Exception as exc:
            mapped = unify(request, exc)
            if mapped is None:
                raise
            raise mapped from exc
        if isinstance(result, Stream):
            return MappedStream(result, request)
        return result

    def __repr__(self) -> str:
        return "ErrorMapping()"
