"""The Gemini adapter against real recorded traffic, plus Google's documented shapes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import (
    ChatChunk,
    ChatResponse,
    EmbeddingResponse,
    Pipeline,
    Request,
    Secret,
    UpstreamStatusError,
    errors,
)
from providers import ProviderRegistry
from providers.gemini import GEMINI, Gemini
from providers.openai import OPENAI
from tests._decoding import accumulate as assembled
from tests._decoding import assert_whole, feed
from tests.conftest import load_recorded, recorded_names

pytestmark = pytest.mark.anyio

KEY = "test-gemini-key-0123456789"
GEMINI_BASE = "https://generativelanguage.googleapis.com/v1beta"


def gemini_request(
    endpoint: str = "chat", model: str = "gemini-2.5-flash", **fields: Any
) -> Request:
    fields.setdefault("api_key", Secret(KEY))
    return Request(endpoint=endpoint, provider="gemini", model=model, **fields)  # type: ignore[arg-type]


def body_of(http: httpx.Request) -> Any:
    return json.loads(http.content)


def raw_body(exchange: dict[str, Any]) -> bytes:
    body = exchange["response"]["body"]
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def recorded_response(exchange: dict[str, Any]) -> httpx.Response:
    reply = exchange["response"]
    return httpx.Response(reply["status"], headers=reply["headers"], content=raw_body(exchange))


def decode(request: Request, data: bytes, *, piece: int | None = None) -> list[ChatChunk]:
    return feed(GEMINI.stream_decoder(request), data, piece)


def usage_tuple(response: ChatResponse) -> tuple[int, int, int, int | None]:
    usage = response.usage
    assert usage is not None
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.reasoning_tokens


def calls_of(response: ChatResponse) -> list[tuple[str, Any]]:
    calls = response.choices[0].message.tool_calls or []
    return [(call.function.name, json.loads(call.function.arguments)) for call in calls]


# -- equivalent OpenAI-shaped inputs, one per recording -------------------------------

SECRET_TOOL = {
    "type": "function",
    "function": {
        "name": "secret_retrieval_tool",
        "description": "A tool that requires a password to retrieve a secret.",
        "parameters": {
            "properties": {"password": {"title": "Password", "type": "STRING"}},
            "required": ["password"],
            "type": "OBJECT",
        },
    },
}
SECRETS_PROMPT = [
    {"role": "system", "content": "Use parallel tool calling."},
    {
        "role": "user",
        "content": "Please retrieve the secrets associated with each of these passwords: "
        "mellon,radiance",
    },
]
# Mirascope's SDK sends an empty generationConfig with tools; an OpenAI-shaped call
# reproduces it by passing the Gemini field itself, which the adapter merges in.
SECRETS_PARAMS = {"tools": [SECRET_TOOL], "generationConfig": {}}


def _basic(_: dict[str, Any]) -> Request:
    return gemini_request(messages=[{"role": "user", "content": "What is 4200 + 42?"}])


def _max_tokens(_: dict[str, Any]) -> Request:
    return gemini_request(
        messages=[{"role": "user", "content": "List all U.S. states."}], params={"max_tokens": 50}
    )


def _parallel_calls(_: dict[str, Any]) -> Request:
    return gemini_request(messages=SECRETS_PROMPT, params=SECRETS_PARAMS)


def _followup(_: dict[str, Any]) -> Request:
    """The turn after the parallel calls: our own parse of the recorded reply goes back,
    so the thought signature must survive the round trip through the tool call id."""
    previous = GEMINI.parse(
        _parallel_calls({}),
        recorded_response(load_recorded("gemini/generate_content_parallel_function_calls.json")),
    )
    assert isinstance(previous, ChatResponse)
    message = previous.choices[0].message
    calls = message.tool_calls or []
    results = ["Welcome to Moria!", "Life before Death"]
    return gemini_request(
        messages=[
            *SECRETS_PROMPT,
            message.to_dict(),
            *(
                {"role": "tool", "tool_call_id": call.id, "content": text}
                for call, text in zip(calls, results, strict=True)
            ),
        ],
        params=SECRETS_PARAMS,
    )


def _stream_text(_: dict[str, Any]) -> Request:
    return gemini_request(messages=[{"role": "user", "content": "What is 4200 + 42?"}], stream=True)


def _stream_calls(_: dict[str, Any]) -> Request:
    return gemini_request(messages=SECRETS_PROMPT, params=SECRETS_PARAMS, stream=True)


def _stream_array(_: dict[str, Any]) -> Request:
    block_none = [
        {"category": f"HARM_CATEGORY_{name}", "threshold": "BLOCK_NONE"}
        for name in ("DANGEROUS_CONTENT", "SEXUALLY_EXPLICIT", "HATE_SPEECH", "HARASSMENT")
    ]
    tool = {
        "type": "function",
        "function": {
            "name": "pelican_name_generator",
            "description": None,
            "parameters": {"properties": {}, "type": "object"},
        },
    }
    return gemini_request(
        messages=[{"role": "user", "content": "Two names for a pet pelican"}],
        params={
            "safetySettings": block_none,  # a Gemini field: sent as given
            "tools": [tool],
            "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
        },
        stream=True,
    )


def _key_invalid(_: dict[str, Any]) -> Request:
    return gemini_request(
        messages=[{"role": "user", "content": "This should fail with AuthenticationError"}]
    )


def _not_found_stream(_: dict[str, Any]) -> Request:
    return gemini_request(
        model="this-model-does-not-exist-12345",
        messages=[{"role": "user", "content": "This should fail with NotFoundError"}],
        stream=True,
    )


def _exhausted(exchange: dict[str, Any]) -> Request:
    # The video is the recording's own bytes, as base64 in a data: URL (passed on as is).
    video = exchange["request"]["body"]["contents"][0]["parts"][1]["inlineData"]["data"]
    return gemini_request(
        model="gemini-2.0-flash",
        messages=[
            {
                "role": "system",
                "content": "You are File Analyst. Expert at analyzing various file types.\n"
                "Your personal goal is: Analyze and describe files accurately",
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "\nCurrent Task: What do you see in this video?\n\n"
                        "Provide your complete response:",
                    },
                    {"type": "file", "file": {"file_data": f"data:video/mp4;base64,{video}"}},
                ],
            },
        ],
        params={"stop": ["\nObservation:"]},
    )


def _batch_embed(_: dict[str, Any]) -> Request:
    return gemini_request(
        "embedding",
        model="gemini-embedding-2-preview",
        input=["Hello, world!"],
        params={"dimensions": 768, "taskType": "RETRIEVAL_QUERY"},
    )


REQUESTS: dict[str, Callable[[dict[str, Any]], Request]] = {
    "gemini/generate_content_basic.json": _basic,
    "gemini/generate_content_max_tokens.json": _max_tokens,
    "gemini/generate_content_parallel_function_calls.json": _parallel_calls,
    "gemini/generate_content_function_responses_followup.json": _followup,
    "gemini/stream_generate_content_sse_text.json": _stream_text,
    "gemini/stream_generate_content_sse_function_call.json": _stream_calls,
    "gemini/stream_generate_content_json_array.json": _stream_array,
    "gemini/error_400_api_key_invalid.json": _key_invalid,
    "gemini/error_404_model_not_found_stream.json": _not_found_stream,
    "gemini/error_429_resource_exhausted.json": _exhausted,
    "gemini/batch_embed_contents.json": _batch_embed,
}

# Without recordings (outside CI), one placeholder makes load_recorded skip with its reason.
RECORDED = recorded_names("gemini") or ["gemini/generate_content_basic.json"]


async def test_every_recording_has_an_equivalent_input() -> None:
    names = recorded_names("gemini")
    if not names:
        load_recorded("gemini/generate_content_basic.json")  # skips (or fails in CI)
    assert set(names) == set(REQUESTS)


@pytest.mark.parametrize("name", RECORDED)
async def test_builds_the_recorded_request(name: str) -> None:
    exchange = load_recorded(name)
    recorded = exchange["request"]
    built = GEMINI.build(REQUESTS[name](exchange))

    expected_url = recorded["url"]
    if name.endswith("json_array.json"):
        # llm-gemini asked for the JSON-array framing; this adapter always asks for SSE
        # (its decoder reads both framings). The rest of the URL must match.
        expected_url += "?alt=sse"
    assert built.method == recorded["method"]
    assert str(built.url) == expected_url
    assert built.headers["content-type"] == recorded["headers"]["content-type"]
    assert built.headers["x-goog-api-key"] == KEY
    assert body_of(built) == recorded["body"]


# -- parsing recorded replies -----------------------------------------------------------


@attrs.frozen
class Expected:
    content: str | None
    calls: list[tuple[str, Any]]
    finish: str
    usage: tuple[int, int, int, int | None]
    reasoning_starts: str | None = None


SECRET_CALLS = [
    ("secret_retrieval_tool", {"password": "mellon"}),
    ("secret_retrieval_tool", {"password": "radiance"}),
]

CHAT_REPLIES = {
    "gemini/generate_content_basic.json": Expected(
        "To calculate 4200 + 42:\n\n*   **Hundreds, thousands:** 4200\n*   **Tens, ones:** 42"
        "\n\nAdding them together:\n4200\n+  42\n-----\n4242\n\nSo, 4200 + 42 = **4242**.",
        [],
        "stop",
        (13, 77 + 25, 115, 25),
    ),
    "gemini/generate_content_max_tokens.json": Expected(
        "Here is a list of all 50 U", [], "length", (9, 10 + 38, 57, 38)
    ),
    "gemini/generate_content_parallel_function_calls.json": Expected(
        None, SECRET_CALLS, "tool_calls", (70, 40 + 76, 186, 76)
    ),
    "gemini/generate_content_function_responses_followup.json": Expected(
        'The secrets have been retrieved. For the password "mellon", the secret is '
        '"Welcome to Moria!". For the password "radiance", the secret is "Life before Death".',
        [],
        "stop",
        (152, 37, 189, None),
    ),
}

STREAM_REPLIES = {
    "gemini/stream_generate_content_sse_text.json": Expected(
        "To find the sum of 4200 + 42, we can align the numbers by their place values:\n\n"
        "  4200\n+   42\n------\n  4242\n\nSo, 4200 + 42 = **4242**.",
        [],
        "stop",
        (13, 63 + 75, 151, 75),
    ),
    "gemini/stream_generate_content_sse_function_call.json": Expected(
        None, SECRET_CALLS, "tool_calls", (70, 40 + 61, 171, 61)
    ),
    "gemini/stream_generate_content_json_array.json": Expected(
        None,
        [("pelican_name_generator", {})],
        "tool_calls",
        (32, 12 + 42, 86, 42),
        reasoning_starts="**Generating Pelican Names**",
    ),
}


@attrs.frozen
class ExpectedError:
    cls: type[errors.DispatchError]
    status: int
    code: str
    retryable: bool


ERROR_REPLIES = {
    "gemini/error_400_api_key_invalid.json": ExpectedError(
        errors.AuthenticationError, 400, "API_KEY_INVALID", False
    ),
    "gemini/error_404_model_not_found_stream.json": ExpectedError(
        errors.NotFoundError, 404, "NOT_FOUND", False
    ),
    "gemini/error_429_resource_exhausted.json": ExpectedError(
        errors.RateLimitError, 429, "RESOURCE_EXHAUSTED", True
    ),
}

EMBEDDING_REPLIES = {"gemini/batch_embed_contents.json"}


async def test_every_recorded_reply_is_checked() -> None:
    covered = set(CHAT_REPLIES) | set(STREAM_REPLIES) | set(ERROR_REPLIES) | EMBEDDING_REPLIES
    assert covered == set(REQUESTS)


def check(response: ChatResponse, expected: Expected) -> None:
    assert len(response.choices) == 1
    choice = response.choices[0]
    assert choice.message.content == expected.content
    assert calls_of(response) == expected.calls
    assert choice.finish_reason == expected.finish
    assert usage_tuple(response) == expected.usage
    if expected.reasoning_starts is None:
        assert choice.message.reasoning_content is None
    else:
        assert (choice.message.reasoning_content or "").startswith(expected.reasoning_starts)
    ids = [call.id for call in choice.message.tool_calls or ()]
    assert len(set(ids)) == len(ids)
    assert all(call_id.startswith("call_") for call_id in ids)


@pytest.mark.parametrize("name", sorted(CHAT_REPLIES))
async def test_parses_the_recorded_reply(name: str) -> None:
    exchange = load_recorded(name)
    response = GEMINI.parse(REQUESTS[name](exchange), recorded_response(exchange))
    assert isinstance(response, ChatResponse)
    check(response, CHAT_REPLIES[name])
    assert response.id == exchange["response"]["body"]["responseId"]
    assert response.model == "gemini-2.5-flash"


async def test_tool_call_ids_are_stable_and_carry_the_thought_signature() -> None:
    exchange = load_recorded("gemini/generate_content_parallel_function_calls.json")
    request = _parallel_calls(exchange)
    first = GEMINI.parse(request, recorded_response(exchange))
    again = GEMINI.parse(request, recorded_response(exchange))
    assert isinstance(first, ChatResponse)
    assert isinstance(again, ChatResponse)
    ids = [call.id for call in first.choices[0].message.tool_calls or ()]
    assert ids == [call.id for call in again.choices[0].message.tool_calls or ()]
    signature = exchange["response"]["body"]["candidates"][0]["content"]["parts"][0][
        "thoughtSignature"
    ]
    safe = signature.replace("+", "-").replace("/", "_").rstrip("=")
    assert ids[0].endswith("__ts_" + safe)
    assert "__ts_" not in ids[1]  # only the first call of the turn carries one


@pytest.mark.parametrize("name", sorted(STREAM_REPLIES))
async def test_decodes_the_recorded_stream(name: str) -> None:
    exchange = load_recorded(name)
    request = REQUESTS[name](exchange)
    data = raw_body(exchange)
    chunks = decode(request, data)
    check(assembled(chunks), STREAM_REPLIES[name])
    # usage comes once, in a last chunk without choices
    assert [chunk.usage is not None for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].choices == []
    whole = [chunk.to_dict() for chunk in chunks]
    assert [chunk.to_dict() for chunk in decode(request, data, piece=1)] == whole
    assert [chunk.to_dict() for chunk in decode(request, data, piece=7)] == whole


async def test_streamed_calls_match_the_whole_reply_ids() -> None:
    """A function call streamed gets the id the same reply would get unstreamed."""
    exchange = load_recorded("gemini/stream_generate_content_sse_function_call.json")
    chunks = decode(_stream_calls(exchange), raw_body(exchange))
    event = json.loads(raw_body(exchange).decode().split("\r\n\r\n")[0].removeprefix("data: "))
    whole = GEMINI.parse(_parallel_calls(exchange), httpx.Response(200, json=event))
    assert isinstance(whole, ChatResponse)
    streamed = assembled(chunks).choices[0].message.tool_calls or []
    assert [c.id for c in streamed] == [c.id for c in whole.choices[0].message.tool_calls or []]
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert [(d.index, d.type) for d in first.tool_calls or ()] == [(0, "function"), (1, "function")]


@pytest.mark.parametrize("name", sorted(ERROR_REPLIES))
async def test_maps_the_recorded_error(name: str) -> None:
    exchange = load_recorded(name)
    error = GEMINI.parse_error(REQUESTS[name](exchange), recorded_response(exchange))
    expected = ERROR_REPLIES[name]
    assert type(error) is expected.cls
    assert error.status_code == expected.status
    assert error.code == expected.code
    assert error.retryable is expected.retryable
    assert error.message == json.loads(raw_body(exchange))["error"]["message"]
    assert error.provider == "gemini"


async def test_parses_the_recorded_batch_embeddings() -> None:
    exchange = load_recorded("gemini/batch_embed_contents.json")
    response = GEMINI.parse(_batch_embed(exchange), recorded_response(exchange))
    assert isinstance(response, EmbeddingResponse)
    values = exchange["response"]["body"]["embeddings"][0]["values"]
    assert [item.index for item in response.data] == [0]
    assert len(response.data[0].embedding) == 768
    assert response.data[0].embedding[:3] == pytest.approx(values[:3])
    assert response.model == "gemini-embedding-2-preview"


# -- hand-written fixtures from Google's documented formats -----------------------------

# models.embedContent: one Content in, one ContentEmbedding out (ai.google.dev/api/embeddings).
EMBED_CONTENT_REQUEST = {
    "model": "models/gemini-embedding-001",
    "content": {"parts": [{"text": "What is the meaning of life?"}]},
    "taskType": "SEMANTIC_SIMILARITY",
    "outputDimensionality": 4,
}
EMBED_CONTENT_RESPONSE = {"embedding": {"values": [0.0132, -0.0213, 0.0071, 0.0402]}}


async def test_single_embed_content() -> None:
    request = gemini_request(
        "embedding",
        model="gemini-embedding-001",
        input="What is the meaning of life?",
        params={"taskType": "SEMANTIC_SIMILARITY", "dimensions": 4},
    )
    built = GEMINI.build(request)
    assert str(built.url) == f"{GEMINI_BASE}/models/gemini-embedding-001:embedContent"
    assert body_of(built) == EMBED_CONTENT_REQUEST
    response = GEMINI.parse(request, httpx.Response(200, json=EMBED_CONTENT_RESPONSE))
    assert isinstance(response, EmbeddingResponse)
    assert [(item.index, item.embedding) for item in response.data] == [
        (0, [0.0132, -0.0213, 0.0071, 0.0402])
    ]


def error_reply(status: int, error: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"error": {"code": status, **error}})


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}


def quota(quota_id: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": "generate_content_requests", "quotaId": quota_id}],
    }


@pytest.mark.parametrize(
    ("reply", "cls", "retry_after", "retryable"),
    [
        (
            error_reply(
                429,
                {
                    "message": "You exceeded your current quota.",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [quota("GenerateRequestsPerMinutePerProjectPerModel"), RETRY_INFO],
                },
            ),
            errors.RateLimitError,
            17.0,
            True,
        ),
        (  # a Retry-After header wins over the body's RetryInfo
            error_reply(
                429,
                {"message": "slow down", "status": "RESOURCE_EXHAUSTED", "details": [RETRY_INFO]},
                **{"retry-after": "3"},
            ),
            errors.RateLimitError,
            3.0,
            True,
        ),
        (  # a per-day quota will not come back within any retry
            error_reply(
                429,
                {
                    "message": "You exceeded your current quota.",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier")],
                },
            ),
            errors.RateLimitError,
            None,
            False,
        ),
        (
            error_reply(
                400,
                {
                    "message": "The input token count (1200293) exceeds the maximum number of "
                    "tokens allowed (1048576).",
                    "status": "INVALID_ARGUMENT",
                },
            ),
            errors.ContextWindowExceededError,
            None,
            False,
        ),
        (
            error_reply(403, {"message": "denied", "status": "PERMISSION_DENIED"}),
            errors.PermissionDeniedError,
            None,
            False,
        ),
        (
            error_reply(500, {"message": "An internal error has occurred.", "status": "INTERNAL"}),
            errors.InternalServerError,
            None,
            True,
        ),
        (
            error_reply(503, {"message": "The model is overloaded.", "status": "UNAVAILABLE"}),
            errors.ServiceUnavailableError,
            None,
            True,
        ),
        (  # streamed error bodies come wrapped in an array
            httpx.Response(
                429, json=[{"error": {"code": 429, "message": "x", "status": "RESOURCE_EXHAUSTED"}}]
            ),
            errors.RateLimitError,
            None,
            True,
        ),
        (  # or as one SSE event
            httpx.Response(
                404,
                content=b'data: {"error": {"code": 404, "message": "gone", "status": "NOT_FOUND"}}'
                b"\r\n\r\n",
            ),
            errors.NotFoundError,
            None,
            False,
        ),
        (
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            errors.InternalServerError,
            None,
            True,
        ),
    ],
)
async def test_maps_documented_errors(
    reply: httpx.Response,
    cls: type[errors.DispatchError],
    retry_after: float | None,
    retryable: bool,
) -> None:
    error = GEMINI.parse_error(gemini_request(messages=[]), reply)
    assert type(error) is cls
    assert error.retry_after == retry_after
    assert error.retryable is retryable
    assert error.status_code == reply.status_code


async def test_blocked_prompt_is_a_content_policy_violation() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
    }
    request = gemini_request(messages=[{"role": "user", "content": "..."}])
    with pytest.raises(errors.ContentPolicyViolationError, match="PROHIBITED_CONTENT"):
        GEMINI.parse(request, httpx.Response(200, json=blocked))
    event = b"data: " + json.dumps(blocked).encode() + b"\r\n\r\n"
    with pytest.raises(errors.ContentPolicyViolationError):
        decode(attrs.evolve(request, stream=True), event)


@pytest.mark.parametrize(
    ("reason", "called", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("OTHER", False, "stop"),
    ],
)
async def test_finish_reasons(reason: str, called: bool, expected: str) -> None:
    parts: list[dict[str, Any]] = [{"text": "partial"}]
    if called:
        parts.append({"functionCall": {"name": "f", "args": {"a": 1}}})
    reply = {"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": reason}]}
    response = GEMINI.parse(gemini_request(messages=[]), httpx.Response(200, json=reply))
    assert isinstance(response, ChatResponse)
    assert response.choices[0].finish_reason == expected


async def test_error_event_mid_stream_raises_the_mapped_error() -> None:
    request = gemini_request(messages=[{"role": "user", "content": "hi"}], stream=True)
    decoder = GEMINI.stream_decoder(request)
    first = {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}}]}
    chunks = decoder.feed(b"data: " + json.dumps(first).encode() + b"\r\n\r\n")
    assert chunks[0].choices[0].delta.content == "Hel"
    failure = {
        "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    }
    with pytest.raises(errors.ServiceUnavailableError, match="overloaded"):
        decoder.feed(b"data: " + json.dumps(failure).encode() + b"\r\n\r\n")


@pytest.mark.parametrize(
    "body",
    [
        b'data: {"candidates": [{"content": {"parts": [{"text": "cut',  # SSE cut mid-event
        b'[{"candidates": []}\n,\n{"candidates": [{"content"',  # array cut mid-object
        b'[{"candidates": []}\n',  # array never closed
        b"<html>502</html>",  # neither framing
    ],
)
async def test_truncated_or_foreign_streams_are_provider_response_errors(body: bytes) -> None:
    request = gemini_request(messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(errors.ProviderResponseError):
        decode(request, body)
    with pytest.raises(errors.ProviderResponseError):
        decode(request, body, piece=1)


# -- request conversion beyond the recordings ----------------------------------------


async def test_converts_content_parts_and_parameters() -> None:
    request = gemini_request(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg", "format": "wav"}},
                ],
            },
            {"role": "assistant", "content": "A cat and a sound."},
            {"role": "user", "content": "Answer in JSON."},
        ],
        params={
            "temperature": 0.2,
            "top_p": 0.9,
            "max_completion_tokens": 64,
            "stop": "END",
            "n": 2,
            "seed": 7,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object"}},
            },
            "cachedContent": "cachedContents/abc",  # a Gemini field: passed through
            "stream_options": {"include_usage": True},  # honoured: usage always comes
        },
    )
    body = body_of(GEMINI.build(request))
    assert body == {
        "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is in these?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
                    {
                        "fileData": {
                            "fileUri": "https://example.com/cat.jpg",
                            "mimeType": "image/jpeg",
                        }
                    },
                    {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg"}},
                ],
            },
            {"role": "model", "parts": [{"text": "A cat and a sound."}]},
            {"role": "user", "parts": [{"text": "Answer in JSON."}]},
        ],
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 64,
            "stopSequences": ["END"],
            "candidateCount": 2,
            "seed": 7,
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"},
        },
        "cachedContent": "cachedContents/abc",
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "secret_retrieval_tool"}},
            {"mode": "ANY", "allowedFunctionNames": ["secret_retrieval_tool"]},
        ),
    ],
)
async def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    request = gemini_request(
        messages=SECRETS_PROMPT, params={"tools": [SECRET_TOOL], "tool_choice": choice}
    )
    assert body_of(GEMINI.build(request))["toolConfig"] == {"functionCallingConfig": config}


async def test_explicit_thought_signature_is_sent_back() -> None:
    """Google's OpenAI-compatible shape (``extra_content``) is honoured and wins."""
    call = {
        "id": "call_from_elsewhere",
        "type": "function",
        "function": {"name": "secret_retrieval_tool", "arguments": '{"password": "mellon"}'},
        "extra_content": {"google": {"thought_signature": "c2lnbmF0dXJl"}},
    }
    request = gemini_request(
        messages=[
            *SECRETS_PROMPT,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_from_elsewhere", "content": "Welcome"},
        ]
    )
    contents = body_of(GEMINI.build(request))["contents"]
    assert contents[1]["parts"] == [
        {
            "functionCall": {"name": "secret_retrieval_tool", "args": {"password": "mellon"}},
            "thoughtSignature": "c2lnbmF0dXJl",
        }
    ]
    assert contents[2] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "name": "secret_retrieval_tool",
                    "response": {"output": "Welcome"},
                }
            }
        ],
    }


@pytest.mark.parametrize(
    ("messages", "params", "match"),
    [
        (
            [{"role": "tool", "tool_call_id": "call_unknown", "content": "x"}],
            {},
            "call_unknown",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                        }
                    ],
                }
            ],
            {},
            "JSON object",
        ),
        ([{"role": "user", "content": [{"type": "video", "video": "x"}]}], {}, "video"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}],
            {},
            "base64",
        ),
        ([{"role": "user", "content": "hi"}], {"logprobs": True}, "logprobs"),
        ([{"role": "user", "content": "hi"}], {"parallel_tool_calls": False}, "parallel"),
        ([{"role": "user", "content": "hi"}], {"tool_choice": "sometimes"}, "tool_choice"),
        (
            [{"role": "user", "content": "hi"}],
            {"response_format": {"type": "yaml"}},
            "response_format",
        ),
    ],
)
async def test_bad_input_is_refused_before_io(
    messages: list[dict[str, Any]], params: dict[str, Any], match: str
) -> None:
    with pytest.raises(errors.InvalidRequestError, match=match):
        GEMINI.build(gemini_request(messages=messages, params=params))


async def test_urls_follow_api_base_version_and_model_paths() -> None:
    hi = [{"role": "user", "content": "hi"}]
    proxied = gemini_request(messages=hi, api_base="https://proxy.example/", api_version="v1")
    assert str(GEMINI.build(proxied).url) == (
        "https://proxy.example/v1/models/gemini-2.5-flash:generateContent"
    )
    tuned = gemini_request(model="tunedModels/my-model", messages=hi)
    assert str(GEMINI.build(tuned).url) == f"{GEMINI_BASE}/tunedModels/my-model:generateContent"
    headers = GEMINI.build(
        gemini_request(messages=hi, params={"extra_headers": {"x-trace": "1"}})
    ).headers
    assert headers["x-trace"] == "1"


# -- credentials ------------------------------------------------------------------------


async def test_key_comes_per_call_then_configured_then_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hi = [{"role": "user", "content": "hi"}]
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini-env")
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google-env")
    configured = Gemini(api_key=Secret("configured"))
    from_env = gemini_request(messages=hi, api_key=None)
    assert configured.build(gemini_request(messages=hi)).headers["x-goog-api-key"] == KEY
    assert configured.build(from_env).headers["x-goog-api-key"] == "configured"
    assert GEMINI.build(from_env).headers["x-goog-api-key"] == "from-gemini-env"
    monkeypatch.delenv("GEMINI_API_KEY")
    assert GEMINI.build(from_env).headers["x-goog-api-key"] == "from-google-env"
    assert "configured" not in repr(configured)


async def test_missing_key_fails_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        pipe = Pipeline(registry=ProviderRegistry([GEMINI]), http_client=client)
        with pytest.raises(errors.AuthenticationError, match="GEMINI_API_KEY") as caught:
            await pipe.acompletion("gemini/gemini-2.5-flash", [{"role": "user", "content": "hi"}])
    assert sent == []
    assert caught.value.provider == "gemini"


# -- end to end through a Pipeline, replaying recorded exchanges ----------------------


def replay(exchange: dict[str, Any], piece: int = 0) -> Callable[[httpx.Request], httpx.Response]:
    """A transport handler that checks the request against the recording and answers it."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == exchange["request"]["url"]
        assert request.headers["x-goog-api-key"] == KEY
        assert json.loads(request.content) == exchange["request"]["body"]
        data = raw_body(exchange)
        reply = exchange["response"]
        if not piece:
            return httpx.Response(reply["status"], headers=reply["headers"], content=data)

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(data), piece):
                yield data[start : start + piece]

        return httpx.Response(reply["status"], headers=reply["headers"], content=pieces())

    return handler


async def run(exchange: dict[str, Any], call: Callable[[Pipeline], Any], piece: int = 0) -> Any:
    transport = httpx.MockTransport(replay(exchange, piece))
    async with httpx.AsyncClient(transport=transport) as client:
        pipe = Pipeline(registry=ProviderRegistry([OPENAI, GEMINI]), http_client=client)
        return await call(pipe)


async def test_pipeline_chat_end_to_end() -> None:
    exchange = load_recorded("gemini/generate_content_basic.json")
    response = await run(
        exchange,
        lambda pipe: pipe.acompletion(
            "gemini-2.5-flash", [{"role": "user", "content": "What is 4200 + 42?"}], api_key=KEY
        ),
    )
    assert isinstance(response, ChatResponse)
    assert response.provider == "gemini"
    check(response, CHAT_REPLIES["gemini/generate_content_basic.json"])


async def test_pipeline_stream_end_to_end() -> None:
    exchange = load_recorded("gemini/stream_generate_content_sse_text.json")

    async def call(pipe: Pipeline) -> list[ChatChunk]:
        stream = await pipe.acompletion(
            "gemini/gemini-2.5-flash",
            [{"role": "user", "content": "What is 4200 + 42?"}],
            stream=True,
            api_key=KEY,
        )
        async with stream:
            return [chunk async for chunk in stream]

    chunks = await run(exchange, call, piece=11)
    check(assembled(chunks), STREAM_REPLIES["gemini/stream_generate_content_sse_text.json"])
    assert {chunk.provider for chunk in chunks} == {"gemini"}


async def test_pipeline_embedding_end_to_end() -> None:
    exchange = load_recorded("gemini/batch_embed_contents.json")
    response = await run(
        exchange,
        lambda pipe: pipe.aembedding(
            "gemini-embedding-2-preview",
            ["Hello, world!"],
            dimensions=768,
            taskType="RETRIEVAL_QUERY",
            api_key=KEY,
        ),
    )
    assert isinstance(response, EmbeddingResponse)
    assert response.provider == "gemini"
    assert len(response.data[0].embedding) == 768


async def test_pipeline_stream_error_end_to_end() -> None:
    exchange = load_recorded("gemini/error_404_model_not_found_stream.json")
    with pytest.raises(UpstreamStatusError) as caught:
        await run(
            exchange,
            lambda pipe: pipe.acompletion(
                "gemini/this-model-does-not-exist-12345",
                [{"role": "user", "content": "This should fail with NotFoundError"}],
                stream=True,
                api_key=KEY,
            ),
        )
    assert isinstance(caught.value.unified(), errors.NotFoundError)


async def test_auto_detection_prefixes() -> None:
    registry = ProviderRegistry([OPENAI, GEMINI])
    assert registry.detect("gemini-2.5-flash") == "gemini"
    assert registry.detect("gemini-embedding-001") == "gemini"
    assert registry.detect("text-embedding-004") == "gemini"
    assert registry.detect("text-embedding-3-small") == "openai"


# -- malformed bodies: a response or ProviderResponseError, nothing else ---------------

WHOLE_BODIES = [*sorted(CHAT_REPLIES), *sorted(EMBEDDING_REPLIES)]


def mutate(data: bytes, how: str, at: int, byte: int) -> bytes:
    at %= len(data)
    edits = {
        "truncate": data[:at],
        "replace": data[:at] + bytes([byte]) + data[at + 1 :],
        "delete": data[:at] + data[at + 1 :],
    }
    return edits[how]


MUTATIONS = st.tuples(
    st.sampled_from(["truncate", "replace", "delete"]),
    st.integers(min_value=0, max_value=1 << 20),
    st.integers(min_value=0, max_value=255),
)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(name=st.sampled_from(WHOLE_BODIES), mutation=MUTATIONS)
async def test_mutated_replies_parse_or_fail_cleanly(
    name: str, mutation: tuple[str, int, int]
) -> None:
    exchange = load_recorded(name)
    data = mutate(raw_body(exchange), *mutation)
    with contextlib.suppress(errors.ProviderResponseError):
        GEMINI.parse(REQUESTS[name](exchange), httpx.Response(200, content=data))


@FUZZ
@given(name=st.sampled_from(sorted(STREAM_REPLIES)), mutation=MUTATIONS, piece=st.integers(1, 64))
async def test_mutated_streams_decode_or_fail_cleanly(
    name: str, mutation: tuple[str, int, int], piece: int
) -> None:
    exchange = load_recorded(name)
    data = mutate(raw_body(exchange), *mutation)
    with contextlib.suppress(errors.ProviderResponseError):
        decode(REQUESTS[name](exchange), data, piece=piece)
        assert_whole(data, "gemini")  # a cut stream is an error, never a reply


@FUZZ
@given(name=st.sampled_from(sorted(ERROR_REPLIES)), mutation=MUTATIONS)
async def test_mutated_error_bodies_still_give_an_error(
    name: str, mutation: tuple[str, int, int]
) -> None:
    exchange = load_recorded(name)
    reply = exchange["response"]
    data = mutate(raw_body(exchange), *mutation)
    error = GEMINI.parse_error(
        REQUESTS[name](exchange), httpx.Response(reply["status"], content=data)
    )
    assert isinstance(error, errors.APIStatusError)
    assert error.status_code == reply["status"]
