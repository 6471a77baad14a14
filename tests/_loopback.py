"""A raw TCP server on 127.0.0.1 answering with exact bytes: good or broken HTTP, resets, hangs.

The reply is chosen by the ``model`` named in the request's JSON body (one
OpenAI-compatible provider, ``local``, points at it). Runs on the test's own
event loop (anyio), so it works on asyncio and trio alike. Also the transports
a pipeline may run on, for tests that run on each (httpx's own; on asyncio
also the pipeline's own aiohttp transport and httpx-aiohttp's, which users
may inject).
"""

from __future__ import annotations

import json
import re
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx

from providers import OpenAICompatible, ProviderRegistry

# (anyio backend, transport): aiohttp runs on asyncio only. "aiohttp" is the
# pipeline's own transport over aiohttp (its default client's on asyncio).
TRANSPORTS = [
    ("asyncio", "httpx"),
    ("asyncio", "aiohttp"),
    ("asyncio", "httpx-aiohttp"),
    ("trio", "httpx"),
]
OVER_AIOHTTP = frozenset({"aiohttp", "httpx-aiohttp"})


def make_transport(name: str, **limits: int) -> httpx.AsyncBaseTransport:
    """httpx's own transport, the pipeline's aiohttp one, or httpx-aiohttp's, with
    the given pool limits."""
    pool = httpx.Limits(**limits) if limits else httpx.Limits()
    if name == "aiohttp":
        from pipeline._aiohttp_transport import AiohttpTransport

        return AiohttpTransport(limits=pool)
    if name == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport as HttpxAiohttpTransport

        return HttpxAiohttpTransport(limits=pool)
    return httpx.AsyncHTTPTransport(limits=pool)


def sse_event(content: str, finish: str | None = None) -> bytes:
    """One OpenAI-style chunk as an SSE ``data:`` event."""
    chunk = {
        "id": "chatcmpl-l",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
GOOD_CHUNK = chunk(sse_event("hello"))
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-l",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
    }
).encode()
STREAM = (
    STREAM_HEAD
    + GOOD_CHUNK
    + chunk(sse_event("", "stop"))
    + chunk(b"data: [DONE]\n\n")
    + b"0\r\n\r\n"
)

# model -> (bytes to send, what to do next: "keep" the connection, "close" it,
# "reset" it, or "hang" with it open).
BEHAVIOURS: dict[str, tuple[bytes, str]] = {
    "ok": (response("200 OK", COMPLETION), "keep"),
    "ok-stream": (STREAM, "keep"),
    "fail-500": (response("500 Internal Server Error", b'{"error": {"message": "boom"}}'), "keep"),
    "limited": (response("429 Too Many Requests", b'{"error": {"message": "slow"}}'), "keep"),
    "bad-status": (b"HTTP/1.1 abc nonsense\r\n\r\n", "close"),
    "garbage": (b"\x00\x01 not http at all\r\n\r\n", "close"),
    "bad-chunk-first": (STREAM_HEAD + b"zz\r\nnot a chunk\r\n", "hang"),
    "bad-chunk-after": (STREAM_HEAD + GOOD_CHUNK, "bad-chunk-later"),
    "reset": (b"", "reset"),
    "reset-mid": (STREAM_HEAD + GOOD_CHUNK, "reset"),
    "close-mid": (STREAM_HEAD + GOOD_CHUNK, "close"),
    "hang-headers": (b"", "hang"),
    "hang-body": (response("200 OK", COMPLETION)[:-10], "hang"),
    "hang-after-chunk": (STREAM_HEAD + GOOD_CHUNK, "hang"),
    # A byte at a time, each well within a read timeout, never a whole answer or chunk.
    "trickle-body": (response("200 OK", COMPLETION)[: -len(COMPLETION)], "trickle"),
    "trickle-first-chunk": (STREAM_HEAD, "trickle"),
    "trickle-after-chunk": (STREAM_HEAD + GOOD_CHUNK, "trickle"),
}
TRICKLE_EVERY = 0.15  # seconds between bytes


async def _read_request(stream: anyio.abc.SocketStream, buffer: bytes) -> tuple[str, bytes]:
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive()
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    found = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
    length = int(found.group(1)) if found else 0
    while len(buffer) < length:
        buffer += await stream.receive()
    return json.loads(buffer[:length])["model"], buffer[length:]


def _reset(stream: anyio.abc.SocketStream) -> None:
    """Make the coming close a TCP reset (RST) rather than an orderly FIN."""
    sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _serve(stream: anyio.abc.SocketStream) -> None:
    buffer = b""
    async with stream:
        while True:
            try:
                model, buffer = await _read_request(stream, buffer)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
                return
            data, then = BEHAVIOURS[model]
            try:
                if data:
                    await stream.send(data)
                if then == "keep":
                    continue
                if then == "reset":
                    await anyio.sleep(0.05)  # let the client read what was sent first
                    _reset(stream)
                elif then == "bad-chunk-later":
                    await anyio.sleep(0.05)
                    await stream.send(b"zz\r\nnot a chunk\r\n")
                    await anyio.sleep(3600)
                elif then == "hang":
                    await anyio.sleep(3600)
                elif then == "trickle":
                    for byte in GOOD_CHUNK * 100:
                        await anyio.sleep(TRICKLE_EVERY)
                        await stream.send(bytes([byte]))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            return


@asynccontextmanager
async def loopback_server() -> AsyncIterator[int]:
    """Serve :data:`BEHAVIOURS` on 127.0.0.1; yields the port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, _serve)
        try:
            yield port
        finally:
            group.cancel_scope.cancel()


def local_registry(port: int) -> ProviderRegistry:
    return ProviderRegistry(
        [OpenAICompatible(name="local", base_url=f"http://127.0.0.1:{port}/v1")]
    )
