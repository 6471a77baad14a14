"""The built-in ``mock`` provider: no network, no key, deterministic replies.

It is an OpenAI-compatible provider whose transport is an in-process
``httpx.MockTransport``, so a request to it takes the real path: build,
send, status check, parse or stream-decode. Chat replies echo the last user
message; streams send the reply a word per chunk; embeddings are stable
vectors derived from the text.

Testing seams: :func:`mock_provider` takes any sync or async
``handler(httpx.Request) -> httpx.Response``, and :class:`Script` replays a
list of replies (responses or exceptions), one per request, for retry and
fallback tests.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from providers.openai_compatible import ALL_ENDPOINTS, OpenAICompatible

MOCK_BASE_URL = "http://mock.dispatchline.invalid/v1"

MockHandler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict)).strip()
    return ""


def _vector(text: str, dimensions: int) -> list[float]:
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend((v / 2**31) - 1.0 for v in struct.unpack("<8I", digest))
        counter += 1
    return [round(v, 6) for v in out[:dimensions]]


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    text = _last_user_text(body.get("messages") or [])
    reply = f"echo: {text}" if text else "echo"
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
    words = len(reply.split())
    return {
        "id": "chatcmpl-mock-" + hashlib.sha256(reply.encode()).hexdigest()[:12],
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model", "echo"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": words,
            "total_tokens": prompt + words,
        },
    }


class _SSEBody(httpx.AsyncByteStream):
    """The events of a streamed reply, one per read, ending in ``[DONE]``.

    A plain async iterator rather than a generator: closed early, it leaves
    nothing for the garbage collector to finalise.
    """

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
        self._events.append(b"data: [DONE]\n\n")
        self._next = 0

    def __aiter__(self) -> _SSEBody:
        return self

    async def __anext__(self) -> bytes:
        if self._next >= len(self._events):
            raise StopAsyncIteration
        self._next += 1
        return self._events[self._next - 1]

    async def aclose(self) -> None:
        self._next = len(self._events)


def _chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    base = {k: completion[k] for k in ("id", "created", "model")} | {
        "object": "chat.completion.chunk"
    }
    words = completion["choices"][0]["message"]["content"].split(" ")
    events = [
        base
        | {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ]
        }
    ]
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        events.append(
            base | {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        )
    events.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append(base | {"choices": [], "usage": completion["usage"]})
    return events


def echo_handler(request: httpx.Request) -> httpx.Response:
    """The default mock: answers every endpoint of the OpenAI API deterministically."""
    path = request.url.path
    if path.endswith("/audio/transcriptions"):
        found = re.search(rb'filename="([^"]*)"', request.content)
        name = found.group(1).decode() if found else "audio"
        return httpx.Response(200, json={"text": f"mock transcription of {name}"})
    body = json.loads(request.content or b"{}")
    if path.endswith("/chat/completions"):
        completion = _completion(body)
        if body.get("stream"):
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                stream=_SSEBody(_chunks(completion)),
            )
        return httpx.Response(200, json=completion)
    if path.endswith("/embeddings"):
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        size = int(body.get("dimensions") or 8)
        tokens = sum(len(str(t).split()) for t in texts)
        return httpx.Response(
            200,
            json={
                "object": "list",
                "model": body.get("model"),
                "data": [
                    {"object": "embedding", "index": i, "embedding": _vector(str(t), size)}
                    for i, t in enumerate(texts)
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )
    if path.endswith("/images/generations"):
        digest = hashlib.sha256(str(body.get("prompt")).encode()).hexdigest()[:16]
        return httpx.Response(
            200,
            json={
                "created": 1_700_000_000,
                "data": [{"url": f"{MOCK_BASE_URL}/images/{digest}.png"}],
            },
        )
    if path.endswith("/audio/speech"):
        audio = b"MOCKAUDIO" + hashlib.sha256(str(body.get("input")).encode()).digest()
        return httpx.Response(200, headers={"content-type": "audio/mpeg"}, content=audio)
    return httpx.Response(404, json={"error": {"message": f"no mock route {path}", "code": None}})


def mock_provider(
    name: str = "mock", handler: MockHandler = echo_handler, **config: Any
) -> OpenAICompatible:
    """An OpenAI-compatible provider answered in-process by ``handler`` (sync or async)."""
    return OpenAICompatible(
        name=name,
        base_url=MOCK_BASE_URL,
        endpoints=config.pop("endpoints", ALL_ENDPOINTS),
        transport=httpx.MockTransport(handler),
        **config,
    )


Reply = httpx.Response | BaseException | Callable[[httpx.Request], httpx.Response]


class Script:
    """A handler that replays ``replies`` in order, one per request.

    Each reply is an ``httpx.Response``, an exception to raise (``httpx.ConnectTimeout``
    and friends), or a callable taking the request. ``requests`` records what was sent.
    Running out of replies fails loudly.
    """

    def __init__(self, *replies: Reply) -> None:
        self._replies: deque[Reply] = deque(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self._replies:
            raise AssertionError(f"Script ran out of replies at request {len(self.requests)}")
        reply = self._replies.popleft()
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    @property
    def remaining(self) -> int:
        return len(self._replies)
