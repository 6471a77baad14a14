"""Cohere's v2 adapter, proven on the recorded exchanges in shared/fixtures/recorded/cohere.

The two recordings (a chat reply and an embed 404) are rebuilt from
OpenAI-shaped calls and compared with what went over the wire. The stream,
tool-call and embedding replies below are written from Cohere's v2 API
reference (event types ``message-start``, ``content-delta``,
``tool-call-start``... and the ``{"id", "message"}`` error body), since no
public recording of them turned up.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import (
    ChatChunk,
    ChatResponse,
    EmbeddingResponse,
    Pipeline,
    Request,
    Result,
    Secret,
    StreamAccumulator,
    UpstreamStatusError,
    Usage,
    errors,
)
from pipeline._chain import Handler
from providers import ProviderRegistry, default_registry
from providers.cohere import COHERE, KEY_ENVS, Cohere
from tests._decoding import accumulate, assert_whole, feed
from tests._mutations import FUZZ, cut_and_flipped, damaged
from tests.conftest import load_recorded, recorded_names

pytestmark = pytest.mark.anyio

KEY = "co-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def cohere_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CO_API_KEY", KEY)


# -- the OpenAI-shaped call behind each recording -------------------------------


@attrs.frozen
class Call:
    endpoint: str
    model: str
    messages: list[dict[str, Any]] = attrs.Factory(list)
    input: Any = None
    params: dict[str, Any] = attrs.Factory(dict)

    def request(self, stream: bool = False) -> Request:
        return Request(
            endpoint=self.endpoint,  # type: ignore[arg-type]
            provider="cohere",
            model=self.model,
            messages=self.messages,
            input=self.input,
            params=self.params,
            stream=stream,
        )


HELLO = [{"role": "user", "content": "hello"}]
CALLS: dict[str, Call] = {
    "cohere/chat_v2_basic.json": Call("chat", "command-r7b-12-2024", HELLO),
    "cohere/error_404_embed_model_not_found.json": Call(
        "embedding",
        "nonexistent",
        input=["Hello, world!"],
        params={"input_type": "search_query", "truncate": "NONE"},
    ),
}


def as_sent(name: str) -> dict[str, Any]:
    """The recorded body as this adapter sends it: the SDK also sent unset
    fields as ``null``, which this adapter leaves out."""
    body = load_recorded(name)["request"]["body"]
    return {k: v for k, v in body.items() if v is not None}


async def test_every_recording_is_covered() -> None:
    for name in CALLS:
        load_recorded(name)  # skips with a reason when the recordings are absent
    assert set(recorded_names("cohere")) == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_request_matches_the_recording(name: str) -> None:
    recorded = load_recorded(name)["request"]
    built = COHERE.build(CALLS[name].request())
    assert built.method == recorded["method"]
    assert str(built.url) == recorded["url"]
    assert built.headers["content-type"] == recorded["headers"]["content-type"]
    assert built.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(built.content) == as_sent(name)


def recorded_reply(name: str) -> httpx.Response:
    response = load_recorded(name)["response"]
    return httpx.Response(response["status"], headers=response["headers"], json=response["body"])


async def test_recorded_chat_reply() -> None:
    name = "cohere/chat_v2_basic.json"
    resp = COHERE.parse(CALLS[name].request(), recorded_reply(name))
    assert isinstance(resp, ChatResponse)
    assert resp.id == "f17a5f6c-1734-4098-bd0d-733ef000ac7b"
    [choice] = resp.choices
    assert choice.message.content == "Hello! How can I assist you today?"
    assert choice.message.tool_calls is None
    assert choice.message.reasoning_content is None
    assert choice.finish_reason == "stop"  # COMPLETE
    # usage.tokens (what the model read and wrote), not the billed units (1 and 9)
    assert resp.usage == Usage(prompt_tokens=496, completion_tokens=11, total_tokens=507)
    assert resp.model == "command-r7b-12-2024"


async def test_recorded_error_reply() -> None:
    name = "cohere/error_404_embed_model_not_found.json"
    error = COHERE.parse_error(CALLS[name].request(), recorded_reply(name))
    assert type(error) is errors.NotFoundError
    assert error.status_code == 404
    assert error.message.startswith("model 'nonexistent' not found")
    assert error.retryable is False
    assert error.provider == "cohere"


async def test_usage_falls_back_to_billed_units() -> None:
    body = load_recorded("cohere/chat_v2_basic.json")["response"]["body"]
    del body["usage"]["tokens"]
    resp = COHERE.parse(
        CALLS["cohere/chat_v2_basic.json"].request(), httpx.Response(200, json=body)
    )
    assert isinstance(resp, ChatResponse)
    assert resp.usage == Usage(prompt_tokens=1, completion_tokens=9, total_tokens=10)


# -- replies written from the v2 reference ---------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOL_REPLY = {
    "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
    "finish_reason": "TOOL_CALL",
    "message": {
        "role": "assistant",
        "tool_plan": "I will look up the weather in Toronto.",
        "tool_calls": [
            {
                "id": "get_weather_1byjy32y4hvq",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Toronto"}'},
            }
        ],
    },
    "usage": {
        "billed_units": {"input_tokens": 37.0, "output_tokens": 28.0},
        "tokens": {"input_tokens": 913.0, "output_tokens": 83.0},
    },
}
ASK = [{"role": "user", "content": "What's the weather in Toronto?"}]
CHAT = Request(endpoint="chat", provider="cohere", model="command-a-03-2025", messages=ASK)


async def test_tool_call_reply() -> None:
    resp = COHERE.parse(CHAT, httpx.Response(200, json=TOOL_REPLY))
    assert isinstance(resp, ChatResponse)
    message = resp.choices[0].message
    assert message.content is None
    assert message.reasoning_content == "I will look up the weather in Toronto."
    assert message.tool_calls is not None
    [call] = message.tool_calls
    assert (call.id, call.function.name) == ("get_weather_1byjy32y4hvq", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Toronto"}
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.usage == Usage(prompt_tokens=913, completion_tokens=83, total_tokens=996)


async def test_thinking_parts_are_reasoning() -> None:
    body = {
        "id": "r1",
        "finish_reason": "MAX_TOKENS",
        "message": {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Toronto is in Canada."},
                {"type": "text", "text": "Toronto is"},
            ],
        },
        "usage": {"tokens": {"input_tokens": 5, "output_tokens": 8}, "cached_tokens": 3},
    }
    resp = COHERE.parse(CHAT, httpx.Response(200, json=body))
    assert isinstance(resp, ChatResponse)
    assert resp.choices[0].message.content == "Toronto is"
    assert resp.choices[0].message.reasoning_content == "Toronto is in Canada."
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage == Usage(
        prompt_tokens=5, completion_tokens=8, total_tokens=13, cached_tokens=3
    )


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
        ("ERROR", "stop"),
        ("TIMEOUT", "stop"),
    ],
)
async def test_finish_reasons(reason: str, expected: str) -> None:
    body = load_recorded("cohere/chat_v2_basic.json")["response"]["body"]
    body["finish_reason"] = reason
    resp = COHERE.parse(CHAT, httpx.Response(200, json=body))
    assert isinstance(resp, ChatResponse)
    assert resp.choices[0].finish_reason == expected


EMBED_REPLY = {
    "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
    "embeddings": {"float": [[0.016296387, -0.008354187, -0.04699707], [0.5, 0.25, -1.0]]},
    "texts": ["hello", "goodbye"],
    "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
    "response_type": "embeddings_by_type",
}
EMBED = Request(
    endpoint="embedding", provider="cohere", model="embed-english-v3.0", input=["hello", "goodbye"]
)


async def test_embedding_request_and_reply() -> None:
    assert json.loads(COHERE.build(EMBED).content) == {
        "model": "embed-english-v3.0",
        "texts": ["hello", "goodbye"],
        "input_type": "search_document",  # the documented default
        "embedding_types": ["float"],
    }
    resp = COHERE.parse(EMBED, httpx.Response(200, json=EMBED_REPLY))
    assert isinstance(resp, EmbeddingResponse)
    assert [e.index for e in resp.data] == [0, 1]
    assert resp.data[1].embedding == [0.5, 0.25, -1.0]
    assert resp.usage == Usage(prompt_tokens=2, total_tokens=2)


async def test_embedding_of_one_string_with_dimensions() -> None:
    request = attrs.evolve(EMBED, input="hello", params={"dimensions": 256})
    sent = json.loads(COHERE.build(request).content)
    assert sent["texts"] == ["hello"]
    assert sent["output_dimension"] == 256


async def test_embedding_of_token_ids_is_refused() -> None:
    with pytest.raises(errors.InvalidRequestError, match="string"):
        COHERE.build(attrs.evolve(EMBED, input=[101, 2023]))


# -- building chat requests -------------------------------------------------------


def body_of(request: Request) -> dict[str, Any]:
    sent: dict[str, Any] = json.loads(COHERE.build(request).content)
    return sent


async def test_tool_conversation_in_v2_shape() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "developer", "content": "Answer in one line."},
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "I will look up the weather in Toronto.",
            "tool_calls": [
                {
                    "id": "get_weather_1byjy32y4hvq",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Toronto"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "get_weather_1byjy32y4hvq",
            "content": [{"type": "text", "text": '{"temperature": 20}'}],
        },
    ]
    request = attrs.evolve(CHAT, messages=messages, params={"tools": [WEATHER_TOOL]})
    body = body_of(request)
    assert body["messages"] == [
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": "What's the weather in Toronto?"},
        {
            "role": "assistant",
            "tool_plan": "I will look up the weather in Toronto.",
            "tool_calls": [
                {
                    "id": "get_weather_1byjy32y4hvq",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Toronto"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "get_weather_1byjy32y4hvq",
            "content": '{"temperature": 20}',
        },
    ]
    assert body["tools"] == [WEATHER_TOOL]


async def test_parameters_in_cohere_names() -> None:
    params = {
        "temperature": 0.3,
        "top_p": 0.75,
        "top_k": 20,
        "max_completion_tokens": 100,
        "stop": "END",
        "seed": 11,
        "tool_choice": "required",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}},
        },
        "safety_mode": "STRICT",
        "n": 1,
        "stream_options": {"include_usage": True},
    }
    body = body_of(attrs.evolve(CHAT, params=params, stream=True))
    assert body == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "What's the weather in Toronto?"}],
        "stream": True,
        "temperature": 0.3,
        "p": 0.75,
        "k": 20,
        "max_tokens": 100,
        "stop_sequences": ["END"],
        "seed": 11,
        "tool_choice": "REQUIRED",
        "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
        "safety_mode": "STRICT",
    }


async def test_auto_tool_choice_is_cohere_default() -> None:
    assert "tool_choice" not in body_of(attrs.evolve(CHAT, params={"tool_choice": "auto"}))


async def test_image_parts() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    body = body_of(attrs.evolve(CHAT, messages=[{"role": "user", "content": content}]))
    assert body["messages"][0]["content"] == content


@pytest.mark.parametrize(
    "params",
    [
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"n": 3},
        {"parallel_tool_calls": False},
        {"response_format": {"type": "grammar"}},
    ],
)
async def test_parameters_cohere_cannot_honour(params: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        COHERE.build(attrs.evolve(CHAT, params=params))
    assert caught.value.provider == "cohere"


async def test_roles_cohere_does_not_have() -> None:
    legacy = [*ASK, {"role": "function", "name": "get_weather", "content": "20"}]
    with pytest.raises(errors.InvalidRequestError, match="function"):
        COHERE.build(attrs.evolve(CHAT, messages=legacy))


# -- keys -------------------------------------------------------------------------


async def test_key_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO_API_KEY")
    monkeypatch.setenv("COHERE_API_KEY", "from-cohere-api-key")
    assert COHERE.build(CHAT).headers["authorization"] == "Bearer from-cohere-api-key"
    monkeypatch.setenv("CO_API_KEY", "from-co-api-key")
    assert COHERE.build(CHAT).headers["authorization"] == "Bearer from-co-api-key"
    configured = Cohere(api_key=Secret("configured-key"))
    assert configured.build(CHAT).headers["authorization"] == "Bearer configured-key"
    per_call = attrs.evolve(CHAT, api_key=Secret("per-call-key"))
    assert configured.build(per_call).headers["authorization"] == "Bearer per-call-key"
    assert "configured-key" not in repr(configured)


async def test_missing_key_fails_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=TOOL_REPLY)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        pipe = Pipeline(registry=ProviderRegistry([Cohere()]), http_client=client)
        with pytest.raises(errors.AuthenticationError, match="CO_API_KEY") as caught:
            await pipe.acompletion("cohere/command-a-03-2025", ASK)
    assert "COHERE_API_KEY" in str(caught.value)
    assert seen == []


async def test_the_key_never_shows_in_an_error() -> None:
    """The key comes from CO_API_KEY: the terminal scrubs what it sent, the adapter
    threads no key by hand."""

    def echo(request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        return httpx.Response(401, json={"id": "x", "message": f"invalid api token {token}"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as client:
        pipe = Pipeline(registry=ProviderRegistry([COHERE]), http_client=client)
        with pytest.raises(UpstreamStatusError) as caught:
            await pipe.acompletion("cohere/command-a-03-2025", ASK)
    error = caught.value.unified()
    assert type(error) is errors.AuthenticationError
    assert "invalid api token" in str(error)
    assert KEY not in str(error)
    assert KEY not in repr(error)


@pytest.mark.parametrize(
    ("status", "message", "cls"),
    [
        (400, "invalid request: message must be at least 1 token long", errors.BadRequestError),
        (
            400,
            "too many tokens: total number of tokens in the prompt cannot exceed 128000",
            errors.ContextWindowExceededError,
        ),
        (
            429,
            "You are using a Trial key, which is limited to 10 API calls / minute.",
            errors.RateLimitError,
        ),
        (498, "invalid api token", errors.AuthenticationError),
        (
            500,
            "internal server error, this has been reported to our developers",
            errors.InternalServerError,
        ),
        (503, "service unavailable", errors.ServiceUnavailableError),
    ],
)
async def test_error_classes(status: int, message: str, cls: type[errors.DispatchError]) -> None:
    error = COHERE.parse_error(CHAT, httpx.Response(status, json={"id": "e1", "message": message}))
    assert type(error) is cls
    assert error.message == message


# -- streams (written from the v2 reference's event types) -------------------------


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events
    )


STREAM = sse(
    {
        "type": "message-start",
        "id": "29f14a5a-11de-4cae-9800-25e4747408ea",
        "delta": {
            "message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}
        },
    },
    {
        "type": "content-start",
        "index": 0,
        "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}},
    },
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": "Hmm."}}}},
    {"type": "content-end", "index": 0},
    {
        "type": "content-start",
        "index": 1,
        "delta": {"message": {"content": {"type": "text", "text": ""}}},
    },
    {"type": "content-delta", "index": 1, "delta": {"message": {"content": {"text": "Hello"}}}},
    {"type": "content-delta", "index": 1, "delta": {"message": {"content": {"text": " café!"}}}},
    {"type": "content-end", "index": 1},
    {
        "type": "citation-start",
        "index": 0,
        "delta": {"message": {"citations": {"start": 0, "end": 5, "text": "Hello"}}},
    },
    {"type": "citation-end", "index": 0},
    {
        "type": "message-end",
        "delta": {
            "finish_reason": "COMPLETE",
            "usage": {
                "billed_units": {"input_tokens": 3, "output_tokens": 4},
                "tokens": {"input_tokens": 70, "output_tokens": 9},
            },
        },
    },
)
TOOL_STREAM = sse(
    {"type": "message-start", "id": "m2", "delta": {"message": {"role": "assistant"}}},
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look"}}},
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": " it up."}}},
    *(
        event
        for i, city in enumerate(("Toronto", "Paris"))
        for event in (
            {
                "type": "tool-call-start",
                "index": i,
                "delta": {
                    "message": {
                        "tool_calls": {
                            "id": f"get_weather_{i}",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    }
                },
            },
            {
                "type": "tool-call-delta",
                "index": i,
                "delta": {"message": {"tool_calls": {"function": {"arguments": '{"city":'}}}},
            },
            {
                "type": "tool-call-delta",
                "index": i,
                "delta": {"message": {"tool_calls": {"function": {"arguments": f'"{city}"}}'}}}},
            },
            {"type": "tool-call-end", "index": i},
        )
    ),
    {
        "type": "message-end",
        "delta": {
            "finish_reason": "TOOL_CALL",
            "usage": {"tokens": {"input_tokens": 30, "output_tokens": 12}},
        },
    },
)
STREAMING = attrs.evolve(CHAT, stream=True)


def decode(raw: bytes, step: int | None = None) -> list[ChatChunk]:
    return feed(COHERE.stream_decoder(STREAMING), raw, step)


async def test_text_stream() -> None:
    chunks = decode(STREAM)
    resp = accumulate(chunks)
    assert resp.id == "29f14a5a-11de-4cae-9800-25e4747408ea"
    assert resp.choices[0].message.content == "Hello café!"
    assert resp.choices[0].message.reasoning_content == "Hmm."
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage == Usage(prompt_tokens=70, completion_tokens=9, total_tokens=79)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)


async def test_tool_call_stream() -> None:
    resp = accumulate(decode(TOOL_STREAM))
    message = resp.choices[0].message
    assert message.reasoning_content == "I will look it up."
    assert message.tool_calls is not None
    assert [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls
    ] == [
        ("get_weather_0", "get_weather", {"city": "Toronto"}),
        ("get_weather_1", "get_weather", {"city": "Paris"}),
    ]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.usage == Usage(prompt_tokens=30, completion_tokens=12, total_tokens=42)


@pytest.mark.parametrize("raw", [STREAM, TOOL_STREAM], ids=["text", "tools"])
async def test_stream_fed_one_byte_at_a_time(raw: bytes) -> None:
    assert decode(raw, step=1) == decode(raw)


async def test_stream_that_ends_before_message_end() -> None:
    cut = STREAM[: STREAM.index(b"event: message-end")]
    with pytest.raises(errors.ProviderResponseError, match="message-end"):
        decode(cut)


async def test_generation_error_at_message_end() -> None:
    failing = sse(
        {"type": "message-start", "id": "m3", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hel"}}}},
        {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "generation failed"}},
    )
    decoder = COHERE.stream_decoder(STREAMING)
    chunks = decoder.feed(failing)  # what came before the error reaches the caller first
    assert [c.choices[0].delta.content for c in chunks] == [None, "Hel"]
    with pytest.raises(errors.InternalServerError, match="generation failed"):
        decoder.close()


# -- end to end through a Pipeline ------------------------------------------------


async def map_errors(request: Request, call_next: Handler) -> Result:
    try:
        return await call_next(request)
    except UpstreamStatusError as exc:
        raise exc.unified() from exc


class Replay:
    """A MockTransport handler answering with one reply, in pieces when it is bytes."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.seen: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if not isinstance(self.body, bytes):
            return httpx.Response(self.status, headers=self.headers, json=self.body)
        raw = self.body

        async def pieces() -> AsyncIterator[bytes]:
            for i in range(0, len(raw), 61):
                yield raw[i : i + 61]

        return httpx.Response(self.status, headers=self.headers, content=pieces())


async def through_pipeline(replay: Replay, run: Callable[[Pipeline], Any]) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(replay)) as client:
        pipe = Pipeline([map_errors], registry=ProviderRegistry([Cohere()]), http_client=client)
        result = await run(pipe)
        if isinstance(result, (ChatResponse, EmbeddingResponse)):
            return result
        acc = StreamAccumulator()
        async for chunk in result:
            acc.add(chunk)
        return acc.response()


async def test_end_to_end_chat() -> None:
    name = "cohere/chat_v2_basic.json"
    recorded = load_recorded(name)["response"]
    replay = Replay(200, recorded["body"], {"x-request-id": "req-123", **recorded["headers"]})
    resp = await through_pipeline(replay, lambda p: p.acompletion("command-r7b-12-2024", HELLO))
    [sent] = replay.seen
    assert str(sent.url) == "https://api.cohere.com/v2/chat"
    assert json.loads(sent.content) == as_sent(name)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert resp.provider == "cohere"  # auto-detected from "command-"
    assert resp.request_id == "req-123"
    assert resp.choices[0].message.content == "Hello! How can I assist you today?"


async def test_end_to_end_stream() -> None:
    replay = Replay(200, TOOL_STREAM, {"content-type": "text/event-stream"})
    resp = await through_pipeline(
        replay,
        lambda p: p.acompletion("cohere/command-a-03-2025", ASK, stream=True, tools=[WEATHER_TOOL]),
    )
    assert json.loads(replay.seen[0].content)["stream"] is True
    assert resp.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in resp.choices[0].message.tool_calls] == ["get_weather"] * 2


async def test_end_to_end_embedding() -> None:
    replay = Replay(200, EMBED_REPLY)
    resp = await through_pipeline(
        replay, lambda p: p.aembedding("embed-english-v3.0", ["hello", "goodbye"])
    )
    assert str(replay.seen[0].url) == "https://api.cohere.com/v2/embed"
    assert resp.provider == "cohere"
    assert len(resp.data) == 2


async def test_end_to_end_error() -> None:
    name = "cohere/error_404_embed_model_not_found.json"
    recorded = load_recorded(name)["response"]
    replay = Replay(recorded["status"], recorded["body"], recorded["headers"])
    with pytest.raises(errors.NotFoundError, match="nonexistent"):
        await through_pipeline(
            replay,
            lambda p: p.aembedding(
                "cohere/nonexistent", ["Hello, world!"], input_type="search_query", truncate="NONE"
            ),
        )
    assert json.loads(replay.seen[0].content) == as_sent(name)


async def test_registered_with_its_prefixes() -> None:
    registry = default_registry(load_entry_points=False)
    assert registry["cohere"].endpoints == frozenset({"chat", "embedding"})
    for model in (
        "command-a-03-2025",
        "command-r-plus",
        "embed-english-v3.0",
        "embed-multilingual-light-v3.0",
        "c4ai-aya-expanse-32b",
    ):
        assert registry.detect(model) == "cohere"


# -- hypothesis: damaged bodies end in a response or ProviderResponseError --------


REPLIES: list[tuple[Request, Callable[[], Any]]] = [
    (CHAT, lambda: load_recorded("cohere/chat_v2_basic.json")["response"]["body"]),
    (CHAT, lambda: TOOL_REPLY),
    (EMBED, lambda: EMBED_REPLY),
]


def parses_or_fails_cleanly(request: Request, raw: bytes) -> None:
    try:
        resp = COHERE.parse(request, httpx.Response(200, content=raw))
    except errors.ProviderResponseError:
        return
    assert isinstance(resp, (ChatResponse, EmbeddingResponse))


def decodes_or_fails_cleanly(raw: bytes, step: int) -> None:
    try:
        chunks = decode(raw, step=step)
    except errors.ProviderResponseError:
        return
    except errors.DispatchError:
        assert b'"error"' in raw or b'"message"' in raw  # only a reported failure raises others
        return
    assert all(isinstance(c, ChatChunk) for c in chunks)
    assert_whole(raw, "cohere")  # a cut stream is an error, never a reply


@FUZZ
@given(data=st.data())
async def test_damaged_json_replies(data: st.DataObject) -> None:
    request, body = data.draw(st.sampled_from(REPLIES))
    parses_or_fails_cleanly(request, json.dumps(data.draw(damaged(body()))).encode())


@FUZZ
@given(data=st.data())
async def test_cut_or_flipped_json_replies(data: st.DataObject) -> None:
    request, body = data.draw(st.sampled_from(REPLIES))
    parses_or_fails_cleanly(request, data.draw(cut_and_flipped(json.dumps(body()).encode())))


@FUZZ
@given(data=st.data())
async def test_cut_or_flipped_streams(data: st.DataObject) -> None:
    raw = data.draw(cut_and_flipped(data.draw(st.sampled_from([STREAM, TOOL_STREAM]))))
    decodes_or_fails_cleanly(raw, data.draw(st.integers(1, 64)))


@FUZZ
@given(data=st.data())
async def test_streams_with_a_damaged_event(data: st.DataObject) -> None:
    events = data.draw(st.sampled_from([STREAM, TOOL_STREAM])).decode().split("\n\n")
    i = data.draw(st.integers(0, len(events) - 2))  # the last piece is the empty tail
    head, _, payload = events[i].partition("data: ")
    events[i] = head + "data: " + json.dumps(data.draw(damaged(json.loads(payload))))
    decodes_or_fails_cleanly("\n\n".join(events).encode(), data.draw(st.integers(1, 512)))


@FUZZ
@given(data=st.data())
async def test_damaged_error_bodies_still_give_an_error(data: st.DataObject) -> None:
    name = "cohere/error_404_embed_model_not_found.json"
    raw = data.draw(cut_and_flipped(json.dumps(load_recorded(name)["response"]["body"]).encode()))
    status = data.draw(st.sampled_from([400, 401, 404, 422, 429, 498, 500, 503]))
    error = COHERE.parse_error(CALLS[name].request(), httpx.Response(status, content=raw))
    assert isinstance(error, errors.APIStatusError)
    assert error.status_code == status
