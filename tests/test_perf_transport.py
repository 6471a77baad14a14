"""The client a pipeline makes itself: what it sends, and its aiohttp transport's edges.

On asyncio the pipeline's own client sends through :mod:`pipeline._aiohttp_transport`
(handed each request directly); on trio through httpx's transport. Either way the
server receives exactly the request the adapter built. The transport's own edges
(failures that keep no link to aiohttp's exceptions, which hold the request's
headers; connections released whichever way a body ends) run on asyncio, the only
loop aiohttp runs on.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx
import pytest

from pipeline import Pipeline
from pipeline._aiohttp_transport import AiohttpTransport
from providers import OpenAICompatible, ProviderRegistry
from tests._loopback import loopback_server, sse_event

pytestmark = pytest.mark.anyio

KEY = "sk-transport-test-0123456789"
HI = [{"role": "user", "content": "hi"}]
REPLY = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
    }
).encode()


EVENTS = sse_event("Hello") + sse_event(", world") + sse_event("", "stop") + b"data: [DONE]\n\n"


def _reply(head: bytes, request: bytes) -> bytes:
    """:data:`REPLY`, or :data:`EVENTS` for a stream; gzip-compressed when the path
    starts with ``/gzip``."""
    path = head.split(b" ", 2)[1]
    streamed = json.loads(request).get("stream") is True
    body = EVENTS if streamed else REPLY
    kind = b"text/event-stream" if streamed else b"application/json"
    encoding = b""
    if path.startswith(b"/gzip"):
        body, encoding = gzip.compress(body), b"content-encoding: gzip\r\n"
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: "
        + kind
        + b"\r\nx-request-id: r-1\r\n"
        + encoding
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


@asynccontextmanager
async def recording_server(seen: list[tuple[bytes, bytes]]) -> AsyncIterator[int]:
    """Answers every request with :data:`REPLY` (gzip-compressed for a path starting
    with ``/gzip``); records (head, body) of each."""

    async def serve(stream: anyio.abc.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:
                try:
                    while b"\r\n\r\n" not in buffer:
                        buffer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                found = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
                length = int(found.group(1)) if found else 0
                while len(buffer) < length:
                    buffer += await stream.receive()
                seen.append((head, buffer[:length]))
                await stream.send(_reply(head, buffer[:length]))
                buffer = buffer[length:]

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        try:
            yield listener.extra(anyio.abc.SocketAttribute.local_port)
        finally:
            group.cancel_scope.cancel()


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode().split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


async def test_the_pipelines_own_client_sends_the_request_the_adapter_built() -> None:
    seen: list[tuple[bytes, bytes]] = []
    async with recording_server(seen) as port:
        provider = OpenAICompatible(
            name="rec", base_url=f"http://127.0.0.1:{port}/v1", headers={"x-tenant": "t-7"}
        )
        async with Pipeline(registry=ProviderRegistry([provider])) as pipe:
            for text in ("first", "second"):  # the second on the pooled connection
                reply = await pipe.acompletion(
                    "rec/m",
                    [{"role": "user", "content": text}],
                    api_key=KEY,
                    temperature=0,
                    extra_headers={"x-trace": "abc"},
                )
                assert reply.choices[0].message.content == "ok"
                assert reply.request_id == "r-1"
    assert len(seen) == 2
    for (head, body), text in zip(seen, ("first", "second"), strict=True):
        assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        headers = _headers(head)
        assert headers["authorization"] == f"Bearer {KEY}"
        assert headers["content-type"] == "application/json"
        assert headers["host"] == f"127.0.0.1:{port}"
        assert headers["x-tenant"] == "t-7"
        assert headers["x-trace"] == "abc"
        assert int(headers["content-length"]) == len(body)
        assert json.loads(body) == {
            "model": "m",
            "messages": [{"role": "user", "content": text}],
            "temperature": 0,
        }


def _chain(exc: BaseException) -> list[BaseException]:
    found, todo = [], [exc]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return found


async def _read(transport: httpx.AsyncBaseTransport, request: httpx.Request) -> bytes:
    response = await transport.handle_async_request(request)
    try:
        return await response.aread()
    finally:
        await response.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # aiohttp runs on asyncio only
@pytest.mark.parametrize(
    ("model", "stream", "expected"),
    [
        ("reset", False, httpx.ReadError),
        ("bad-status", False, httpx.RemoteProtocolError),
        ("reset-mid", True, httpx.TransportError),
    ],
)
async def test_a_failure_is_httpxs_own_exception_with_no_link_to_aiohttps(
    model: str, stream: bool, expected: type[Exception]
) -> None:
    transport = AiohttpTransport()
    async with loopback_server() as port:
        request = httpx.Request(
            "POST",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"authorization": f"Bearer {KEY}"},
            json={"model": model},
        )
        with pytest.raises(expected) as caught:
            await _read(transport, request)
        await transport.aclose()
    for exc in _chain(caught.value):
        assert type(exc).__module__.partition(".")[0] != "aiohttp"
        assert KEY not in repr(exc.__dict__) and KEY not in str(exc)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # aiohttp runs on asyncio only
async def test_a_body_closed_before_its_end_does_not_poison_the_pool() -> None:
    # One connection only: a half-read connection put back in the pool would
    # hand the next request the rest of the first one's body.
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=1))
    async with loopback_server() as port:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        response = await transport.handle_async_request(
            httpx.Request("POST", url, json={"model": "ok-stream"})
        )
        async for _ in response.aiter_raw():
            break  # one chunk, then give up on the rest
        await response.aclose()
        with anyio.fail_after(5):
            body = await _read(transport, httpx.Request("POST", url, json={"model": "ok"}))
        assert json.loads(body)["choices"][0]["message"]["content"] == "hi"
    await transport.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # aiohttp runs on asyncio only
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/gzip/v1/chat/completions"])
async def test_a_whole_answer_comes_back_read_as_httpx_would_leave_it(path: str) -> None:
    seen: list[tuple[bytes, bytes]] = []
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=1))
    async with recording_server(seen) as port:
        url = f"http://127.0.0.1:{port}{path}"
        for _ in range(3):  # one pooled connection: each read released it
            request = httpx.Request("POST", url, json={"model": "m"})
            with anyio.fail_after(5):
                read = await transport.send(request, read=True)
                streamed = await _read(transport, httpx.Request("POST", url, json={"model": "m"}))
            assert read.is_closed and read.is_stream_consumed
            assert read.content == streamed == REPLY  # decoded by aiohttp, or by httpx
            assert await read.aread() == REPLY
            assert read.json()["choices"][0]["message"]["content"] == "ok"
            assert read.headers["x-request-id"] == "r-1"
            assert read.request is request
    await transport.aclose()
    assert len(seen) == 6


@pytest.mark.parametrize("path", ["/v1", "/gzip/v1"])
async def test_the_pipeline_reads_a_compressed_answer_on_its_own_client(
    path: str, anyio_backend: str
) -> None:
    seen: list[tuple[bytes, bytes]] = []
    async with recording_server(seen) as port:
        provider = OpenAICompatible(name="rec", base_url=f"http://127.0.0.1:{port}{path}")
        async with Pipeline(registry=ProviderRegistry([provider])) as pipe:
            reply = await pipe.acompletion("rec/m", [{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "ok"
    if anyio_backend == "asyncio":  # aiohttp asks for what it can decode
        assert b"accept-encoding: gzip" in seen[0][0].lower()


@pytest.mark.parametrize("path", ["/v1", "/gzip/v1"])
async def test_a_stream_arrives_whole_whether_or_not_it_is_compressed(path: str) -> None:
    # Straight from the transport's stream when plain, through httpx's decoder when not.
    seen: list[tuple[bytes, bytes]] = []
    async with recording_server(seen) as port:
        provider = OpenAICompatible(name="rec", base_url=f"http://127.0.0.1:{port}{path}")
        async with Pipeline(registry=ProviderRegistry([provider])) as pipe:
            stream = await pipe.acompletion(
                "rec/m", [{"role": "user", "content": "hi"}], stream=True
            )
            async with stream:
                text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "Hello, world"


@pytest.mark.parametrize("encoded", [False, True])
async def test_a_stream_from_an_injected_client_is_decoded_as_httpx_decodes_it(
    encoded: bool,
) -> None:
    async def parts() -> AsyncIterator[bytes]:
        body = gzip.compress(EVENTS) if encoded else EVENTS
        for i in range(0, len(body), 7):  # in small pieces, as a network delivers them
            yield body[i : i + 7]

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream"}
        if encoded:
            headers["content-encoding"] = "gzip"
        return httpx.Response(200, headers=headers, content=parts())

    provider = OpenAICompatible(name="rec", base_url="http://rec.invalid/v1")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        pipe = Pipeline(registry=ProviderRegistry([provider]), http_client=client)
        stream = await pipe.acompletion("rec/m", [{"role": "user", "content": "hi"}], stream=True)
        async with stream:
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "Hello, world"
