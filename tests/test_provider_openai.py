"""OpenAI, proven on real recorded traffic and on its documented formats.

Every recording in ``shared/fixtures/recorded/openai`` is rebuilt from the call
a user makes and compared with what went over the wire (method, URL, headers,
JSON body), and its response, stream or error is parsed and checked. The
recorded set has no 429, image, transcription or speech exchange: those are
hand-written below from OpenAI's documented formats.

The helpers at the top (equivalent calls, recorded responses, stream
decoding) are shared with the Azure and OpenAI-compatible tests.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable, Iterator, Mapping
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
    ImageResponse,
    Pipeline,
    Request,
    Secret,
    SpeechResponse,
    TranscriptionResponse,
    UpstreamStatusError,
    errors,
)
from pipeline.adapter import Adapter, Endpoint
from providers import ProviderRegistry
from providers.openai import OPENAI
from tests._decoding import accumulate as assemble
from tests._decoding import assert_whole, feed
from tests.conftest import load_recorded, recorded_names

pytestmark = pytest.mark.anyio

KEY = "sk-test-openai-0123456789abcdef"
RECORDED = recorded_names("openai")


@pytest.fixture(autouse=True)
def _openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


# -- shared helpers: equivalent calls, recorded responses, streams -------------------


def call_from_recorded(
    recorded: Mapping[str, Any], provider: str, model: str | None = None, **fields: Any
) -> Request:
    """The call a user makes to produce the recorded request: its messages or
    input, model, stream flag, and every other body field as a parameter
    (``stream: false`` included, as a caller that passes it explicitly)."""
    body = dict(recorded["request"]["body"])
    endpoint: Endpoint = "embedding" if recorded["endpoint"] == "embeddings" else "chat"
    stream = body.get("stream") is True
    if stream:
        del body["stream"]
        body.pop("stream_options", None)
    body_model = body.pop("model", None)
    content: dict[str, Any] = (
        {"messages": body.pop("messages")} if endpoint == "chat" else {"input": body.pop("input")}
    )
    return Request(
        endpoint=endpoint,
        provider=provider,
        model=model or body_model,
        stream=stream,
        params=body,
        **content,
        **fields,
    )


def recorded_response(recorded: Mapping[str, Any]) -> httpx.Response:
    reply = recorded["response"]
    body = reply["body"]
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.Response(reply["status"], headers=reply["headers"], content=content)


def assert_same_request(
    sent: httpx.Request, recorded: Mapping[str, Any], auth: Mapping[str, str]
) -> None:
    """Method, URL, recorded headers, auth and JSON body (key order aside)."""
    want = recorded["request"]
    assert sent.method == want["method"]
    assert sent.url == httpx.URL(want["url"])  # hosts compare case-insensitively
    for name, value in want["headers"].items():
        assert sent.headers[name] == value
    for name, value in auth.items():
        assert sent.headers[name] == value
    assert json.loads(sent.content) == want["body"]


def decode(adapter: Adapter, request: Request, raw: bytes, piece: int = 0) -> list[ChatChunk]:
    """Every chunk of ``raw``, fed whole (``piece=0``) or ``piece`` bytes at a time."""
    return feed(adapter.stream_decoder(request), raw, piece)


def parse_recorded(adapter: Adapter, request: Request, recorded: Mapping[str, Any]) -> Any:
    """What the recorded reply turns into: a response, an assembled stream, or an error."""
    response = recorded_response(recorded)
    if response.status_code >= 400:
        return adapter.parse_error(request, response)
    if request.stream:
        return assemble(decode(adapter, request, response.content))
    return adapter.parse(request, response)


def check_chat(response: ChatResponse, expected: Mapping[str, Any]) -> None:
    """``expected``: content (or content_prefix), finish, usage, tool_calls, reasoning_prefix."""
    message = response.choices[0].message
    if "content_prefix" in expected:
        assert message.content is not None
        assert message.content.startswith(expected["content_prefix"])
    else:
        assert message.content == expected.get("content")
    assert response.choices[0].finish_reason == expected.get("finish", "stop")
    prompt, completion, total = expected["usage"]
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (prompt, completion)
    assert response.usage.total_tokens == total
    if "reasoning_tokens" in expected:
        assert response.usage.reasoning_tokens == expected["reasoning_tokens"]
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()]
    assert calls == list(expected.get("tool_calls", ()))
    if "reasoning_prefix" in expected:
        assert message.reasoning_content is not None
        assert message.reasoning_content.startswith(expected["reasoning_prefix"])
    else:
        assert message.reasoning_content is None
    if "model" in expected:
        assert response.model == expected["model"]


def check_error(error: Any, expected: Mapping[str, Any]) -> None:
    assert type(error) is expected["error"]
    assert error.code == expected.get("code")
    assert expected["message_part"] in error.message
    assert error.status_code == expected["status"]
    assert error.request_id == expected.get("request_id")


def replay(recorded: Mapping[str, Any], seen: list[httpx.Request]) -> Callable[..., httpx.Response]:
    """A MockTransport handler that records what it was sent and answers as recorded."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return recorded_response(recorded)

    return handler


def pipeline_for(adapter: Adapter, handler: Callable[..., httpx.Response]) -> Pipeline:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Pipeline(registry=ProviderRegistry([adapter]), http_client=client)


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request should have been sent, got {request.url}")


def mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    """``raw`` truncated, with bytes flipped, a span dropped, or junk inserted."""
    size = len(raw)
    position = st.integers(0, size)
    return st.one_of(
        position.map(lambda cut: raw[:cut]),
        st.tuples(st.integers(0, size - 1), st.integers(0, 255)).map(
            lambda p: raw[: p[0]] + bytes([p[1]]) + raw[p[0] + 1 :]
        ),
        st.tuples(position, position).map(lambda p: raw[: min(p)] + raw[max(p) :]),
        st.tuples(position, st.binary(min_size=1, max_size=8)).map(
            lambda p: raw[: p[0]] + p[1] + raw[p[0] :]
        ),
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def replace_at(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replace_at(value[path[0]], path[1:], new)
    return copy


@st.composite
def json_mutation(draw: st.DrawFn, body: Any) -> bytes:
    """``body`` with one value, anywhere in it, replaced by arbitrary JSON."""
    path = draw(st.sampled_from(list(_paths(body))))
    return json.dumps(replace_at(body, path, draw(JSON_VALUES))).encode()


@st.composite
def event_mutation(draw: st.DrawFn, stream: str) -> bytes:
    """``stream`` with one ``data:`` event's JSON mutated as :func:`json_mutation` does."""
    events = stream.split("\n\n")
    index = draw(st.sampled_from([i for i, e in enumerate(events) if e.startswith("data: {")]))
    mutated = draw(json_mutation(json.loads(events[index].removeprefix("data: "))))
    events[index] = "data: " + mutated.decode()
    return "\n\n".join(events).encode()


def damaged(name: str) -> st.SearchStrategy[tuple[str, bytes]]:
    """A recording's reply body, damaged at the byte level or in one JSON value."""
    recorded = load_recorded(name)
    body = recorded["response"]["body"]
    structural = event_mutation(body) if isinstance(body, str) else json_mutation(body)
    raw = recorded_response(recorded).content
    return st.one_of(mutations(raw), structural).map(lambda bytes_: (name, bytes_))


def damaged_recordings(names: list[str]) -> st.SearchStrategy[tuple[str, bytes]]:
    """Drawn before a test's coroutine starts: no draw happens inside the event loop."""
    return st.sampled_from(names).flatmap(damaged)


def survives(adapter: Adapter, request: Request, raw: bytes, content_type: str) -> None:
    """A damaged body ends in a response or ProviderResponseError, never another
    exception; a damaged stream passes only if it still ends with ``[DONE]``."""
    try:
        if request.stream:
            assemble(decode(adapter, request, raw, piece=7))
            assert_whole(raw, "openai")  # a cut stream is an error, never a reply
        else:
            response = httpx.Response(200, headers={"content-type": content_type}, content=raw)
            adapter.parse(request, response)
    except errors.ProviderResponseError:
        pass


# -- every recording: the request ----------------------------------------------------


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_request_is_rebuilt_exactly(name: str) -> None:
    recorded = load_recorded(name)
    sent = OPENAI.build(call_from_recorded(recorded, "openai"))
    assert_same_request(sent, recorded, {"authorization": f"Bearer {KEY}"})


# -- every recording: the reply ------------------------------------------------------

SECRET_CALLS = (
    ("call_v6LacIrChvs6ITVpIZqy5tFc", "secret_retrieval_tool", '{"password": "mellon"}'),
    ("call_onyWzk4mLTGKzW9cthmf4Llq", "secret_retrieval_tool", '{"password": "radiance"}'),
)

EXPECTED: dict[str, dict[str, Any]] = {
    "openai/chat_basic.json": {
        "content": "\\(4200 + 42 = 4242\\).",
        "usage": (16, 12, 28),
        "reasoning_tokens": 0,
        "model": "gpt-4o-2024-08-06",
    },
    "openai/chat_finish_length.json": {
        "content_prefix": "Certainly! Here is a list of all 50 U.S. states:",
        "finish": "length",
        "usage": (14, 50, 64),
    },
    "openai/chat_parallel_tool_calls.json": {
        "content": None,
        "finish": "tool_calls",
        "usage": (75, 53, 128),
        "tool_calls": SECRET_CALLS,
    },
    "openai/chat_tool_results_followup.json": {
        "content_prefix": "The secrets associated with the passwords are as follows:",
        "usage": (149, 32, 181),
    },
    "openai/chat_stream_text_include_usage.json": {
        "content": "4200 + 42 equals 4242.",
        "usage": (16, 10, 26),
        "model": "gpt-4o-2024-08-06",
    },
    "openai/chat_stream_tool_call.json": {
        "content": None,
        "finish": "tool_calls",
        "usage": (53, 15, 68),
        "tool_calls": (("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital", '{"country":"UK"}'),),
    },
    "openai/error_400_unsupported_value.json": {
        "error": errors.BadRequestError,
        "status": 400,
        "code": "unsupported_value",
        "message_part": "does not support 'developer' with this model",
    },
    "openai/error_401_invalid_api_key.json": {
        "error": errors.AuthenticationError,
        "status": 401,
        "code": "invalid_api_key",
        "message_part": "Incorrect API key provided",
        "request_id": "req_1963efc19b3b4865af98403581d580af",
    },
    "openai/error_404_model_not_found.json": {
        "error": errors.NotFoundError,
        "status": 404,
        "code": "model_not_found",
        "message_part": "does not exist or you do not have access to it",
        "request_id": "req_aebf95a914bb46ae9d75a732aa1738f3",
    },
}


def _first_float32(encoded: str) -> float:
    return float(struct.unpack("<f", base64.b64decode(encoded)[:4])[0])


@pytest.mark.parametrize("name", [n for n in RECORDED if "embeddings" not in n])
async def test_recorded_reply_is_parsed(name: str) -> None:
    recorded = load_recorded(name)
    result = parse_recorded(OPENAI, call_from_recorded(recorded, "openai"), recorded)
    expected = EXPECTED[name]
    if "error" in expected:
        check_error(result, expected)
    else:
        check_chat(result, expected)


async def test_recorded_base64_embedding_is_decoded_to_floats() -> None:
    recorded = load_recorded("openai/embeddings_base64_dimensions.json")
    request = call_from_recorded(recorded, "openai")
    result = OPENAI.parse(request, recorded_response(recorded))
    assert isinstance(result, EmbeddingResponse)
    (item,) = result.data
    encoded = recorded["response"]["body"]["data"][0]["embedding"]
    assert len(item.embedding) == 128 == recorded["request"]["body"]["dimensions"]
    assert all(isinstance(v, float) for v in item.embedding)
    assert item.embedding[0] == pytest.approx(_first_float32(encoded))
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (4, 4)


async def test_recorded_float_embedding_is_read() -> None:
    recorded = load_recorded("openai/embeddings_float.json")
    result = OPENAI.parse(call_from_recorded(recorded, "openai"), recorded_response(recorded))
    assert isinstance(result, EmbeddingResponse)
    (item,) = result.data
    assert len(item.embedding) == 256
    assert item.embedding[:2] == [-0.0039325873, -0.092870116]
    assert result.model == "text-embedding-3-small"


async def test_embeddings_are_floats_unless_base64_is_asked_for() -> None:
    plain = OPENAI.build(Request(endpoint="embedding", provider="openai", model="m", input=["a"]))
    assert "encoding_format" not in json.loads(plain.content)
    asked = Request(
        endpoint="embedding",
        provider="openai",
        model="m",
        input=["a"],
        params={"encoding_format": "base64"},
    )
    assert json.loads(OPENAI.build(asked).content)["encoding_format"] == "base64"


STREAMS = [n for n in RECORDED if "stream" in n]


@pytest.mark.parametrize("name", STREAMS)
async def test_stream_fed_one_byte_at_a_time_yields_the_same_chunks(name: str) -> None:
    recorded = load_recorded(name)
    request = call_from_recorded(recorded, "openai")
    raw = recorded["response"]["body"].encode()
    whole = [chunk.to_dict() for chunk in decode(OPENAI, request, raw)]
    bytewise = [chunk.to_dict() for chunk in decode(OPENAI, request, raw, piece=1)]
    assert bytewise == whole
    assert len(whole) > 3


async def test_stream_ignores_padding_and_ends_with_a_usage_only_chunk() -> None:
    recorded = load_recorded("openai/chat_stream_text_include_usage.json")
    raw = recorded["response"]["body"].encode()
    chunks = decode(OPENAI, call_from_recorded(recorded, "openai"), raw)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.total_tokens == 26
    assert all(chunk.provider == "openai" for chunk in chunks)
    assert "obfuscation" not in json.dumps([c.to_dict() for c in chunks])


# -- end to end through the pipeline -----------------------------------------------


async def test_chat_end_to_end_replays_the_recorded_exchange() -> None:
    recorded = load_recorded("openai/chat_parallel_tool_calls.json")
    seen: list[httpx.Request] = []
    body = recorded["request"]["body"]
    async with pipeline_for(OPENAI, replay(recorded, seen)) as pipe:
        response = await pipe.acompletion("openai/gpt-4o", body["messages"], tools=body["tools"])
    (sent,) = seen
    assert_same_request(sent, recorded, {"authorization": f"Bearer {KEY}"})
    assert response.provider == "openai"
    assert response.request_id == "req_a4495e803ce3464eb64d1b23f8661a53"
    check_chat(response, EXPECTED["openai/chat_parallel_tool_calls.json"])


async def test_bare_model_name_resolves_to_openai_end_to_end() -> None:
    recorded = load_recorded("openai/chat_basic.json")
    seen: list[httpx.Request] = []
    async with pipeline_for(OPENAI, replay(recorded, seen)) as pipe:
        response = await pipe.acompletion("gpt-4o", recorded["request"]["body"]["messages"])
    assert_same_request(seen[0], recorded, {"authorization": f"Bearer {KEY}"})
    assert response.choices[0].message.content == "\\(4200 + 42 = 4242\\)."


async def test_stream_end_to_end_replays_the_recorded_exchange() -> None:
    recorded = load_recorded("openai/chat_stream_tool_call.json")
    body = recorded["request"]["body"]
    seen: list[httpx.Request] = []
    async with pipeline_for(OPENAI, replay(recorded, seen)) as pipe:
        stream = await pipe.acompletion(
            "openai/gpt-4o-mini",
            body["messages"],
            stream=True,
            tool_choice="auto",
            tools=body["tools"],
        )
        chunks = [chunk async for chunk in stream]
    assert_same_request(seen[0], recorded, {"authorization": f"Bearer {KEY}"})
    check_chat(assemble(chunks), EXPECTED["openai/chat_stream_tool_call.json"])
    assert stream.closed


async def test_embedding_end_to_end_replays_the_recorded_exchange() -> None:
    recorded = load_recorded("openai/embeddings_float.json")
    seen: list[httpx.Request] = []
    async with pipeline_for(OPENAI, replay(recorded, seen)) as pipe:
        response = await pipe.aembedding("text-embedding-3-small", ["Hello world"], dimensions=256)
    assert_same_request(seen[0], recorded, {"authorization": f"Bearer {KEY}"})
    assert len(response.data[0].embedding) == 256
    assert response.request_id == "req_c5d48893a4bb437a9129024a78287d16"


async def test_recorded_error_end_to_end_unifies_with_the_request_id() -> None:
    recorded = load_recorded("openai/error_401_invalid_api_key.json")
    seen: list[httpx.Request] = []
    async with pipeline_for(OPENAI, replay(recorded, seen)) as pipe:
        with pytest.raises(UpstreamStatusError) as raised:
            await pipe.acompletion("gpt-4o", recorded["request"]["body"]["messages"])
    error = raised.value.unified()
    check_error(error, EXPECTED["openai/error_401_invalid_api_key.json"])
    assert KEY not in str(error) and KEY not in repr(error)


# -- credentials and base URL --------------------------------------------------------


async def test_missing_key_fails_before_any_io_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    async with pipeline_for(OPENAI, never_called) as pipe:
        with pytest.raises(errors.AuthenticationError, match="OPENAI_API_KEY"):
            await pipe.acompletion("gpt-4o", [{"role": "user", "content": "hi"}])


async def test_per_call_key_and_base_win_and_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://proxy.example/v1")
    request = Request(
        endpoint="chat",
        provider="openai",
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        api_key=Secret("sk-per-call-abcdef123456"),
        api_base="https://per-call.example/v1/",
    )
    sent = OPENAI.build(request)
    assert str(sent.url) == "https://per-call.example/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-per-call-abcdef123456"
    assert "sk-per-call" not in repr(request)


async def test_openai_base_url_variable_relocates_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://gateway.example/openai/v1/")
    sent = OPENAI.build(Request(endpoint="speech", provider="openai", model="tts-1", input="hi"))
    assert str(sent.url) == "https://gateway.example/openai/v1/audio/speech"


# -- hand-written fixtures from OpenAI's documented formats --------------------------


def _chat_request() -> Request:
    return Request(
        endpoint="chat",
        provider="openai",
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
    )


async def test_rate_limit_429_reads_retry_after_and_is_retryable() -> None:
    response = httpx.Response(
        429,
        headers={"retry-after": "20", "x-request-id": "req_429"},
        json={
            "error": {
                "message": "Rate limit reached for gpt-4o on tokens per min (TPM). "
                "Please try again in 20s.",
                "type": "tokens",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
    )
    error = OPENAI.parse_error(_chat_request(), response)
    assert type(error) is errors.RateLimitError
    assert error.retryable is True
    assert error.retry_after == 20.0
    assert error.request_id == "req_429"
    assert error.code == "rate_limit_exceeded"


async def test_insufficient_quota_429_is_not_retryable() -> None:
    response = httpx.Response(
        429,
        json={
            "error": {
                "message": "You exceeded your current quota, please check your plan and "
                "billing details.",
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        },
    )
    error = OPENAI.parse_error(_chat_request(), response)
    assert isinstance(error, errors.RateLimitError)
    assert error.retryable is False
    assert error.code == "insufficient_quota"


async def test_context_length_exceeded_400_is_a_context_window_error() -> None:
    response = httpx.Response(
        400,
        json={
            "error": {
                "message": "This model's maximum context length is 128000 tokens. However, "
                "your messages resulted in 130417 tokens. Please reduce the length of the "
                "messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    )
    error = OPENAI.parse_error(_chat_request(), response)
    assert type(error) is errors.ContextWindowExceededError
    assert isinstance(error, errors.BadRequestError)
    assert error.code == "context_length_exceeded"
    assert error.retryable is False


async def test_server_error_keeps_its_status_class_and_non_json_body() -> None:
    response = httpx.Response(502, text="<html>Bad gateway</html>")
    error = OPENAI.parse_error(_chat_request(), response)
    assert type(error) is errors.InternalServerError
    assert "Bad gateway" in error.message and error.retryable


async def test_image_generation_request_and_reply() -> None:
    request = Request(
        endpoint="image",
        provider="openai",
        model="dall-e-3",
        input="a watercolor lighthouse",
        params={"n": 1, "size": "1024x1024", "response_format": "b64_json"},
    )
    sent = OPENAI.build(request)
    assert str(sent.url) == "https://api.openai.com/v1/images/generations"
    assert json.loads(sent.content) == {
        "model": "dall-e-3",
        "prompt": "a watercolor lighthouse",
        "n": 1,
        "size": "1024x1024",
        "response_format": "b64_json",
    }
    reply = httpx.Response(
        200,
        json={
            "created": 1713833628,
            "data": [{"b64_json": "iVBORw0KGgo=", "revised_prompt": "A watercolor painting"}],
        },
    )
    result = OPENAI.parse(request, reply)
    assert isinstance(result, ImageResponse)
    assert result.created == 1713833628
    (image,) = result.data
    assert (image.b64_json, image.revised_prompt, image.url) == (
        "iVBORw0KGgo=",
        "A watercolor painting",
        None,
    )


WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(24)


async def test_transcription_uploads_the_audio_and_fields_as_multipart() -> None:
    request = Request(
        endpoint="transcription",
        provider="openai",
        model="whisper-1",
        input=WAV,
        params={
            "language": "en",
            "temperature": 0.2,
            "response_format": "verbose_json",
            "timestamp_granularities": ["word", "segment"],
        },
    )
    sent = OPENAI.build(request)
    body = sent.read()
    assert str(sent.url) == "https://api.openai.com/v1/audio/transcriptions"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="audio.wav"' in body
    assert WAV in body
    for name, value in (
        ("model", b"whisper-1"),
        ("language", b"en"),
        ("temperature", b"0.2"),
        ("response_format", b"verbose_json"),
    ):
        assert f'name="{name}"'.encode() + b"\r\n\r\n" + value + b"\r\n" in body
    assert body.count(b'name="timestamp_granularities[]"') == 2
    reply = httpx.Response(
        200, json={"task": "transcribe", "language": "english", "duration": 1.5, "text": "Hello."}
    )
    result = OPENAI.parse(request, reply)
    assert isinstance(result, TranscriptionResponse)
    assert (result.text, result.language, result.duration) == ("Hello.", "english", 1.5)


async def test_transcription_takes_a_named_file_and_plain_text_replies() -> None:
    request = Request(
        endpoint="transcription",
        provider="openai",
        model="whisper-1",
        input=("meeting.m4a", b"\x00\x00\x00\x20ftypM4A ", "audio/mp4"),
        params={"response_format": "text"},
    )
    body = OPENAI.build(request).read()
    assert b'name="file"; filename="meeting.m4a"\r\nContent-Type: audio/mp4' in body
    reply = httpx.Response(200, headers={"content-type": "text/plain"}, text="Hello there.\n")
    result = OPENAI.parse(request, reply)
    assert isinstance(result, TranscriptionResponse)
    assert result.text == "Hello there.\n"


async def test_speech_returns_the_audio_bytes_and_type() -> None:
    request = Request(
        endpoint="speech",
        provider="openai",
        model="tts-1",
        input="Hello world",
        params={"voice": "alloy", "response_format": "opus"},
    )
    sent = OPENAI.build(request)
    assert str(sent.url) == "https://api.openai.com/v1/audio/speech"
    assert json.loads(sent.content) == {
        "model": "tts-1",
        "input": "Hello world",
        "voice": "alloy",
        "response_format": "opus",
    }
    audio = b"OggS\x00\x02" + bytes(range(40))
    result = OPENAI.parse(
        request, httpx.Response(200, headers={"content-type": "audio/ogg"}, content=audio)
    )
    assert isinstance(result, SpeechResponse)
    assert (result.content, result.content_type) == (audio, "audio/ogg")


async def test_n_choices_keep_their_own_index_whatever_their_order() -> None:
    reply = httpx.Response(
        200,
        json={
            "id": "c",
            "created": 1,
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 1,
                    "message": {"role": "assistant", "content": "B"},
                    "finish_reason": "stop",
                },
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "A"},
                    "finish_reason": "length",
                },
            ],
        },
    )
    result = OPENAI.parse(_chat_request(), reply)
    assert isinstance(result, ChatResponse)
    assert [(c.index, c.message.content, c.finish_reason) for c in result.choices] == [
        (1, "B", "stop"),
        (0, "A", "length"),
    ]


async def test_response_format_and_tool_choice_pass_through_unchanged() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    request = Request(
        endpoint="chat",
        provider="openai",
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        params={
            "response_format": schema,
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "extra_headers": {"OpenAI-Beta": "assistants=v2"},
            "extra_body": {"seed": 7},
        },
    )
    sent = OPENAI.build(request)
    body = json.loads(sent.content)
    assert body["response_format"] == schema
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["seed"] == 7
    assert "extra_headers" not in body and "extra_body" not in body
    assert sent.headers["openai-beta"] == "assistants=v2"


async def test_stream_error_event_mid_stream_raises_the_unified_error() -> None:
    raw = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        b'data: {"error":{"message":"The server had an error","type":"server_error",'
        b'"code":"server_error"}}\n\n'
    )
    request = attrs.evolve(_chat_request(), stream=True)
    decoder = OPENAI.stream_decoder(request)
    [chunk] = decoder.feed(raw)  # the chunk before the error reaches the caller first
    assert chunk.choices[0].delta.content == "Hi"
    with pytest.raises(errors.InternalServerError, match="The server had an error"):
        decoder.close()
    decoder = OPENAI.stream_decoder(request)
    with pytest.raises(errors.InternalServerError, match="The server had an error"):
        decoder.feed(raw[raw.index(b'data: {"error') :])


async def test_a_body_that_is_not_a_stream_is_a_provider_response_error() -> None:
    request = attrs.evolve(_chat_request(), stream=True)
    with pytest.raises(errors.ProviderResponseError):
        decode(OPENAI, request, b'{"id": "not an event stream"}')


# -- damaged bodies --------------------------------------------------------------------

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NON_ERRORS = [n for n in RECORDED if "error" not in n]
ERRORS = [n for n in RECORDED if "error" in n]


@pytest.mark.skipif(not RECORDED, reason="recorded fixtures not found")
@SETTINGS
@given(case=damaged_recordings(NON_ERRORS))
async def test_damaged_recorded_bodies_parse_or_raise_provider_response_error(
    case: tuple[str, bytes],
) -> None:
    name, body = case
    request = call_from_recorded(load_recorded(name), "openai")
    survives(OPENAI, request, body, "application/json")


@pytest.mark.skipif(not RECORDED, reason="recorded fixtures not found")
@SETTINGS
@given(case=damaged_recordings(ERRORS))
async def test_damaged_error_bodies_still_give_a_unified_error(case: tuple[str, bytes]) -> None:
    name, body = case
    status = load_recorded(name)["response"]["status"]
    error = OPENAI.parse_error(_chat_request(), httpx.Response(status, content=body))
    assert isinstance(error, errors.APIStatusError)
    assert error.status_code == status
