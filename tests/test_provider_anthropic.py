"""The Anthropic Messages adapter, proven on real recorded traffic.

Every recording in ``shared/fixtures/recorded/anthropic`` is rebuilt from an
OpenAI-shaped call and compared with what went over the wire, and its
response, stream or error body is parsed and checked. Hand-written fixtures
(529 overloaded, 429 with retry-after, a mid-stream error event) follow
Anthropic's documented error format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipeline import ChatChunk, ChatResponse, Pipeline, Request, Secret, UpstreamStatusError, errors
from providers import ProviderRegistry, default_registry
from providers.anthropic import ANTHROPIC, DEFAULT_MAX_TOKENS, AnthropicMessages
from providers.openai import OPENAI
from tests._decoding import accumulate, assert_whole
from tests.conftest import load_recorded, recorded_names

pytestmark = pytest.mark.anyio

RECORDED = recorded_names("anthropic")
KEY = "sk-ant-test-0123456789abcdef"

# -- equivalent OpenAI-shaped calls for every recording ------------------------

SECRET_TOOL = {
    "type": "function",
    "function": {
        "name": "secret_retrieval_tool",
        "description": "A tool that requires a password to retrieve a secret.",
        "parameters": {
            "properties": {"password": {"title": "Password", "type": "string"}},
            "required": ["password"],
            "additionalProperties": False,
            "type": "object",
        },
    },
    "cache_control": {"type": "ephemeral"},
}
PARALLEL_SYSTEM = {
    "role": "system",
    "content": [
        {
            "type": "text",
            "text": "Use parallel tool calling.",
            "cache_control": {"type": "ephemeral"},
        }
    ],
}
PASSWORDS = {
    "role": "user",
    "content": "Please retrieve the secrets associated with each of these passwords: "
    "mellon,radiance",
}
ADD = [{"role": "user", "content": "What is 4200 + 42?"}]


@attrs.frozen
class Call:
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = attrs.Factory(dict)
    stream: bool = False


CALLS: dict[str, Call] = {
    "anthropic/error_401_authentication.json": Call(
        "claude-sonnet-4-0",
        [{"role": "user", "content": "This should fail with AuthenticationError"}],
        {"max_tokens": 16000},
    ),
    "anthropic/error_404_model_not_found.json": Call(
        "this-model-does-not-exist-12345",
        [{"role": "user", "content": "This should fail with NotFoundError"}],
        {"max_tokens": 16000},
    ),
    "anthropic/messages_basic.json": Call("claude-sonnet-4-0", ADD, {"max_tokens": 16000}),
    "anthropic/messages_parallel_tool_use.json": Call(
        "claude-sonnet-4-0",
        [PARALLEL_SYSTEM, PASSWORDS],
        {"max_tokens": 16000, "tools": [SECRET_TOOL]},
    ),
    "anthropic/messages_stop_max_tokens.json": Call(
        "claude-sonnet-4-0",
        [{"role": "user", "content": "List all U.S. states."}],
        {"max_completion_tokens": 50},
    ),
    "anthropic/messages_stream_text.json": Call(
        "claude-sonnet-4-0", ADD, {"max_tokens": 16000}, stream=True
    ),
    "anthropic/messages_stream_thinking.json": Call(
        "claude-haiku-4-5-20251001",
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Two names for a pet pelican, be brief"}],
            }
        ],
        {
            "max_tokens": 8192,
            "temperature": 1.0,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        stream=True,
    ),
    "anthropic/messages_stream_tool_use.json": Call(
        "claude-sonnet-4-0",
        [PARALLEL_SYSTEM, PASSWORDS],
        {"max_tokens": 16000, "tools": [SECRET_TOOL]},
        stream=True,
    ),
    "anthropic/messages_tool_results_followup.json": Call(
        "claude-sonnet-4-0",
        [
            PARALLEL_SYSTEM,
            PASSWORDS,
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "text",
                        "text": "I'll retrieve the secrets for both passwords you provided.",
                        "citations": None,
                    }
                ],
                "tool_calls": [
                    {
                        "id": "toolu_01BUvqBj8Yb34pNAbCJJY1oc",
                        "type": "function",
                        "function": {
                            "name": "secret_retrieval_tool",
                            "arguments": '{"password": "mellon"}',
                        },
                    },
                    {
                        "id": "toolu_01VPuQJ1LonDBYXrr8pqPkqQ",
                        "type": "function",
                        "function": {
                            "name": "secret_retrieval_tool",
                            "arguments": '{"password": "radiance"}',
                        },
                    },
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "toolu_01BUvqBj8Yb34pNAbCJJY1oc",
                "content": "Welcome to Moria!",
                "cache_control": None,
            },
            {
                "role": "tool",
                "tool_call_id": "toolu_01VPuQJ1LonDBYXrr8pqPkqQ",
                "content": "Life before Death",
                "cache_control": {"type": "ephemeral"},
            },
        ],
        {"max_tokens": 16000, "tools": [SECRET_TOOL]},
    ),
}

# -- what each recorded reply means ------------------------------------------

TOOL_TEXT = "I'll retrieve the secrets for both passwords you provided."


@attrs.frozen
class Reply:
    content: str | None
    finish: str
    usage: tuple[int, int, int]  # prompt, completion, total
    calls: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    reasoning: str | None = None  # a prefix of the reasoning text
    id: str = ""
    model: str = "claude-sonnet-4-20250514"


@attrs.frozen
class Failure:
    cls: type[errors.DispatchError]
    message: str
    request_id: str


EXPECTED: dict[str, Reply | Failure] = {
    "anthropic/error_401_authentication.json": Failure(
        errors.AuthenticationError, "invalid x-api-key", "req_011CWdMEehrhsdujMyQ9pChP"
    ),
    "anthropic/error_404_model_not_found.json": Failure(
        errors.NotFoundError,
        "model: this-model-does-not-exist-12345",
        "req_011CWbzicpaYMyAiiXobLkzi",
    ),
    "anthropic/messages_basic.json": Reply(
        "4200 + 42 = 4242", "stop", (17, 15, 32), id="msg_01EXuhhFC9buDpjCcznFPSDs"
    ),
    "anthropic/messages_parallel_tool_use.json": Reply(
        TOOL_TEXT,
        "tool_calls",
        (416, 109, 525),
        calls=(
            ("toolu_01BUvqBj8Yb34pNAbCJJY1oc", "secret_retrieval_tool", {"password": "mellon"}),
            ("toolu_01VPuQJ1LonDBYXrr8pqPkqQ", "secret_retrieval_tool", {"password": "radiance"}),
        ),
        id="msg_018DaxGuCtuQ42XfuFiC1wxo",
    ),
    "anthropic/messages_stop_max_tokens.json": Reply(
        "Here are all 50 U.S. states in alphabetical order:\n\n1. Alabama\n2. Alaska\n"
        "3. Arizona\n4. Arkansas\n5. California\n6. Colorado\n7. Connecticut\n8. Delaware\n9",
        "length",
        (15, 50, 65),
        id="msg_01H4DkHv74hd1Js6v6mJyomp",
    ),
    "anthropic/messages_stream_text.json": Reply(
        "4200 + 42 = 4242", "stop", (17, 15, 32), id="msg_018bk6q16LtrDpGDm6TyXTgn"
    ),
    "anthropic/messages_stream_thinking.json": Reply(
        "1. **Pouch** - references their iconic bill pouch\n"
        '2. **Pelé** - playful take on "pelican"',
        "stop",
        (46, 133, 179),
        reasoning="The user wants two names for a pet pelican, and they want me to be brief.",
        id="msg_01Eg56TYRnKCEgWtZu2yjR1t",
        model="claude-haiku-4-5-20251001",
    ),
    "anthropic/messages_stream_tool_use.json": Reply(
        TOOL_TEXT,
        "tool_calls",
        (416, 109, 525),
        calls=(
            ("toolu_015cUijgET79LXjgeYQerN2h", "secret_retrieval_tool", {"password": "mellon"}),
            ("toolu_01XZTimPexA7h3EVKesnKt5T", "secret_retrieval_tool", {"password": "radiance"}),
        ),
        id="msg_013zKrzHmx2EAPhcF2gQKQ4k",
    ),
    "anthropic/messages_tool_results_followup.json": Reply(
        'Here are the secrets retrieved for each password:\n\n- Password "mellon": '
        '**Welcome to Moria!**\n- Password "radiance": **Life before Death**',
        "stop",
        (602, 39, 641),
        id="msg_01ScjDVcCDi4rT9aEjbEHqrJ",
    ),
}


# -- helpers -----------------------------------------------------------------


def request_for(name: str, **changes: Any) -> Request:
    call = CALLS[name]
    fields: dict[str, Any] = {
        "endpoint": "chat",
        "provider": "anthropic",
        "model": call.model,
        "messages": call.messages,
        "params": call.params,
        "stream": call.stream,
        "api_key": Secret(KEY),
    }
    fields.update(changes)
    return Request(**fields)


def chat(messages: list[dict[str, Any]] | None = None, **params: Any) -> Request:
    return Request(
        endpoint="chat",
        provider="anthropic",
        model="claude-sonnet-4-0",
        messages=messages or [{"role": "user", "content": "hi"}],
        params=params,
        api_key=Secret(KEY),
    )


def body_of(request: Request, adapter: AnthropicMessages = ANTHROPIC) -> dict[str, Any]:
    built: dict[str, Any] = json.loads(adapter.build(request).content)
    return built


def recorded_response(
    data: Mapping[str, Any], request: httpx.Request | None = None
) -> httpx.Response:
    recorded = data["response"]
    body = recorded["body"]
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.Response(
        recorded["status"], headers=recorded["headers"], content=content, request=request
    )


def decode(request: Request, raw: bytes, pieces: Iterator[bytes] | None = None) -> list[ChatChunk]:
    decoder = ANTHROPIC.stream_decoder(request)
    chunks: list[ChatChunk] = []
    for piece in pieces if pieces is not None else (raw,):
        chunks.extend(decoder.feed(piece))
    chunks.extend(decoder.close())
    return chunks


def one_byte_at_a_time(raw: bytes) -> Iterator[bytes]:
    return (raw[i : i + 1] for i in range(len(raw)))


def check_reply(response: ChatResponse, expected: Reply) -> None:
    assert response.id == expected.id
    assert response.model == expected.model
    [choice] = response.choices
    assert choice.message.content == expected.content
    assert choice.finish_reason == expected.finish
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == list(
        expected.calls
    )
    assert all(c.type == "function" for c in calls)
    if expected.reasoning is None:
        assert choice.message.reasoning_content is None
    else:
        assert (choice.message.reasoning_content or "").startswith(expected.reasoning)
    assert response.usage is not None
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == expected.usage
    assert usage.cached_tokens == 0


def error_response(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_x1"}
    return httpx.Response(status, headers=headers, json=body)


# -- every recording: the request we build is the request that was sent ---------


def test_every_recording_has_an_equivalent_call() -> None:
    if not RECORDED:
        load_recorded("anthropic/messages_basic.json")  # skips, or fails in CI
    assert set(RECORDED) == set(CALLS) == set(EXPECTED)


@pytest.mark.parametrize("name", RECORDED)
async def test_build_matches_recorded_request(name: str) -> None:
    recorded = load_recorded(name)["request"]
    built = ANTHROPIC.build(request_for(name))
    assert built.method == recorded["method"]
    assert str(built.url) == recorded["url"]
    for header in ("anthropic-version", "content-type"):
        assert built.headers[header] == recorded["headers"][header]
    assert built.headers["x-api-key"] == KEY
    assert json.loads(built.content) == recorded["body"]


@pytest.mark.parametrize("name", RECORDED)
async def test_parse_recorded_reply(name: str) -> None:
    data = load_recorded(name)
    request = request_for(name)
    expected = EXPECTED[name]
    response = recorded_response(data)
    if isinstance(expected, Failure):
        error = ANTHROPIC.parse_error(request, response)
        assert type(error) is expected.cls
        assert error.message == expected.message
        assert error.request_id == expected.request_id
        assert error.status_code == data["response"]["status"]
        assert error.retryable is False  # x-should-retry: false
        return
    if request.stream:
        raw = response.content
        whole = decode(request, raw)
        bytewise = decode(request, raw, one_byte_at_a_time(raw))
        assert [c.to_dict() for c in bytewise] == [c.to_dict() for c in whole]
        assert all(c.provider == "anthropic" for c in whole)
        check_reply(accumulate(whole), expected)
    else:
        parsed = ANTHROPIC.parse(request, response)
        assert isinstance(parsed, ChatResponse)
        check_reply(parsed, expected)


# -- end to end through a Pipeline -------------------------------------------


def replaying(data: Mapping[str, Any], sent: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return recorded_response(data, request)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("name", RECORDED)
async def test_pipeline_replays_recording(name: str) -> None:
    data = load_recorded(name)
    call = CALLS[name]
    expected = EXPECTED[name]
    sent: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=replaying(data, sent)) as client:
        pipe = Pipeline(registry=ProviderRegistry([ANTHROPIC]), http_client=client)
        model = f"anthropic/{call.model}"
        if isinstance(expected, Failure):
            with pytest.raises(UpstreamStatusError) as caught:
                await pipe.acompletion(model, call.messages, api_key=KEY, **call.params)
            error = caught.value.unified()
            assert type(error) is expected.cls
            assert error.request_id == expected.request_id
        elif call.stream:
            stream = await pipe.acompletion(
                model, call.messages, stream=True, api_key=KEY, **call.params
            )
            async with stream:
                chunks = [chunk async for chunk in stream]
            assert stream.provider == "anthropic"
            assert stream.request_id == data["response"]["headers"]["request-id"]
            check_reply(accumulate(chunks), expected)
        else:
            response = await pipe.acompletion(model, call.messages, api_key=KEY, **call.params)
            check_reply(response, expected)
            assert response.provider == "anthropic"
            assert response.request_id == data["response"]["headers"]["request-id"]
    [request] = sent
    assert json.loads(request.content) == data["request"]["body"]
    assert request.headers["x-api-key"] == KEY


async def test_bare_claude_model_is_detected_as_anthropic() -> None:
    registry = ProviderRegistry([OPENAI, ANTHROPIC])
    assert registry.detect("claude-3-5-haiku-latest") == "anthropic"
    assert default_registry(load_entry_points=False).detect("claude-sonnet-4-0") == "anthropic"
    data = load_recorded("anthropic/messages_basic.json")
    sent: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=replaying(data, sent)) as client:
        pipe = Pipeline(registry=registry, http_client=client)
        response = await pipe.acompletion("claude-sonnet-4-0", ADD, max_tokens=16000, api_key=KEY)
    assert response.choices[0].message.content == "4200 + 42 = 4242"
    assert str(sent[0].url) == "https://api.anthropic.com/v1/messages"


# -- hand-written error fixtures (Anthropic's documented formats) ---------------


async def test_529_overloaded_is_retryable_service_unavailable() -> None:
    response = error_response(529, "overloaded_error", "Overloaded")
    error = ANTHROPIC.parse_error(chat(), response)
    assert type(error) is errors.ServiceUnavailableError
    assert error.retryable is True
    assert error.status_code == 529
    assert error.code == "overloaded_error"
    assert error.request_id == "req_x1"


async def test_529_through_the_pipeline() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error_response(529, "overloaded_error", "Overloaded")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        pipe = Pipeline(registry=ProviderRegistry([ANTHROPIC]), http_client=client)
        with pytest.raises(UpstreamStatusError) as caught:
            await pipe.acompletion("anthropic/claude-sonnet-4-0", ADD, api_key=KEY)
    error = caught.value.unified()
    assert isinstance(error, errors.ServiceUnavailableError)
    assert error.retryable


async def test_429_reads_retry_after() -> None:
    response = error_response(
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        headers={"retry-after": "30", "request-id": "req_header"},
    )
    error = ANTHROPIC.parse_error(chat(), response)
    assert type(error) is errors.RateLimitError
    assert error.retryable is True
    assert error.retry_after == 30.0
    assert error.request_id == "req_x1"  # the body's id wins over the header's


@pytest.mark.parametrize(
    ("status", "kind", "message", "cls"),
    [
        (403, "permission_error", "no access", errors.PermissionDeniedError),
        (400, "invalid_request_error", "max_tokens: field required", errors.BadRequestError),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 208310 tokens > 200000 maximum",
            errors.ContextWindowExceededError,
        ),
        (413, "request_too_large", "Request exceeds the maximum size", errors.BadRequestError),
        (500, "api_error", "Internal server error", errors.InternalServerError),
        (503, "overloaded_error", "Overloaded", errors.ServiceUnavailableError),
    ],
)
async def test_error_types_map_to_unified_classes(
    status: int, kind: str, message: str, cls: type[errors.DispatchError]
) -> None:
    error = ANTHROPIC.parse_error(chat(), error_response(status, kind, message))
    assert type(error) is cls
    assert error.message == message


async def test_error_without_json_body_uses_status_and_header_id() -> None:
    response = httpx.Response(
        413, headers={"request-id": "req_h"}, text="<html>413 Request Entity Too Large</html>"
    )
    error = ANTHROPIC.parse_error(chat(), response)
    assert type(error) is errors.BadRequestError
    assert "413" in error.message
    assert error.request_id == "req_h"


async def test_should_retry_header_overrides_class() -> None:
    response = error_response(
        500, "api_error", "Internal server error", headers={"x-should-retry": "false"}
    )
    error = ANTHROPIC.parse_error(chat(), response)
    assert type(error) is errors.InternalServerError
    assert error.retryable is False


STREAM_HEAD = (
    "event: message_start\n"
    'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    '"model":"claude-sonnet-4-0","content":[],"stop_reason":null,'
    '"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
    "event: content_block_start\n"
    'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}\n\n'
)
OVERLOADED_EVENT = (
    "event: error\n"
    'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)


async def test_error_event_mid_stream_raises_unified_error() -> None:
    decoder = ANTHROPIC.stream_decoder(chat())
    chunks = decoder.feed(STREAM_HEAD.encode())
    assert [c.choices[0].delta.content for c in chunks] == ["", "Hel"]
    with pytest.raises(errors.ServiceUnavailableError) as caught:
        decoder.feed(OVERLOADED_EVENT.encode())
    assert caught.value.code == "overloaded_error"
    assert caught.value.retryable


async def test_error_after_good_events_in_one_piece_is_raised_by_the_next_call() -> None:
    decoder = ANTHROPIC.stream_decoder(chat())
    chunks = decoder.feed((STREAM_HEAD + OVERLOADED_EVENT).encode())
    assert [c.choices[0].delta.content for c in chunks] == ["", "Hel"]
    with pytest.raises(errors.ServiceUnavailableError):
        decoder.close()


async def test_error_event_mid_stream_through_the_pipeline() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = (STREAM_HEAD + OVERLOADED_EVENT).encode()
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        pipe = Pipeline(registry=ProviderRegistry([ANTHROPIC]), http_client=client)
        stream = await pipe.acompletion(
            "anthropic/claude-sonnet-4-0", ADD, stream=True, api_key=KEY
        )
        seen: list[str | None] = []

        async def drain() -> None:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content)

        with pytest.raises(errors.ServiceUnavailableError):
            await drain()
        assert seen == ["", "Hel"]
        assert stream.closed


async def test_error_event_before_first_chunk_raises_from_the_call() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = OVERLOADED_EVENT.encode()
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        pipe = Pipeline(registry=ProviderRegistry([ANTHROPIC]), http_client=client)
        with pytest.raises(errors.ServiceUnavailableError):
            await pipe.acompletion("anthropic/claude-sonnet-4-0", ADD, stream=True, api_key=KEY)


async def test_stream_cut_before_message_stop_is_a_provider_response_error() -> None:
    decoder = ANTHROPIC.stream_decoder(chat())
    decoder.feed(STREAM_HEAD.encode())
    with pytest.raises(errors.ProviderResponseError, match="message_stop"):
        decoder.close()


async def test_stream_usage_combines_start_and_delta_with_cache_tokens() -> None:
    raw = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c",'
        b'"usage":{"input_tokens":10,"cache_read_input_tokens":90,'
        b'"cache_creation_input_tokens":5,"output_tokens":1}}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"refusal"},'
        b'"usage":{"output_tokens":7}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    chunks = decode(chat(), raw)
    final = chunks[-1]
    assert final.choices[0].finish_reason == "content_filter"
    assert final.usage is not None
    assert final.usage.prompt_tokens == 105
    assert final.usage.completion_tokens == 7
    assert final.usage.total_tokens == 112
    assert final.usage.cached_tokens == 90


# -- request conversion beyond the recordings ---------------------------------


async def test_defaults_max_tokens_and_lifts_developer_messages() -> None:
    body = body_of(
        chat(
            [
                {"role": "developer", "content": "Be terse."},
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "Answer in French."},
            ]
        )
    )
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    assert body["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert body["messages"] == [{"role": "user", "content": "hi"}]


async def test_single_system_string_stays_a_string_and_adapter_default_applies() -> None:
    adapter = AnthropicMessages(max_tokens=1000)
    body = body_of(chat([{"role": "system", "content": "Be terse."}, ADD[0]]), adapter)
    assert body["system"] == "Be terse."
    assert body["max_tokens"] == 1000


async def test_params_converted_and_unknown_ones_pass_through() -> None:
    body = body_of(
        chat(
            stop="END",
            temperature=0.2,
            top_p=0.9,
            top_k=5,
            user="u-42",
            stream_options={"include_usage": True},
            extra_body={"service_tier": "auto"},
        )
    )
    assert body["stop_sequences"] == ["END"]
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["top_k"] == 5
    assert body["metadata"] == {"user_id": "u-42"}
    assert body["service_tier"] == "auto"
    for absent in ("stop", "user", "stream_options", "extra_body", "stream"):
        assert absent not in body
    assert body_of(chat(stop=["a", "b"]))["stop_sequences"] == ["a", "b"]


async def test_images_become_image_blocks() -> None:
    content = [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    body = body_of(chat([{"role": "user", "content": content}]))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ({"type": "any"}, None, {"type": "any"}),
    ],
)
async def test_tool_choice_mapping(choice: Any, parallel: Any, expected: dict[str, Any]) -> None:
    tool = {"type": "function", "function": {"name": "f"}}
    body = body_of(chat(tools=[tool], tool_choice=choice, parallel_tool_calls=parallel))
    assert body["tool_choice"] == expected
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert "parallel_tool_calls" not in body


async def test_consecutive_tool_results_share_one_user_message() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "t2"}]},
        {"role": "tool", "tool_call_id": "t1", "content": "one"},
        {"role": "tool", "tool_call_id": "t2", "content": "two"},
        {"role": "user", "content": "thanks"},
    ]
    body = body_of(chat(messages))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
    ]


async def test_stream_flag_version_base_and_extra_headers() -> None:
    request = attrs.evolve(
        chat(extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"}),
        stream=True,
        api_base="https://gateway.example/anthropic/",
        api_version="2024-01-01",
    )
    built = ANTHROPIC.build(request)
    assert str(built.url) == "https://gateway.example/anthropic/v1/messages"
    assert built.headers["anthropic-version"] == "2024-01-01"
    assert built.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert json.loads(built.content)["stream"] is True
    assert "extra_headers" not in json.loads(built.content)


@pytest.mark.parametrize(
    ("messages", "params", "fragment"),
    [
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
            {},
            "http(s) URL",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xyz"}}],
                }
            ],
            {},
            "base64",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{"}}
                    ],
                }
            ],
            {},
            "JSON object",
        ),
        ([{"role": "function", "name": "f", "content": "x"}], {}, "'function'"),
        ([{"role": "user", "content": "hi"}], {"tool_choice": "sometimes"}, "tool_choice"),
        ([{"role": "user", "content": "hi"}], {"temperature": 1.5}, "0 to 1"),
        (
            [{"role": "user", "content": "hi"}],
            {"max_tokens": 10, "max_completion_tokens": 20},
            "max_completion_tokens",
        ),
        (
            [{"role": "system", "content": "a"}, {"role": "user", "content": "hi"}],
            {"system": "b"},
            "not both",
        ),
    ],
)
async def test_bad_input_is_invalid_request_before_io(
    messages: list[dict[str, Any]], params: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        ANTHROPIC.build(chat(messages, **params))
    assert fragment in caught.value.message


# -- credentials ---------------------------------------------------------------


async def test_missing_key_fails_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        pipe = Pipeline(registry=ProviderRegistry([ANTHROPIC]), http_client=client)
        with pytest.raises(errors.AuthenticationError, match="ANTHROPIC_API_KEY"):
            await pipe.acompletion("anthropic/claude-sonnet-4-0", ADD)
    assert sent == []


async def test_key_precedence_call_then_config_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    plain = attrs.evolve(chat(), api_key=None)
    assert ANTHROPIC.build(plain).headers["x-api-key"] == "sk-ant-from-env"
    configured = AnthropicMessages(api_key=Secret("sk-ant-configured"))
    assert configured.build(plain).headers["x-api-key"] == "sk-ant-configured"
    assert configured.build(chat()).headers["x-api-key"] == KEY


async def test_key_never_shows_in_reprs_or_errors() -> None:
    request = chat()
    built = ANTHROPIC.build(request)
    assert KEY not in repr(built)
    assert KEY not in repr(request)
    assert KEY not in repr(ANTHROPIC) + repr(AnthropicMessages(api_key=Secret(KEY)))
    echoed = error_response(401, "authentication_error", f"invalid x-api-key {KEY}")
    error = ANTHROPIC.parse_error(request, echoed)
    assert type(error) is errors.AuthenticationError
    assert KEY not in str(error)
    assert KEY not in repr(error)


# -- hypothesis: damaged bodies never escape as anything but our errors ---------
#
# Every draw happens in the strategies, before the test's coroutine runs, and the
# target phase (unused here) is off.

JSON_NAMES = [n for n in RECORDED if "stream" not in n and not n.split("/")[1].startswith("error")]
STREAM_NAMES = [n for n in RECORDED if "stream" in n]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with one node replaced by arbitrary JSON, or one key removed."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        if draw(st.booleans()):
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: draw(mutated(value[key]))}
    if isinstance(value, list) and value and draw(st.booleans()):
        i = draw(st.integers(0, len(value) - 1))
        return [*value[:i], draw(mutated(value[i])), *value[i + 1 :]]
    return draw(json_values)


@st.composite
def damaged(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` cut short, and maybe with one byte changed."""
    raw = raw[: draw(st.integers(0, len(raw)))]
    if raw and draw(st.booleans()):
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1 :]
    return raw


@st.composite
def split(draw: st.DrawFn, raw: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


def recorded_body(name: str) -> Any:
    return load_recorded(name)["response"]["body"]


@st.composite
def json_mutants(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(JSON_NAMES))
    return name, json.dumps(draw(mutated(recorded_body(name)))).encode()


@st.composite
def json_damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(JSON_NAMES))
    return name, draw(damaged(json.dumps(recorded_body(name)).encode()))


@st.composite
def stream_damaged(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    name = draw(st.sampled_from(STREAM_NAMES))
    return name, draw(split(draw(damaged(recorded_body(name).encode()))))


@st.composite
def stream_mutants(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    """One event's JSON replaced by a mutant of itself."""
    name = draw(st.sampled_from(STREAM_NAMES))
    events = recorded_body(name).split("\n\n")
    i = draw(st.integers(0, len(events) - 1))
    head, _, payload = events[i].partition("data: ")
    if payload:
        events[i] = head + "data: " + json.dumps(draw(mutated(json.loads(payload))))
    return name, draw(split("\n\n".join(events).encode()))


def ends_cleanly_parsing(name: str, raw: bytes) -> None:
    try:
        result = ANTHROPIC.parse(request_for(name), httpx.Response(200, content=raw))
    except errors.ProviderResponseError:
        return
    assert isinstance(result, ChatResponse)


def ends_cleanly_decoding(name: str, pieces: list[bytes]) -> None:
    decoder = ANTHROPIC.stream_decoder(request_for(name))
    try:
        for piece in pieces:
            assert all(isinstance(c, ChatChunk) for c in decoder.feed(piece))
        assert all(isinstance(c, ChatChunk) for c in decoder.close())
        assert_whole(b"".join(pieces), "anthropic")  # a cut stream is an error, never a reply
    except errors.ProviderResponseError:
        return
    except errors.DispatchError:
        if b'"error"' not in b"".join(pieces):
            raise  # only an event that says it is an error may raise another error


FUZZ = settings(
    max_examples=60,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
needs_recordings = pytest.mark.skipif(not RECORDED, reason="recorded fixtures not found")


@needs_recordings
@FUZZ
@given(case=json_mutants())
async def test_mutated_json_bodies(case: tuple[str, bytes]) -> None:
    ends_cleanly_parsing(*case)


@needs_recordings
@FUZZ
@given(case=json_damaged())
async def test_truncated_or_flipped_json_bodies(case: tuple[str, bytes]) -> None:
    ends_cleanly_parsing(*case)


@needs_recordings
@FUZZ
@given(case=stream_damaged())
async def test_truncated_or_flipped_streams(case: tuple[str, list[bytes]]) -> None:
    ends_cleanly_decoding(*case)


@needs_recordings
@FUZZ
@given(case=stream_mutants())
async def test_streams_with_a_mutated_event(case: tuple[str, list[bytes]]) -> None:
    ends_cleanly_decoding(*case)
