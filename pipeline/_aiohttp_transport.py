"""The transport of the client a pipeline makes itself on asyncio: httpx over aiohttp's pool.

An ``httpx.AsyncBaseTransport``: ``httpx.Request`` in, ``httpx.Response`` out,
httpx's exceptions raised, so everything above it (adapters, the terminal,
ErrorMapping, users who read ``response.request``) sees httpx only. Below it,
one ``aiohttp.ClientSession`` per transport, opened on first use.

It does what the terminal needs and nothing more, which is why it exists
beside httpx-aiohttp (the general-purpose one; users may still inject it):

- the body goes over as the bytes httpx already encoded; the headers as
  they are (aiohttp adds only what is missing);
- the response's raw headers and status become the ``httpx.Response``; its
  body is read chunk by chunk as it arrives (``readany``), with no async
  generator, context manager or chunk-size re-slicing between aiohttp and httpx;
- aiohttp runs no read timer: the terminal bounds each attempt end to end,
  and each wait between stream chunks, with its own deadline (an anyio cancel
  scope), which a per-read timer would only duplicate. The connect and pool
  timeouts of the request's ``timeout`` extension are kept: a dead host fails
  in ``connect`` seconds, not at the attempt's deadline;
- every aiohttp failure is raised as the exception httpx's own transport
  raises for it (:func:`pipeline._transport.as_httpx_error`), with no link to
  aiohttp's, which keeps the request's headers (credentials) in ``request_info``.

Connections: at most ``limits.max_connections`` (100 by default, as httpx),
idle ones kept ``limits.keepalive_expiry`` seconds. ``timeout`` gives the
connect and pool timeouts of a request that carries none (as a client's
does). Redirects are not followed and bodies are not decompressed here (httpx
decodes them), as with any httpx transport. Cookies a server sets are not
sent back (aiohttp's jar is a dummy): requests carry what the adapter built
and nothing else, as on httpx's own transport, where the terminal sends
requests built without the client's jar.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx

from pipeline._transport import as_httpx_error

__all__ = ["AiohttpTransport"]

_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_TIMEOUT = httpx.Timeout(5.0)  # httpx's default


def _failure(exc: Exception) -> Exception:
    """The httpx exception for ``exc``; ``exc`` itself when it already is one."""
    return as_httpx_error(exc) or exc


class _Body(httpx.AsyncByteStream):
    """An aiohttp response's body, each chunk as it arrives."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive (what the terminal reads a stream from)."""
        return _Chunks(self._response.content)

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; closed otherwise.
        self._response.release()


class _Chunks:
    __slots__ = ("_content",)

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._content = content

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            data = await self._content.readany()
        except Exception as exc:
            failure = _failure(exc)
            if failure is exc:
                raise
        else:
            if data:
                return data
            raise StopAsyncIteration
        raise failure  # outside the except block: no link to aiohttp's exception


def _read_response(
    response: aiohttp.ClientResponse, body: bytes, request: httpx.Request
) -> httpx.Response:
    """An ``httpx.Response`` in the state ``await response.aread()`` leaves it in:
    content read (here decoded by aiohttp), stream consumed, closed.

    ``aread()`` would run the body through httpx's async generators, decoder and
    chunker (about 11 µs for a one-chunk body); here the body is already whole
    and decoded, so it is stored where ``aread()`` stores it.
    """
    whole = httpx.Response(
        response.status,
        headers=response.raw_headers,
        stream=httpx.ByteStream(body),
        request=request,
    )
    whole._content = body
    whole.is_stream_consumed = True
    whole.is_closed = True
    return whole


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends ``httpx.Request`` objects through one aiohttp session; see the module docstring."""

    __slots__ = ("_default_timeout", "_limits", "_session", "_timeouts")

    def __init__(
        self, *, limits: httpx.Limits = _LIMITS, timeout: httpx.Timeout = _TIMEOUT
    ) -> None:
        self._limits = limits
        self._default_timeout = timeout.as_dict()
        self._session: aiohttp.ClientSession | None = None
        # (connect, pool) seconds -> the aiohttp timeout for them, made once.
        self._timeouts: dict[tuple[Any, Any], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        limits = self._limits
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            keepalive_timeout=limits.keepalive_expiry,
            ssl=httpx.create_ssl_context(),  # verified against certifi's roots, as httpx does
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout") or self._default_timeout
        key = (given.get("connect"), given.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=key[0], connect=key[1])
            if len(self._timeouts) < 64:
                self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.send(request)

    async def send(self, request: httpx.Request, *, read: bool = False) -> httpx.Response:
        """:meth:`handle_async_request`; with ``read=True``, the body is read too (and
        decoded by aiohttp), and the response comes back read and closed, as after
        ``await response.aread()``: for the terminal, which reads a whole answer at once."""
        session = self._session or self._open()
        try:
            data = request.content
        except httpx.RequestNotRead:  # a streamed body (multipart): read it first
            data = await request.aread()
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=data or None,
                allow_redirects=False,
                timeout=self._timeout(request),
                auto_decompress=read,
            )
            body = await response.read() if read else None  # read() releases or closes it
        except Exception as exc:
            failure = _failure(exc)
            if failure is exc:
                raise
        else:
            if body is not None:
                return _read_response(response, body, request)
            return httpx.Response(
                response.status,
                headers=response.raw_headers,
                stream=_Body(response),
                request=request,
            )
        raise failure  # outside the except block: no link to aiohttp's exception

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
