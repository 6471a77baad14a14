"""Logging: one event per request (streams: at their end), no keys, contents only if asked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping, Sequence
from typing import Any

import anyio
import httpx
import pytest
import structlog
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from middlewares.cache import Cache, MemoryCache
from middlewares.request_logging import Logging
from pipeline import Attempt, Pipeline, Request, UpstreamStatusError, errors
from pipeline._chain import Handler
from providers import ProviderRegistry, echo_handler, mock_provider

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "a private question"}]
KEY = "sk-live-do-not-log-0123456789"


def pipeline(*layers: Any, handler: Any = echo_handler) -> Pipeline:
    return Pipeline(list(layers), registry=ProviderRegistry([mock_provider("mock", handler)]))


def requests(logs: Sequence[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [event for event in logs if event["event"] == "llm.request"]


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def chunk_event(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


async def test_one_event_per_successful_request() -> None:
    pipe = pipeline(Logging())
    with capture_logs() as logs:
        response = await pipe.acompletion("mock/m", HI)
    [event] = requests(logs)
    assert event["log_level"] == "info"
    assert event["outcome"] == "ok"
    assert (event["endpoint"], event["provider"], event["model"]) == ("chat", "mock", "m")
    assert event["stream"] is False
    assert event["latency_ms"] >= 0
    assert response.usage is not None
    assert event["prompt_tokens"] == response.usage.prompt_tokens
    assert event["completion_tokens"] == response.usage.completion_tokens
    assert event["total_tokens"] == response.usage.total_tokens
    assert event["cache_hit"] is False
    assert event["attempts"] == 1
    assert event["error"] is None and event["status_code"] is None
    assert len(event["request_id"]) == 32
    assert "messages" not in event and "output" not in event


async def test_each_request_gets_its_own_request_id() -> None:
    pipe = pipeline(Logging())
    with capture_logs() as logs:
        for _ in range(3):
            await pipe.acompletion("mock/m", HI)
    assert len({event["request_id"] for event in requests(logs)}) == 3


async def test_error_is_logged_once_with_status_and_class() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, json={"error": {"message": "slow down"}}, headers={"x-request-id": "req-9"}
        )

    pipe = pipeline(Logging(), handler=handler)
    with capture_logs() as logs, pytest.raises(UpstreamStatusError):
        await pipe.acompletion("mock/m", HI)
    [event] = requests(logs)
    assert event["log_level"] == "error"
    assert event["outcome"] == "error"
    assert event["error"] == "UpstreamStatusError"
    assert event["status_code"] == 429


async def test_unified_error_fields_and_attempts() -> None:
    async def failing(request: Request, call_next: Handler) -> Any:
        exc = errors.RateLimitError(
            "slow down", provider="mock", model="m", status_code=429, request_id="req-7"
        )
        exc.attempts = (Attempt("mock", "m", "RateLimitError"),) * 3
        raise exc

    pipe = pipeline(Logging(), failing)
    with capture_logs() as logs, pytest.raises(errors.RateLimitError):
        await pipe.acompletion("mock/m", HI)
    [event] = requests(logs)
    assert (event["error"], event["status_code"]) == ("RateLimitError", 429)
    assert event["attempts"] == 3
    assert event["provider_request_id"] == "req-7"
    assert "slow down" in event["error_message"]


async def test_attempts_and_cache_hit_come_from_the_response() -> None:
    async def two_tries(request: Request, call_next: Handler) -> Any:
        response = await call_next(request)
        response.attempts = (Attempt("mock", "m", "TimeoutError"), Attempt("mock", "m"))
        return response

    pipe = pipeline(Logging(), Cache(MemoryCache(), sampled=True), two_tries)
    with capture_logs() as logs:
        await pipe.acompletion("mock/m", HI)
        await pipe.acompletion("mock/m", HI)
    first, second = requests(logs)
    assert (first["attempts"], first["cache_hit"]) == (2, False)
    # A hit keeps the path its stored answer took.
    assert (second["attempts"], second["cache_hit"]) == (2, True)


async def test_cancelled_request_is_logged_as_cancelled() -> None:
    entered = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        entered.set()
        await anyio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    pipe = pipeline(Logging(), handler=handler)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await pipe.acompletion("mock/m", HI)

            tg.start_soon(call)
            await entered.wait()
            tg.cancel_scope.cancel()
    [event] = requests(logs)
    assert event["outcome"] == "cancelled"
    assert event["log_level"] == "info"


# -- streams -----------------------------------------------------------------------


async def test_stream_logs_once_at_its_end_with_usage() -> None:
    pipe = pipeline(Logging())
    with capture_logs() as logs:
        stream = await pipe.acompletion("mock/m", HI, stream=True)
        assert requests(logs) == []  # nothing until the stream ends
        chunks = [chunk async for chunk in stream]
        await stream.aclose()
    [event] = requests(logs)
    assert event["outcome"] == "ok"
    assert event["stream"] is True
    assert event["chunks"] == len(chunks)
    usage = next(c.usage for c in chunks if c.usage is not None)
    assert event["total_tokens"] == usage.total_tokens
    assert event["latency_ms"] >= event["first_chunk_ms"] >= 0


def whole_body_stream(request: httpx.Request) -> httpx.Response:
    """A stream whose body is plain bytes: closing it early leaves no generator behind
    (the mock's async-generator body is never closed by httpx, which trio reports)."""
    body = sse(chunk_event("echo: "), chunk_event("hi", "stop")) + b"data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


async def test_stream_closed_early_logs_once_as_cancelled() -> None:
    pipe = pipeline(Logging(), handler=whole_body_stream)
    with capture_logs() as logs:
        stream = await pipe.acompletion("mock/m", HI, stream=True)
        await stream.__anext__()
        await stream.aclose()
        await stream.aclose()
    [event] = requests(logs)
    assert event["outcome"] == "cancelled"
    assert event["chunks"] == 1


async def test_stream_error_midway_logs_once_as_error() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield sse(chunk_event("one "), chunk_event("two "))
        raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    pipe = pipeline(Logging(), handler=handler)
    with capture_logs() as logs:
        stream = await pipe.acompletion("mock/m", HI, stream=True)
        with pytest.raises(httpx.ReadError):
            async for _ in stream:
                pass
        await stream.aclose()
    [event] = requests(logs)
    assert (event["outcome"], event["error"], event["chunks"]) == ("error", "ReadError", 2)
    assert event["log_level"] == "error"


# -- secrets and contents ------------------------------------------------------------


async def test_api_key_never_appears_even_with_contents_logged() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "bad key"}})

    async def leaky(request: Request, call_next: Handler) -> Any:
        # a raw exception whose message carries the key
        raise RuntimeError(f"could not use {request.api_key.reveal() if request.api_key else ''}")

    for layer in (Logging(), Logging(log_content=True)):
        with capture_logs() as logs:
            await pipeline(layer).acompletion("mock/m", HI, api_key=KEY)
            stream = await pipeline(layer).acompletion("mock/m", HI, api_key=KEY, stream=True)
            async for _ in stream:
                pass
            with pytest.raises(UpstreamStatusError):
                await pipeline(layer, handler=handler).acompletion("mock/m", HI, api_key=KEY)
            with pytest.raises(RuntimeError, match="could not use"):
                await pipeline(layer, leaky).acompletion("mock/m", HI, api_key=KEY)
        assert len(requests(logs)) == 4
        assert requests(logs)[-1]["error_message"] == "could not use ***"
        text = repr(logs)
        assert KEY not in text
        assert "do-not-log" not in text
    assert KEY not in repr(Logging(log_content=True))


async def test_contents_only_when_enabled() -> None:
    with capture_logs() as logs:
        await pipeline(Logging()).acompletion("mock/m", HI)
        await pipeline(Logging()).aembedding("mock/e", "private text")
    assert "private" not in repr(logs)

    with capture_logs() as logs:
        await pipeline(Logging(log_content=True)).acompletion("mock/m", HI)
        stream = await pipeline(Logging(log_content=True)).acompletion("mock/m", HI, stream=True)
        async for _ in stream:
            pass
        await pipeline(Logging(log_content=True)).atranscription("mock/w", ("a.wav", b"RIFF"))
    whole, streamed, transcription = requests(logs)
    for event in (whole, streamed):
        assert event["messages"] == HI
        assert event["output"] == ["echo: a private question"]
    assert transcription["input"] == ("a.wav", "<4 bytes>")
    assert transcription["output"].startswith("mock transcription")


async def test_request_id_is_bound_for_inner_middlewares() -> None:
    seen: list[str] = []

    async def inner(request: Request, call_next: Handler) -> Any:
        structlog.get_logger("user").info("inner.step")
        seen.append(structlog.contextvars.get_contextvars()["request_id"])
        return await call_next(request)

    pipe = pipeline(Logging(), inner)
    with capture_logs(processors=[merge_contextvars]) as logs:
        await pipe.acompletion("mock/m", HI)
    [inner_line] = [e for e in logs if e["event"] == "inner.step"]
    [event] = requests(logs)
    assert inner_line["request_id"] == event["request_id"] == seen[0]
    assert "request_id" not in structlog.contextvars.get_contextvars()  # unbound afterwards


async def test_log_content_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="log_content"):
        Logging(log_content="yes")  # type: ignore[arg-type]
    assert repr(Logging()) == "Logging(log_content=False)"
