"""The terminal handler: one dict lookup, build, send, parse. The only I/O.

Each attempt is bounded end to end by its own deadline (an anyio cancel
scope): the per-call ``timeout=``, else the adapter's default timeout, else
the client's read timeout. A whole response must be read within it; a stream
must deliver its first chunk within it, then each next chunk within it again.
Whatever fails on the way leaves as the exception httpx's own transport would
raise (whichever transport ran), with the credentials it sent scrubbed from it
(:mod:`pipeline._redact`); the ErrorMapping middleware turns it into a unified
error.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from typing import Any

import anyio
import httpx

from pipeline import errors
from pipeline._clients import DEFAULT_TIMEOUT, LoopClients
from pipeline._redact import redact, sent_secrets
from pipeline._request import Request
from pipeline._responses import AnyResponse, ChatChunk
from pipeline._streams import Stream
from pipeline._transport import as_httpx_error
from pipeline.adapter import Adapter, StreamDecoder, request_id_from, status_error

Result = AnyResponse | Stream[ChatChunk]


class UpstreamStatusError(httpx.HTTPStatusError):
    """A provider's error status, body read and connection released, not yet mapped.

    The provider's own adapter has read the body already (``unified()`` gives
    that error; a body its parser cannot read gives the class for the status).
    The ErrorMapping middleware raises ``unified()`` from this. Without
    ErrorMapping in the stack it propagates as the httpx error it is.
    """

    def __init__(self, request: Request, response: httpx.Response, adapter: Adapter) -> None:
        super().__init__(
            f"{request.provider} answered HTTP {response.status_code}",
            request=response.request,
            response=response,
        )
        self.dispatch_request = request
        self.adapter = adapter
        self.unified_error = _parse_error(request, response, adapter)

    def unified(self) -> errors.DispatchError:
        return self.unified_error


def _parse_error(
    request: Request, response: httpx.Response, adapter: Adapter
) -> errors.DispatchError:
    try:
        return adapter.parse_error(request, response)
    except Exception as failure:
        status = response.status_code
        reason = f"its error body could not be read ({type(failure).__name__})"
        message = f"{request.provider} answered HTTP {status}; {reason}"
        return status_error(request, response, message)


def _failure(exc: Exception, request: Request, http_request: httpx.Request) -> Exception:
    """What a failed attempt raises: ``exc`` as httpx's own transport would raise it,
    with the credentials the attempt sent scrubbed from it and its chain."""
    if not isinstance(exc, errors.DispatchError):
        exc = as_httpx_error(exc) or exc
    redact(exc, sent_secrets(request, http_request))
    return exc


class ProviderStream(Stream[ChatChunk]):
    """Chunks decoded from a provider's HTTP body as its bytes arrive.

    Each wait for the next chunk is bounded by ``seconds`` (None: unbounded),
    however the bytes trickle in.
    """

    __slots__ = ("_bytes", "_decoder", "_eof", "_pending", "_request", "_response", "_seconds")

    def __init__(
        self,
        request: Request,
        response: httpx.Response,
        decoder: StreamDecoder,
        seconds: float | None = None,
    ) -> None:
        super().__init__(
            provider=request.provider,
            model=request.model,
            request_id=request_id_from(response.headers),
        )
        self._request = request
        self._response = response
        # The body as it arrives. The pipeline's own transport hands its chunks over
        # as they come (``chunks()``: no decoder, re-chunking or generator layers for
        # httpx to run per read) when they need no decoding; any other stream goes
        # through httpx, which also closes its own generators.
        chunks = getattr(response.stream, "chunks", None)
        self._bytes: AsyncIterator[bytes] = (
            chunks()
            if chunks is not None and "content-encoding" not in response.headers
            else response.aiter_bytes()
        )
        self._decoder = decoder
        self._pending: deque[ChatChunk] = deque()
        self._eof = False
        self._seconds = seconds

    async def __anext__(self) -> ChatChunk:
        pending = self._pending
        if pending:
            return pending.popleft()
        return await self._next(self._seconds)

    async def _next(self, seconds: float | None) -> ChatChunk:
        """The next chunk, waiting at most ``seconds`` for it (None: no deadline of its own)."""
        try:
            if seconds is None:
                await self._fill()
            else:
                with anyio.move_on_after(seconds) as scope:
                    await self._fill()
                if scope.cancelled_caught:
                    raise httpx.ReadTimeout(f"no stream chunk arrived within {seconds:g} s")
        except StopAsyncIteration:
            raise
        except Exception as exc:
            failure = _failure(exc, self._request, self._response.request)
        except BaseException:
            await self._shut()
            raise
        else:
            return self._pending.popleft()
        await self._shut()
        raise failure

    async def _fill(self) -> None:
        """Read and decode until at least one chunk is pending, or the body ends."""
        pending = self._pending
        while not pending:
            if self._eof:
                await self.aclose()
                raise StopAsyncIteration
            try:
                data = await self._bytes.__anext__()
            except StopAsyncIteration:
                self._eof = True
                pending.extend(self._decoder.close())
            else:
                pending.extend(self._decoder.feed(data))

    async def _shut(self) -> None:
        with anyio.CancelScope(shield=True):  # release the connection even when cancelled
            await self.aclose()

    async def prefetch(self) -> None:
        """Wait for the first chunk, so errors before it surface from the call itself.

        Called within the attempt's deadline, which bounds this wait already."""
        chunk = await self._next(None)
        self._pending.appendleft(chunk)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._bytes, "aclose", None)  # an async generator's
            if close is not None:
                await close()
        finally:
            await self._response.aclose()


class Dispatcher:
    """The terminal handler every pipeline ends in."""

    __slots__ = ("_adapters", "_client", "_clients")

    def __init__(
        self, adapters: Mapping[str, Adapter], http_client: httpx.AsyncClient | None = None
    ) -> None:
        self._adapters = adapters
        self._client = http_client
        self._clients = LoopClients() if http_client is None else None

    def __repr__(self) -> str:
        return f"Dispatcher({len(self._adapters)} providers)"

    @property
    def client(self) -> httpx.AsyncClient:
        """The injected client; else the one this dispatcher made for the running
        event loop (a pool belongs to the loop that opened its connections)."""
        if self._clients is None:
            assert self._client is not None
            return self._client
        return self._clients.get()

    async def aclose(self) -> None:
        """Close the clients this dispatcher made (an injected one stays open)."""
        if self._clients is not None:
            await self._clients.aclose()

    def close(self) -> None:
        """:meth:`aclose` from sync code (no event loop running in this thread)."""
        if self._clients is not None:
            self._clients.close()

    def adapter_for(self, request: Request) -> Adapter:
        try:
            adapter = self._adapters[request.provider]
        except KeyError:
            raise errors.ProviderNotFoundError(
                f"no provider named {request.provider!r} is registered",
                provider=request.provider,
                model=request.model,
            ) from None
        if request.endpoint not in adapter.endpoints:
            raise errors.UnsupportedEndpointError(
                f"{request.provider} does not offer the {request.endpoint!r} endpoint "
                f"(it offers: {', '.join(sorted(adapter.endpoints))})",
                provider=request.provider,
                model=request.model,
            )
        return adapter

    def _seconds(self, request: Request, http_request: httpx.Request) -> float | None:
        """The attempt's deadline: ``timeout=``, else the adapter's, else the client's."""
        if request.timeout is not None:
            http_request.extensions["timeout"] = httpx.Timeout(request.timeout).as_dict()
            return request.timeout
        configured = http_request.extensions.get("timeout")
        if configured:
            return configured.get("read")  # type: ignore[no-any-return]
        client = self._client
        return (client.timeout if client is not None else DEFAULT_TIMEOUT).read

    async def __call__(self, request: Request) -> Result:
        adapter = self.adapter_for(request)
        http_request = adapter.build(request)
        # Made before any I/O: a decoder that fails to start leaves no response open.
        decoder = adapter.stream_decoder(request) if request.stream else None
        seconds = self._seconds(request, http_request)
        try:
            with anyio.move_on_after(seconds):
                return await self._attempt(request, adapter, http_request, decoder, seconds)
            failure: Exception = httpx.TimeoutException(
                f"{request.provider} gave no {'first chunk' if decoder else 'answer'} "
                f"within {seconds:g} s",
                request=http_request,
            )
        except Exception as exc:
            failure = exc
        # Raised outside the except block: a replaced exception keeps no link to
        # the transport's own (which may hold the request's headers).
        raise _failure(failure, request, http_request)

    async def _attempt(
        self,
        request: Request,
        adapter: Adapter,
        http_request: httpx.Request,
        decoder: StreamDecoder | None,
        seconds: float | None,
    ) -> Result:
        authorize = getattr(adapter, "authorize", None)
        if authorize is not None:  # credentials that must be awaited (a token provider)
            await authorize(request, http_request)
        transport = adapter.transport
        if transport is not None:
            response = await transport.handle_async_request(http_request)
            response.request = http_request
        elif self._clients is not None:
            response = await self._clients.send(http_request, read=decoder is None)
        else:
            response = await self._client.send(http_request, stream=True)  # type: ignore[union-attr]
        if decoder is None or response.status_code >= 400:
            try:
                await response.aread()  # closes the response once read (if not read already)
            except BaseException:
                with anyio.CancelScope(shield=True):  # even when cancelled mid-read
                    await response.aclose()
                raise
            if response.status_code >= 400:
                raise UpstreamStatusError(request, response, adapter)
            result: Any = adapter.parse(request, response)
            result.provider = request.provider
            if result.request_id is None:
                result.request_id = request_id_from(response.headers)
            return result  # type: ignore[no-any-return]
        stream = ProviderStream(request, response, decoder, seconds)
        with suppress(StopAsyncIteration):  # an empty stream is still a stream
            await stream.prefetch()
        return stream
