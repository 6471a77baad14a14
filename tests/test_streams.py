"""Streams pass through unbuffered, close their HTTP response, and surface errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from pipeline import ChatChunk, Pipeline, Request, Stream, StreamAccumulator, observe
from pipeline._chain import Handler
from providers import ProviderRegistry, mock_provider

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def piece(text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "s1",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


class Producer(httpx.AsyncByteStream):
    """An SSE body whose events are made one at a time, on demand, logging each step.

    It is the response's transport-level stream: ``closed`` shows that closing
    reached the HTTP response (with a real transport, that releases the connection).
    """

    def __init__(self, texts: list[str], log: list[str], fail_after: int | None = None) -> None:
        self.texts = texts
        self.log = log
        self.fail_after = fail_after
        self.closed = False
        self.sent = 0

    def __aiter__(self) -> Producer:
        return self

    async def __anext__(self) -> bytes:
        i, self.sent = self.sent, self.sent + 1
        if i == self.fail_after:
            raise httpx.ReadError("connection reset mid-stream")
        if i < len(self.texts):
            self.log.append(f"made {self.texts[i]}")
            last = i == len(self.texts) - 1
            return sse(piece(self.texts[i], "stop" if last else None))
        if i == len(self.texts):
            return b"data: [DONE]\n\n"
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True

    def handler(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=self)


def pipe_for(producer: Producer, middlewares: list[Any] | None = None) -> Pipeline:
    registry = ProviderRegistry([mock_provider("mock", producer.handler)])
    return Pipeline(middlewares or [], registry=registry)


async def test_chunks_arrive_unbuffered_through_an_observing_middleware() -> None:
    log: list[str] = []
    producer = Producer(["a", "b", "c"], log)

    async def watcher(request: Request, call_next: Handler) -> Any:
        result = await call_next(request)
        assert isinstance(result, Stream)
        return observe(result, on_chunk=lambda c: log.append(f"seen {c.choices[0].delta.content}"))

    stream = await pipe_for(producer, [watcher]).acompletion("mock/m", HI, stream=True)
    async with stream:
        async for chunk in stream:
            log.append(f"got {chunk.choices[0].delta.content}")
    # The middleware sees each chunk before the producer makes the next one.
    assert log == ["made a", "seen a", "got a", "made b", "seen b", "got b", "made c", "seen c",
                   "got c"]  # fmt: skip


async def test_closing_a_stream_closes_the_http_response() -> None:
    producer = Producer(["a", "b", "c", "d"], [])
    stream = await pipe_for(producer).acompletion("mock/m", HI, stream=True)
    first = await stream.__anext__()
    assert first.choices[0].delta.content == "a"
    await stream.aclose()
    assert producer.closed
    assert stream.closed
    await stream.aclose()  # twice is fine


async def test_observed_stream_closes_inner_and_reports_early_end() -> None:
    producer = Producer(["a", "b", "c"], [])
    ends: list[bool] = []
    stream = await pipe_for(producer).acompletion("mock/m", HI, stream=True)
    observed = observe(stream, on_end=ends.append)
    async with observed:
        await observed.__anext__()
    assert producer.closed
    assert ends == [False]


async def test_error_mid_stream_propagates_and_fires_on_error_once() -> None:
    producer = Producer(["a", "b", "c"], [], fail_after=2)
    seen: list[str] = []
    errors: list[BaseException] = []
    stream = await pipe_for(producer).acompletion("mock/m", HI, stream=True)
    observed = observe(
        stream,
        on_chunk=lambda c: seen.append(c.choices[0].delta.content),
        on_end=lambda completed: pytest.fail("on_end must not fire after an error"),
        on_error=errors.append,
    )
    with pytest.raises(httpx.ReadError):
        async for _ in observed:
            pass
    assert seen == ["a", "b"]
    assert len(errors) == 1 and isinstance(errors[0], httpx.ReadError)
    assert producer.closed
    await observed.aclose()  # no second hook call
    assert len(errors) == 1


async def test_error_before_first_chunk_raises_from_the_call() -> None:
    producer = Producer(["a"], [], fail_after=0)
    with pytest.raises(httpx.ReadError):
        await pipe_for(producer).acompletion("mock/m", HI, stream=True)
    assert producer.closed


async def test_async_hooks_and_completed_end() -> None:
    producer = Producer(["x", "y"], [])
    events: list[Any] = []

    async def on_chunk(chunk: ChatChunk) -> None:
        await anyio.lowlevel.checkpoint()
        events.append(chunk.choices[0].delta.content)

    async def on_end(completed: bool) -> None:
        events.append(("end", completed))

    stream = await pipe_for(producer).acompletion("mock/m", HI, stream=True)
    acc = StreamAccumulator()
    async for chunk in observe(stream, on_chunk=on_chunk, on_end=on_end):
        acc.add(chunk)
    assert events == ["x", "y", ("end", True)]
    assert acc.response().choices[0].message.content == "xy"


async def test_cancellation_while_waiting_reports_error_and_releases() -> None:
    gate = anyio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield sse(piece("first"))
        await gate.wait()
        yield sse(piece("never"))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=slow_body())

    pipe = Pipeline(registry=ProviderRegistry([mock_provider("mock", handler)]))
    errors: list[BaseException] = []
    stream = observe(await pipe.acompletion("mock/m", HI, stream=True), on_error=errors.append)
    with anyio.move_on_after(0.05):
        async for _ in stream:
            pass
    await stream.aclose()
    assert len(errors) == 1
    assert isinstance(errors[0], anyio.get_cancelled_exc_class())


async def test_stream_carries_provenance() -> None:
    producer = Producer(["a"], [])
    stream = await pipe_for(producer).acompletion("mock/some-model", HI, stream=True)
    async with stream:
        chunks = [c async for c in stream]
    assert stream.provider == "mock"
    assert stream.model == "some-model"
    assert stream.latency > 0
    assert chunks[0].provider == "mock"
