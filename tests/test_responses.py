"""Responses are OpenAI-shaped: the official SDK's types accept ``to_dict()``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse, ImagesResponse
from openai.types.audio import Transcription
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from pipeline import (
    ChatChunk,
    ChatResponse,
    Pipeline,
    Request,
    StreamAccumulator,
    errors,
)
from providers import mock_provider

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi there"}]


@pytest.fixture
def pipe() -> Pipeline:
    return Pipeline()


async def test_chat_response_validates_as_openai_chat_completion(pipe: Pipeline) -> None:
    resp = await pipe.acompletion("mock/echo", HI)
    assert isinstance(resp, ChatResponse)
    parsed = ChatCompletion.model_validate(resp.to_dict())
    assert parsed.choices[0].message.content == "echo: hi there"
    assert parsed.usage is not None and parsed.usage.total_tokens == resp.usage.total_tokens  # type: ignore[union-attr]
    assert resp.provider == "mock" and resp.model == "echo" and resp.latency > 0


async def test_tool_calls_validate_as_openai_types() -> None:
    body = {
        "id": "c",
        "created": 3,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 7,
            "total_tokens": 12,
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }
    pipe = Pipeline(
        registry=_registry(lambda request: httpx.Response(200, json=body)),
    )
    resp = await pipe.acompletion("mock/m", HI)
    call = resp.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "weather",
        '{"city": "Oslo"}',
    )
    assert resp.usage is not None and resp.usage.reasoning_tokens == 2
    parsed = ChatCompletion.model_validate(resp.to_dict())
    assert parsed.choices[0].finish_reason == "tool_calls"
    assert parsed.choices[0].message.tool_calls[0].function.name == "weather"  # type: ignore[index, union-attr]


async def test_chunks_validate_and_accumulate(pipe: Pipeline) -> None:
    stream = await pipe.acompletion("mock/echo", HI, stream=True)
    acc = StreamAccumulator()
    async with stream:
        async for chunk in stream:
            ChatCompletionChunk.model_validate(chunk.to_dict())
            acc.add(chunk)
    whole = acc.response()
    assert whole.choices[0].message.content == "echo: hi there"
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.total_tokens > 0
    ChatCompletion.model_validate(whole.to_dict())


async def test_other_endpoints_validate(pipe: Pipeline) -> None:
    emb = await pipe.aembedding("mock/e", ["a", "b"], dimensions=5)
    parsed = CreateEmbeddingResponse.model_validate(emb.to_dict())
    assert [len(d.embedding) for d in parsed.data] == [5, 5]
    img = await pipe.aimage_generation("mock/i", "a red fox")
    assert ImagesResponse.model_validate(img.to_dict()).data[0].url  # type: ignore[index]
    text = await pipe.atranscription("mock/t", ("clip.wav", b"RIFF1234"))
    assert Transcription.model_validate(text.to_dict()).text == "mock transcription of clip.wav"
    audio = await pipe.aspeech("mock/s", "hello", voice="alloy")
    assert audio.content.startswith(b"MOCKAUDIO") and audio.content_type == "audio/mpeg"


async def test_embeddings_are_deterministic(pipe: Pipeline) -> None:
    first = await pipe.aembedding("mock/e", "same text")
    second = await pipe.aembedding("mock/e", "same text")
    other = await pipe.aembedding("mock/e", "other text")
    assert first.data[0].embedding == second.data[0].embedding
    assert first.data[0].embedding != other.data[0].embedding


def _registry(handler: Any) -> Any:
    from providers import ProviderRegistry

    return ProviderRegistry([mock_provider("mock", handler)])


MOCK = mock_provider()
REQUEST = Request(endpoint="chat", provider="mock", model="m", messages=HI)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["id", "choices", "message", "content", "usage", "index", "finish_reason",
             "tool_calls", "function", "name", "arguments", "role", "delta", "model", "x"]
        ),
        children,
        max_size=6,
    ),
    max_leaves=25,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(body=json_values)
async def test_arbitrary_json_ends_in_response_or_provider_response_error(body: Any) -> None:
    response = httpx.Response(200, content=json.dumps(body).encode())
    try:
        parsed = MOCK.parse(REQUEST, response)
    except errors.ProviderResponseError:
        return
    assert isinstance(parsed, ChatResponse)
    for choice in parsed.choices:
        assert choice.message.content is None or isinstance(choice.message.content, str)


@settings(max_examples=300, deadline=None)
@given(body=json_values)
async def test_arbitrary_stream_events_end_in_chunks_or_provider_response_error(
    body: Any,
) -> None:
    decoder = MOCK.stream_decoder(REQUEST)
    try:
        chunks = decoder.feed(b"data: " + json.dumps(body).encode() + b"\n\n") + decoder.close()
    except errors.ProviderResponseError:
        return
    except errors.DispatchError:  # an error event the provider sent mid-stream
        sent_error = isinstance(body, dict) and "error" in body
        assert sent_error
        return
    assert all(isinstance(c, ChatChunk) for c in chunks)


async def test_garbage_body_is_provider_response_error() -> None:
    with pytest.raises(errors.ProviderResponseError):
        MOCK.parse(REQUEST, httpx.Response(200, content=b"<html>oops</html>"))
