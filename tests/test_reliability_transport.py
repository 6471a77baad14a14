"""Every transport failure becomes the right unified error, on httpx's transport, on the
pipeline's own aiohttp transport and on httpx-aiohttp's, and ``timeout=`` bounds each
attempt end to end (streams between chunks too).

A raw loopback server sends the exact bytes: a garbage status line, a bad chunk size
(before and after a good chunk), a reset, a hang. Each case runs on asyncio with every
transport and on trio with httpx's (aiohttp runs on asyncio only).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from middlewares import ErrorMapping
from pipeline import ChatChunk, Pipeline, Stream, errors
from tests._loopback import (
    OVER_AIOHTTP,
    TRANSPORTS,
    local_registry,
    loopback_server,
    make_transport,
)

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]
TIMEOUT = 0.5
# A call that has not ended this long after its timeout has outlived it.
OUTLIVED = TIMEOUT + 5.0


@pytest.fixture(params=TRANSPORTS, ids=[f"{b}-{t}" for b, t in TRANSPORTS])
def backend_and_transport(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend(backend_and_transport: tuple[str, str]) -> str:
    return backend_and_transport[0]


@pytest.fixture
def transport_name(backend_and_transport: tuple[str, str]) -> str:
    return backend_and_transport[1]


@pytest.fixture
async def pipe(transport_name: str) -> AsyncIterator[Pipeline]:
    async with (
        loopback_server() as port,
        httpx.AsyncClient(transport=make_transport(transport_name)) as client,
    ):
        yield Pipeline([ErrorMapping()], registry=local_registry(port), http_client=client)


async def call(
    pipe: Pipeline, model: str, *, stream: bool = False, chunks: list[ChatChunk] | None = None
) -> list[ChatChunk]:
    """Make the call and read a stream to its end (into ``chunks``), within OUTLIVED seconds."""
    chunks = [] if chunks is None else chunks
    with anyio.fail_after(OUTLIVED):
        result = await pipe.acompletion(f"local/{model}", HI, stream=stream, timeout=TIMEOUT)  # type: ignore[call-overload]
        if isinstance(result, Stream):
            async with result:
                async for chunk in result:
                    chunks.append(chunk)
    return chunks


# -- malformed HTTP and resets are connection errors, never timeouts ----------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", ["bad-status", "garbage", "reset"])
async def test_malformed_responses_and_resets_before_the_body_are_connection_errors(
    pipe: Pipeline, model: str, stream: bool
) -> None:
    with pytest.raises(errors.APIConnectionError) as caught:
        await call(pipe, model, stream=stream)
    assert not isinstance(caught.value, errors.TimeoutError)
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, httpx.TransportError)


async def test_a_bad_chunk_size_before_any_chunk_fails_the_call(pipe: Pipeline) -> None:
    with pytest.raises(errors.APIConnectionError) as caught:
        await call(pipe, "bad-chunk-first", stream=True)
    assert not isinstance(caught.value, errors.TimeoutError)


@pytest.mark.parametrize("model", ["bad-chunk-after", "reset-mid", "close-mid"])
async def test_a_stream_broken_after_a_good_chunk_fails_mid_stream_promptly(
    pipe: Pipeline, model: str, transport_name: str
) -> None:
    seen: list[ChatChunk] = []
    with pytest.raises(errors.APIConnectionError) as caught:
        await call(pipe, model, stream=True, chunks=seen)
    assert [chunk.choices[0].delta.content for chunk in seen] == ["hello"]
    if transport_name in OVER_AIOHTTP and model == "bad-chunk-after":
        # aiohttp's C parser drops this error on the floor and its read timeout never
        # fires: the stream would hang forever. Our own deadline ends it.
        assert isinstance(caught.value, errors.TimeoutError)
    else:
        assert not isinstance(caught.value, errors.TimeoutError)


async def test_a_good_exchange_still_works_on_the_same_server(pipe: Pipeline) -> None:
    reply = await pipe.acompletion("local/ok", HI, timeout=TIMEOUT)
    assert reply.choices[0].message.content == "hi"
    chunks = await call(pipe, "ok-stream", stream=True)
    assert [c.choices[0].delta.content for c in chunks if c.choices] == ["hello", ""]


# -- timeout= bounds each attempt, streams between chunks too -----------------------------------


@pytest.mark.parametrize(
    ("model", "stream"),
    [
        ("hang-headers", False),
        ("hang-headers", True),
        ("hang-body", False),
        ("trickle-body", False),
        ("trickle-first-chunk", True),
    ],
)
async def test_timeout_bounds_the_whole_attempt(pipe: Pipeline, model: str, stream: bool) -> None:
    start = anyio.current_time()
    with pytest.raises(errors.TimeoutError) as caught:
        await call(pipe, model, stream=stream)
    assert anyio.current_time() - start < OUTLIVED
    assert caught.value.retryable and caught.value.status_code is None


@pytest.mark.parametrize("model", ["hang-after-chunk", "trickle-after-chunk"])
async def test_timeout_bounds_each_wait_between_stream_chunks(pipe: Pipeline, model: str) -> None:
    seen: list[ChatChunk] = []
    with pytest.raises(errors.TimeoutError):
        await call(pipe, model, stream=True, chunks=seen)
    assert len(seen) == 1


async def test_a_pipeline_without_error_mapping_sees_httpx_exceptions(transport_name: str) -> None:
    async with (
        loopback_server() as port,
        httpx.AsyncClient(transport=make_transport(transport_name)) as client,
    ):
        bare = Pipeline(registry=local_registry(port), http_client=client)
        with pytest.raises(httpx.RemoteProtocolError):
            await call(bare, "bad-status")
        with pytest.raises(httpx.ReadError):
            await call(bare, "reset")
        with pytest.raises(httpx.TimeoutException):
            await call(bare, "hang-headers")


# -- no pooled connection leaks after many failing calls (on each transport) --------------------


class CountingTransport(httpx.AsyncBaseTransport):
    """Wraps a real pooled transport; counts responses opened and not yet closed."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.opened = 0
        self.open = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.opened += 1
        self.open += 1
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Counted(response.stream, self)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Counted(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, owner: CountingTransport) -> None:
        self.inner = inner
        self.owner = owner
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.inner.__aiter__()

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner.open -= 1
        await self.inner.aclose()


_EXPECTED: dict[str, tuple[bool, type[errors.DispatchError]]] = {
    "fail-500": (False, errors.InternalServerError),
    "limited": (False, errors.RateLimitError),
    "close-mid": (True, errors.APIConnectionError),
    "reset-mid": (True, errors.APIConnectionError),
    "hang-after-chunk": (True, errors.TimeoutError),
}
CALLS = 20


async def test_no_connection_leaks_after_many_failing_calls_on_a_real_pool(
    transport_name: str,
) -> None:
    # One pooled connection only: a single unreleased response would make the next
    # call wait for the pool and fail with a pool timeout instead of the expected error.
    transport = CountingTransport(make_transport(transport_name, max_connections=1))
    async with (
        loopback_server() as port,
        httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, pool=2.0)) as client,
    ):
        pipe = Pipeline([ErrorMapping()], registry=local_registry(port), http_client=client)
        models = list(_EXPECTED)
        for i in range(CALLS):
            model = models[i % len(models)]
            stream, expected = _EXPECTED[model]
            with pytest.raises(expected):
                await call(pipe, model, stream=stream)
            assert transport.open == 0, f"call {i} ({model}) left a response open"
        assert transport.opened == CALLS


# -- the client a pipeline makes itself: with the [aiohttp] extra, and as users get it without ---


MADE = [t for t in TRANSPORTS if t[1] != "httpx-aiohttp"]  # never made by a pipeline itself


@pytest.mark.parametrize("backend_and_transport", MADE, ids=[f"{b}-{t}" for b, t in MADE])
async def test_the_client_a_pipeline_makes_itself_types_failures_alike(
    transport_name: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if transport_name == "httpx":  # what users get without the [aiohttp] extra installed
        monkeypatch.setitem(sys.modules, "aiohttp", None)
    async with (
        loopback_server() as port,
        Pipeline([ErrorMapping()], registry=local_registry(port)) as pipe,
    ):
        transport = type(pipe._dispatcher.client._transport)
        assert f"{transport.__module__}.{transport.__name__}" == (
            "pipeline._aiohttp_transport.AiohttpTransport"
            if transport_name == "aiohttp"
            else "httpx.AsyncHTTPTransport"
        )
        for model, expected in (
            ("bad-status", errors.APIConnectionError),
            ("reset", errors.APIConnectionError),
        ):
            with pytest.raises(expected) as caught:
                await call(pipe, model, stream=True)
            assert not isinstance(caught.value, errors.TimeoutError)
        with pytest.raises(errors.TimeoutError):
            await call(pipe, "hang-after-chunk", stream=True)
        assert [c.choices[0].delta.content for c in await call(pipe, "ok-stream", stream=True)] == [
            "hello",
            "",
        ]
