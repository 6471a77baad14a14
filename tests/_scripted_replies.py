"""OpenAI-format provider replies, a fake clock and sleeps: for error/retry/fallback tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import httpx

from pipeline import ChatChunk, Stream
from providers import ProviderRegistry, mock_provider
from providers.mock import MockHandler

HI = [{"role": "user", "content": "hi"}]


def chat_ok(content: str = "hello", model: str = "m") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
    )


def failure(
    status: int,
    message: str = "upstream says no",
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """An OpenAI-shaped error body."""
    body = {"error": {"message": message, "type": "error", "param": None, "code": code}}
    return httpx.Response(status, json=body, headers=headers)


def chunk_event(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


async def _events(
    events: list[dict[str, Any]], fail: BaseException | None, done: bool
) -> AsyncIterator[bytes]:
    for event in events:
        yield b"data: " + json.dumps(event).encode() + b"\n\n"
    if fail is not None:
        raise fail
    if done:
        yield b"data: [DONE]\n\n"


def sse(*contents: str) -> httpx.Response:
    """A complete stream: one chunk per content, then a finish and [DONE]."""
    events = [chunk_event(c) for c in contents] + [chunk_event("", "stop")]
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=_events(events, None, True)
    )


def sse_cut(*contents: str) -> httpx.Response:
    """A stream whose connection breaks (httpx.ReadError) after the given chunks."""
    events = [chunk_event(c) for c in contents]
    fail = httpx.ReadError("connection reset by peer")
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=_events(events, fail, False)
    )


def registry(**handlers: MockHandler) -> ProviderRegistry:
    """One mock provider per keyword, answered by its handler (a ``Script``, usually)."""
    return ProviderRegistry([mock_provider(name, h) for name, h in handlers.items()])


class FakeClock:
    """A clock only the recorded sleeps move."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """An injectable ``sleep``: records each requested wait and advances ``clock``, never waits."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.waits: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.now += seconds
        await anyio.lowlevel.checkpoint()


async def drain(stream: Stream[ChatChunk], seen: list[str | None]) -> None:
    """Iterate ``stream`` to its end, appending each chunk's content to ``seen``."""
    async for chunk in stream:
        seen.append(chunk.choices[0].delta.content)
