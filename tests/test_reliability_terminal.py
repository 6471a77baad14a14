"""The terminal and the middlewares around it, on the smaller defects of issue 8.

- A stream whose decoder raises ``ProviderResponseError`` when the body ends (no end
  marker) is a failure everywhere: never cached, never ``on_success``, logged as an error.
- The stream decoder is made before anything is sent.
- The module-level functions keep their overloads.
- A provider's HTTP 408, a transport timeout and the per-call deadline are one error class.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from structlog.testing import capture_logs

import pipeline
from middlewares import Cache, Callbacks, ErrorMapping, Logging, MemoryCache, Retry
from pipeline import ChatChunk, ChatResponse, Pipeline, Request, Stream, SyncStream, errors
from pipeline.adapter import StreamDecoder
from providers import ProviderRegistry, Script, mock_provider
from providers.openai_compatible import OpenAICompatible
from tests._scripted_replies import HI, chunk_event, failure

pytestmark = pytest.mark.anyio


def events(*payloads: Any) -> httpx.Response:
    body = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def done_stream() -> httpx.Response:
    response = events(chunk_event("hello"), chunk_event("", "stop"))
    return httpx.Response(
        200, headers=response.headers, content=response.content + b"data: [DONE]\n\n"
    )


def strict(script: Script) -> ProviderRegistry:
    """An OpenAI-style provider: its decoder refuses a stream that ends without ``[DONE]``
    and a finish reason (issue 8 item 2, on the adapter side)."""
    return ProviderRegistry([mock_provider("strict", script)])


async def test_a_stream_without_its_end_marker_is_a_failure_everywhere() -> None:
    script = Script(*[events(chunk_event("hello"), chunk_event("", "stop"))] * 2, done_stream())
    outcomes: list[str] = []
    pipe = Pipeline(
        [
            Logging(),
            Callbacks(
                on_success=lambda request, response: outcomes.append("success"),
                on_failure=lambda request, exc: outcomes.append(type(exc).__name__),
            ),
            Cache(MemoryCache(), sampled=True),
            ErrorMapping(),
        ],
        registry=strict(script),
    )

    async def read() -> list[str | None]:
        seen: list[str | None] = []
        stream = await pipe.acompletion("strict/m", HI, stream=True)
        async for chunk in stream:
            seen.extend(choice.delta.content for choice in chunk.choices)
        return seen

    with capture_logs() as logs:
        for _ in range(2):  # the second call is not a cache hit: nothing was stored
            seen: list[str | None] = []
            with pytest.raises(errors.ProviderResponseError, match="ended"):
                seen += await read()
        assert await read() == ["hello", ""]  # a complete stream: success, stored
        assert await read() == ["hello", ""]  # and now a hit
    assert len(script.requests) == 3
    assert outcomes == ["ProviderResponseError", "ProviderResponseError", "success", "success"]
    events_logged = [e for e in logs if e["event"] == "llm.request"]
    assert [e["outcome"] for e in events_logged][:2] == ["error", "error"]
    assert [e["log_level"] for e in events_logged][:2] == ["error", "error"]
    assert events_logged[0]["error"] == "ProviderResponseError"


async def test_a_whole_stream_ending_without_marker_before_any_chunk_raises_from_the_call() -> None:
    script = Script(events({"choices": []}))
    pipe = Pipeline([ErrorMapping()], registry=strict(script))
    with pytest.raises(errors.ProviderResponseError):
        await pipe.acompletion("strict/m", HI, stream=True)


# -- the decoder is made before anything is sent ------------------------------------------------


class NoStreams(OpenAICompatible):
    def stream_decoder(self, request: Request) -> StreamDecoder:  # type: ignore[override]
        raise errors.InvalidRequestError("this provider cannot stream that", provider=self.name)


async def test_a_decoder_that_fails_to_start_sends_nothing() -> None:
    closed: list[bool] = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            yield b"data: [DONE]\n\n"

        async def aclose(self) -> None:
            closed.append(True)

    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, stream=Body())

    adapter = NoStreams(
        name="nostream", base_url="http://x.invalid/v1", transport=httpx.MockTransport(handler)
    )
    pipe = Pipeline([ErrorMapping()], registry=ProviderRegistry([adapter]))
    with pytest.raises(errors.InvalidRequestError):
        await pipe.acompletion("nostream/m", HI, stream=True)
    assert sent == []  # nothing sent, so no response left open
    assert closed == []


# -- the status decides the class: end to end through Retry ----------------------------------------


async def test_a_401_whose_body_says_server_error_is_an_authentication_error_not_retried() -> None:
    body = {"error": {"message": "bad key", "type": "server_error", "code": None}}
    script = Script(*[httpx.Response(401, json=body)] * 3)
    pipe = Pipeline(
        [Retry(attempts=3, sleep=lambda seconds: anyio.lowlevel.checkpoint()), ErrorMapping()],
        registry=ProviderRegistry([mock_provider("p", script)]),
    )
    with pytest.raises(errors.AuthenticationError) as caught:
        await pipe.acompletion("p/m", HI)
    assert not caught.value.retryable
    assert len(script.requests) == 1


# -- module-level functions keep their types ------------------------------------------------------


def test_module_level_functions_keep_their_overloads() -> None:
    for function, streamed in ((pipeline.acompletion, Stream), (pipeline.completion, SyncStream)):
        overloads = typing.get_overloads(function)
        returns = [typing.get_type_hints(o, vars(pipeline))["return"] for o in overloads]
        assert returns == [ChatResponse, streamed[ChatChunk]]
    hints = typing.get_type_hints(pipeline.aembedding, vars(pipeline))
    assert hints["return"] is pipeline.EmbeddingResponse


# -- one class for "no answer in time" -------------------------------------------------------------


async def test_http_408_a_transport_timeout_and_the_deadline_are_one_error_class() -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(3600)
        raise AssertionError("unreachable")

    script = Script(failure(408, "request timed out"), httpx.ReadTimeout("read timed out"))
    pipe = Pipeline(
        [ErrorMapping()],
        registry=ProviderRegistry([mock_provider("p", script), mock_provider("slow", never)]),
    )
    caught: list[errors.DispatchError] = []
    for model, timeout in (("p/m", None), ("p/m", None), ("slow/m", 0.05)):
        with pytest.raises(errors.DispatchError) as raised, anyio.fail_after(5):
            await pipe.acompletion(model, HI, timeout=timeout)
        caught.append(raised.value)
    assert [type(e) for e in caught] == [errors.TimeoutError] * 3
    assert all(e.retryable and isinstance(e, TimeoutError) for e in caught)
    assert [e.status_code for e in caught] == [408, None, None]
