"""The terminal and the middlewares around it, on the smaller defects of issue 8.

- A stream whose decoder raises ``ProviderResponseError`` when the body ends (no end
  marker) is a failure everywhere: never cached, never ``on_success``, logged as an error.
- The stream decoder is made before anything is sent.
- ``stream=`` is never sent as another endpoint's body parameter.
- The module-level functions keep their overloads.
- A provider's HTTP 408, a transport timeout and the per-call deadline are one error class.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

import pipeline
from middlewares import Cache, Callbacks, ErrorMapping, Logging, MemoryCache
from pipeline import ChatChunk, ChatResponse, Pipeline, Request, Stream, SyncStream, errors
from providers import ProviderRegistry, Script, mock_provider
from providers.openai_compatible import OpenAICompatible, OpenAIStreamDecoder
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


class MarkerRequired:
    """A decoder that raises at the body's end when ``[DONE]`` never came (as every
    provider's decoder will: issue 8 item 2, on the adapter side)."""

    def __init__(self, request: Request) -> None:
        self._inner = OpenAIStreamDecoder(request)
        self._request = request
        self._done = False

    def feed(self, data: bytes) -> list[ChatChunk]:
        self._done = self._done or b"[DONE]" in data
        return self._inner.feed(data)

    def close(self) -> list[ChatChunk]:
        out = self._inner.close()
        if not self._done:
            raise errors.ProviderResponseError(
                "the stream ended without its end marker",
                provider=self._request.provider,
                model=self._request.model,
            )
        return out


class Strict(OpenAICompatible):
    def stream_decoder(self, request: Request) -> MarkerRequired:  # type: ignore[override]
        return MarkerRequired(request)


def strict(script: Script) -> ProviderRegistry:
    return ProviderRegistry(
        [
            Strict(
                name="strict",
                base_url="http://strict.invalid/v1",
                transport=httpx.MockTransport(script),
            )
        ]
    )


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
            with pytest.raises(errors.ProviderResponseError, match="end marker"):
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
    def stream_decoder(self, request: Request) -> OpenAIStreamDecoder:
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


# -- stream= for endpoints that do not stream ------------------------------------------------------


async def test_stream_is_never_sent_as_an_embedding_parameter() -> None:
    script = Script(
        httpx.Response(
            200,
            json={"data": [{"index": 0, "embedding": [0.1]}], "model": "e", "object": "list"},
        )
    )
    pipe = Pipeline(registry=ProviderRegistry([mock_provider("mock", script)]))
    with pytest.raises(errors.InvalidRequestError, match="only chat"):
        await pipe.aembedding("mock/e", "text", stream=True)
    assert script.requests == []
    await pipe.aembedding("mock/e", "text", stream=False)
    assert "stream" not in json.loads(script.requests[0].content)


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
