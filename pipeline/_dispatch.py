"""The terminal handler: one dict lookup, build, send, parse. The only I/O."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import anyio
import httpx

from pipeline import errors
from pipeline._loops import running_loop
from pipeline._request import Request
from pipeline._responses import AnyResponse, ChatChunk
from pipeline._streams import Stream
from pipeline.adapter import Adapter, StreamDecoder, request_id_from

Result = AnyResponse | Stream[ChatChunk]

_AUTH_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")

DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def _on_asyncio() -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(running_loop(), asyncio.AbstractEventLoop)


def default_client() -> httpx.AsyncClient:
    """The client a pipeline makes when none is injected, on first use.

    On asyncio with ``httpx-aiohttp`` installed (the ``[aiohttp]`` extra), it
    sends through aiohttp's connection pool: several times the throughput of
    httpx's own under concurrency (see benchmarks/RESULTS.md). Elsewhere, and
    always on trio, httpx's default transport. Inject ``http_client=`` to choose.
    """
    transport: httpx.AsyncBaseTransport | None = None
    if _on_asyncio():
        try:
            from httpx_aiohttp import AiohttpTransport
        except ImportError:
            pass
        else:
            transport = AiohttpTransport()
    return httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, transport=transport)


class UpstreamStatusError(httpx.HTTPStatusError):
    """A provider's error status, body read and connection released, not yet mapped.

    The ErrorMapping middleware turns it into a :mod:`pipeline.errors` error
    with :meth:`unified`, which asks the provider's own adapter to read the body.
    Without ErrorMapping in the stack it propagates as the httpx error it is.
    """

    def __init__(self, request: Request, response: httpx.Response, adapter: Adapter) -> None:
        super().__init__(
            f"{request.provider} answered HTTP {response.status_code}",
            request=response.request,
            response=response,
        )
        self.dispatch_request = request
        self.adapter = adapter

    def unified(self) -> errors.DispatchError:
        error = self.adapter.parse_error(self.dispatch_request, self.response)
        # The key may have come from the environment or the adapter's config, not
        # the call: scrub whatever credentials were actually sent.
        headers = self.request.headers
        error.redact([headers[h].rpartition(" ")[2] for h in _AUTH_HEADERS if h in headers])
        return error


class ProviderStream(Stream[ChatChunk]):
    """Chunks decoded from a provider's HTTP body as its bytes arrive."""

    __slots__ = ("_bytes", "_decoder", "_eof", "_pending", "_response")

    def __init__(self, request: Request, response: httpx.Response, decoder: StreamDecoder) -> None:
        super().__init__(
            provider=request.provider,
            model=request.model,
            request_id=request_id_from(response.headers),
        )
        self._response = response
        self._bytes = response.aiter_bytes()
        self._decoder = decoder
        self._pending: deque[ChatChunk] = deque()
        self._eof = False

    async def __anext__(self) -> ChatChunk:
        pending = self._pending
        try:
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
        except StopAsyncIteration:
            raise
        except BaseException:
            with anyio.CancelScope(shield=True):  # release the connection even when cancelled
                await self.aclose()
            raise
        return pending.popleft()

    async def prefetch(self) -> None:
        """Wait for the first chunk, so errors before it surface from the call itself."""
        chunk = await self.__anext__()
        self._pending.appendleft(chunk)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._bytes.aclose()  # type: ignore[attr-defined]
        finally:
            await self._response.aclose()


class Dispatcher:
    """The terminal handler every pipeline ends in."""

    __slots__ = ("_adapters", "_client", "_client_loop", "_owns_client")

    def __init__(
        self, adapters: Mapping[str, Adapter], http_client: httpx.AsyncClient | None = None
    ) -> None:
        self._adapters = adapters
        self._client = http_client
        self._client_loop: object | None = None
        self._owns_client = http_client is None

    def __repr__(self) -> str:
        return f"Dispatcher({len(self._adapters)} providers)"

    @property
    def client(self) -> httpx.AsyncClient:
        """The injected client; else the one this dispatcher made for the running
        event loop (a pool belongs to the loop that opened its connections, so a
        pipeline used from a second ``asyncio.run`` gets a fresh one)."""
        if self._owns_client:
            loop = running_loop()
            if self._client is None or loop is not self._client_loop:
                self._client = default_client()
                self._client_loop = loop
        assert self._client is not None
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

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

    async def __call__(self, request: Request) -> Result:
        adapter = self.adapter_for(request)
        http_request = adapter.build(request)
        authorize = getattr(adapter, "authorize", None)
        if authorize is not None:  # credentials that must be awaited (a token provider)
            await authorize(request, http_request)
        if request.timeout is not None:
            http_request.extensions["timeout"] = httpx.Timeout(request.timeout).as_dict()
        transport = adapter.transport
        if transport is None:
            response = await self.client.send(http_request, stream=True)
        else:
            response = await transport.handle_async_request(http_request)
            response.request = http_request
        if response.status_code >= 400 or not request.stream:
            try:
                await response.aread()  # closes the response once read
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
        stream = ProviderStream(request, response, adapter.stream_decoder(request))
        with suppress(StopAsyncIteration):  # an empty stream is still a stream
            await stream.prefetch()
        return stream
