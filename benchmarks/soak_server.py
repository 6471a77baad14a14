"""A fault-injecting OpenAI-style server on 127.0.0.1 (aiohttp.web), for the soak.

``python -m benchmarks.soak_server SEED HANG`` serves ``POST
/{provider}/v1/chat/completions`` for any provider name. Each request draws
its fault from one ``random.Random(SEED)``: most answer well; the rest answer
429 (with Retry-After), 500, 503 or 529, hang for HANG seconds (past the
client's timeout), send malformed or truncated JSON, an empty 200, HTML with
200, cut a stream mid-way, end a stream without its end marker, send a
malformed event, break HTTP framing (a garbage status line, a bad chunk
size), or reset the connection.

Every answer that is wrong but could be parsed carries ``TAINTED:<fault>:``
in its text, and good answers never do: a client that reports a tainted
answer as a success has accepted a truncated or malformed reply (and the
text names which).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from benchmarks.server import serve

TAINT = "TAINTED"
CHUNKS = 8

Fault = Callable[[web.Request, bool], Awaitable[web.StreamResponse]]


def _completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-soak",
            "object": "chat.completion",
            "created": 1,
            "model": "soak-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
        }
    ).encode()


def _event(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {
        "id": "chatcmpl-soak",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "soak-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _events(word: str) -> list[bytes]:
    return [_event(f"{word}{i} ") for i in range(CHUNKS)]


GOOD = _completion("a good answer")
GOOD_EVENTS = [*_events("tok"), _event(None, "stop"), b"data: [DONE]\n\n"]


def tainted(fault: str) -> str:
    return f"{TAINT}:{fault}:"


_PARTIAL = ("hang-mid-body", "cut-mid-stream", "no-end-marker", "malformed-event", "bad-chunk")
TAINTED_EVENTS = {fault: _events(tainted(fault)) for fault in _PARTIAL}
SSE = {"content-type": "text/event-stream"}


def _error(status: int, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"error": {"message": f"injected {status}", "type": "soak", "code": None}})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


async def _stream(request: web.Request, events: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE)
    await response.prepare(request)
    for event in events:
        await response.write(event)
    await response.write_eof()
    return response


def _head(content_type: str, length: int | None = None) -> bytes:
    framing = "transfer-encoding: chunked" if length is None else f"content-length: {length}"
    return f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n{framing}\r\n\r\n".encode()


def _hang_up(request: web.Request, data: bytes = b"", *, reset: bool = False) -> web.StreamResponse:
    """Write raw bytes (if any) straight to the socket and drop the connection; the
    handler then ends as cancelled, so aiohttp writes nothing more."""
    transport = request.transport
    assert transport is not None
    if data:
        transport.write(data)
    if reset:
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    raise asyncio.CancelledError


async def ok(request: web.Request, stream: bool) -> web.StreamResponse:
    if stream:
        return await _stream(request, GOOD_EVENTS)
    return web.Response(body=GOOD, content_type="application/json")


def status(code: int, headers: dict[str, str] | None = None) -> Fault:
    async def fault(request: web.Request, stream: bool) -> web.StreamResponse:
        return _error(code, headers)

    return fault


class Faults:
    """The server's behaviour: its RNG and how long a hang lasts."""

    def __init__(self, seed: int, hang: float) -> None:
        self.random = random.Random(seed)
        self.hang = hang

    async def hang_first(self, request: web.Request, stream: bool) -> web.StreamResponse:
        await asyncio.sleep(self.hang)
        return await ok(request, stream)

    async def hang_mid_body(self, request: web.Request, stream: bool) -> web.StreamResponse:
        if not stream:
            transport = request.transport
            assert transport is not None
            transport.write(_head("application/json", len(GOOD)) + GOOD[:20])
            await asyncio.sleep(self.hang)
            return _hang_up(request)
        response = web.StreamResponse(headers=SSE)
        await response.prepare(request)
        await response.write(TAINTED_EVENTS["hang-mid-body"][0])
        await asyncio.sleep(self.hang)
        return response


async def malformed_json(request: web.Request, stream: bool) -> web.StreamResponse:
    return web.Response(body=b'{"choices": [{"message": ', content_type="application/json")


async def truncated_json(request: web.Request, stream: bool) -> web.StreamResponse:
    body = _completion(tainted("truncated-json"))
    return web.Response(body=body[: len(body) // 2], content_type="application/json")


async def empty_200(request: web.Request, stream: bool) -> web.StreamResponse:
    return web.Response(body=b"", content_type="application/json")


async def html_200(request: web.Request, stream: bool) -> web.StreamResponse:
    page = f"<html><body>{tainted('html-200')} a gateway's page</body></html>"
    return web.Response(text=page, content_type="text/html")


async def cut_mid_stream(request: web.Request, stream: bool) -> web.StreamResponse:
    if not stream:  # a body shorter than its content-length, then the connection ends
        return _hang_up(request, _head("application/json", len(GOOD)) + GOOD[:20])
    response = web.StreamResponse(headers=SSE)
    await response.prepare(request)
    for event in TAINTED_EVENTS["cut-mid-stream"][:3]:
        await response.write(event)
    return _hang_up(request)


async def no_end_marker(request: web.Request, stream: bool) -> web.StreamResponse:
    if not stream:
        return await truncated_json(request, stream)
    return await _stream(request, TAINTED_EVENTS["no-end-marker"][:5])  # no finish, no [DONE]


async def malformed_event(request: web.Request, stream: bool) -> web.StreamResponse:
    if not stream:
        return await malformed_json(request, stream)
    broken = b'data: {"choices": [{"delta": \n\n'
    return await _stream(request, [*TAINTED_EVENTS["malformed-event"][:2], broken])


async def bad_status_line(request: web.Request, stream: bool) -> web.StreamResponse:
    return _hang_up(request, b"HTTP/1.1 abc nonsense\r\n\r\n")


async def bad_chunk_size(request: web.Request, stream: bool) -> web.StreamResponse:
    head = _head("text/event-stream")
    first = TAINTED_EVENTS["bad-chunk"][0]
    good_chunk = f"{len(first):x}\r\n".encode() + first + b"\r\n"
    return _hang_up(request, head + good_chunk + b"zz\r\nnot a chunk\r\n")


async def reset(request: web.Request, stream: bool) -> web.StreamResponse:
    return _hang_up(request, reset=True)


def app(seed: int, hang: float) -> web.Application:
    faults = Faults(seed, hang)
    # (weight, fault): about two requests in five get a fault.
    table: list[tuple[int, Fault]] = [
        (60, ok),
        (5, status(429, {"retry-after": "1"})),
        (4, status(500)),
        (3, status(503)),
        (2, status(529)),
        (2, faults.hang_first),
        (2, faults.hang_mid_body),
        (2, malformed_json),
        (2, truncated_json),
        (2, empty_200),
        (2, html_200),
        (3, cut_mid_stream),
        (3, no_end_marker),
        (2, malformed_event),
        (2, bad_status_line),
        (2, bad_chunk_size),
        (2, reset),
    ]
    weights = [w for w, _ in table]
    choices = [f for _, f in table]

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        body: Any = json.loads(await request.read())
        (fault,) = faults.random.choices(choices, weights)
        return await fault(request, bool(body.get("stream")))

    application = web.Application()
    application.router.add_post("/{provider}/v1/chat/completions", chat_completions)
    return application


if __name__ == "__main__":
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)  # dropped connections are the point
    serve(app(int(sys.argv[1]), float(sys.argv[2])), shutdown_timeout=0.5)  # hangs need no wait
