"""Transport failures as httpx's own exceptions, whichever transport raised them.

httpx's transport raises httpx exceptions. httpx-aiohttp's ``AiohttpTransport``
(the default client's transport on asyncio) lets some aiohttp errors escape
raw (a garbage status line or a bad chunk size arrives as
``aiohttp.ClientResponseError``) and maps others wrongly (a connection reset
arrives as ``httpx.ConnectTimeout``). :func:`as_httpx_error` gives, for either,
the exception httpx's own transport raises for the same failure, so the
ErrorMapping middleware maps both alike: protocol errors and resets to
``errors.APIConnectionError``, only timeouts to ``errors.TimeoutError``.

aiohttp is never imported here: its exceptions are recognised by module and
class name, along the raised class's MRO (the most specific entry wins).
"""

from __future__ import annotations

import httpx

__all__ = ["as_httpx_error"]

# aiohttp exception class name -> what httpx's own transport raises for the same failure.
_AIOHTTP: dict[str, type[httpx.TransportError]] = {
    "ConnectionTimeoutError": httpx.ConnectTimeout,
    "SocketTimeoutError": httpx.ReadTimeout,
    "ServerTimeoutError": httpx.ReadTimeout,
    "ClientConnectorError": httpx.ConnectError,
    "ClientProxyConnectionError": httpx.ProxyError,
    "ClientHttpProxyError": httpx.ProxyError,
    "InvalidURL": httpx.UnsupportedProtocol,
    "ServerDisconnectedError": httpx.RemoteProtocolError,
    "ClientPayloadError": httpx.RemoteProtocolError,
    "ClientResponseError": httpx.RemoteProtocolError,  # malformed HTTP: status line, chunk size
    "HttpProcessingError": httpx.RemoteProtocolError,  # the same, raised raw by its Python parser
    "ClientConnectionResetError": httpx.ReadError,
    "ClientOSError": httpx.ReadError,
    "ClientConnectionError": httpx.NetworkError,
    "ClientError": httpx.TransportError,
}


def _from_aiohttp(exc: BaseException) -> type[httpx.TransportError] | None:
    for cls in type(exc).__mro__:
        if cls.__module__.partition(".")[0] == "aiohttp":
            found = _AIOHTTP.get(cls.__name__)
            if found is not None:
                return found
    return None


def as_httpx_error(exc: Exception) -> Exception | None:
    """The httpx exception ``exc`` stands for, when a transport raised or mapped it
    in its own way; None when ``exc`` is already what httpx's transport raises.

    The replacement carries the original's class and message in its own message
    and nothing else: aiohttp's exceptions keep the request's headers (its
    credentials) in ``request_info``.
    """
    source: BaseException = exc
    if isinstance(exc, httpx.TransportError) and exc.__cause__ is not None:
        source = exc.__cause__  # httpx-aiohttp's mapping: judge by what aiohttp raised
    mapped = _from_aiohttp(source)
    if mapped is None:
        if isinstance(exc, TimeoutError) and not isinstance(exc, httpx.HTTPError):
            return httpx.TimeoutException(f"{type(exc).__name__}: {exc}")
        return None
    message = f"{type(source).__name__}: {source}"
    return mapped(message)

