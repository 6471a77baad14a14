"""Ollama's native adapter, proven on the recorded exchanges in shared/fixtures/recorded/ollama.

Each recording is rebuilt from an OpenAI-shaped call and compared with what
went over the wire; its reply, NDJSON stream or error body is parsed and
checked. ``openai_compat_chat.json`` is Ollama's ``/v1`` endpoint and belongs
to the OpenAI-compatible table's tests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
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
from providers.ollama import (
    BASE_URL_ENVS,
    KEY_ENV,
    OLLAMA,
    Ollama,
    created_from,
    finish_from,
    usage_from,
)
from tests._decoding import accumulate, assert_whole, feed
from tests._mutations import FUZZ, cut_and_flipped, damaged
from tests.conftest import load_recorded, recorded_names

pytestmark = pytest.mark.anyio

OPENAI_COMPAT = "ollama/openai_compat_chat.json"  # the /v1 endpoint: not this adapter's
CLOUD = "https://ollama.com"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "getWeather",
        "description": "Get the current weather for a location.",
        "parameters": {
            "type": "object",
            "required": ["location"],
            "properties": {
                "location": {
                    "type": "string",
                    "description": "The city and state, e.g. San Francisco, CA",
                }
            },
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "getTime",
        "description": "Get the current time.",
        "parameters": {"type": "object", "required": [], "properties": {}},
    },
}
WEATHER_QUESTION = {"role": "user", "content": "What's the weather like in San Francisco?"}
WEATHER_CALL = {
    "id": "call_mo1wm122",
    "type": "function",
    "function": {"name": "getWeather", "arguments": '{"location": "San Francisco, CA"}'},
}


@pytest.fixture(autouse=True)
def no_ollama_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*BASE_URL_ENVS, KEY_ENV):
        monkeypatch.delenv(name, raising=False)


# -- the OpenAI-shaped call behind each recording -------------------------------


@attrs.frozen
class Call:
    endpoint: str
    model: str
    messages: list[dict[str, Any]] = attrs.Factory(list)
    input: Any = None
    params: dict[str, Any] = attrs.Factory(dict)
    stream: bool = False
    api_base: str | None = None
    # What we send beyond the recording (langchaingo's client sent less).
    also_sent: Callable[[dict[str, Any]], None] | None = None

    def request(self) -> Request:
        return Request(
            endpoint=self.endpoint,  # type: ignore[arg-type]
            provider="ollama",
            model=self.model,
            messages=self.messages,
            input=self.input,
            params=self.params,
            stream=self.stream,
            api_base=self.api_base,
        )


def _stream_said_explicitly(body: dict[str, Any]) -> None:
    body["stream"] = True  # the recording relied on Ollama's default; we always say it


def _tool_name_given(body: dict[str, Any]) -> None:
    body["messages"][2]["tool_name"] = "getWeather"  # Ollama's documented field


CALLS: dict[str, Call] = {
    "ollama/chat_nonstream_thinking.json": Call(
        "chat",
        "gpt-oss:120b",
        [{"role": "user", "content": "What is the capital of France?"}],
        api_base=CLOUD,
    ),
    "ollama/chat_stream_default_done_reason_length.json": Call(
        "chat",
        "gemma3:1b",
        [{"role": "user", "content": "Hello, how are you?"}],
        params={"max_tokens": 50, "temperature": 0},
        stream=True,
        also_sent=_stream_said_explicitly,
    ),
    "ollama/chat_stream_ndjson.json": Call(
        "chat",
        "gemma3:1b",
        [{"role": "user", "content": "Count from 1 to 5"}],
        params={"max_tokens": 50, "temperature": 0},
        stream=True,
    ),
    "ollama/chat_tool_call.json": Call(
        "chat", "gpt-oss:120b", [WEATHER_QUESTION], params={"tools": [WEATHER_TOOL]}, api_base=CLOUD
    ),
    "ollama/chat_tool_result_followup.json": Call(
        "chat",
        "gpt-oss:120b",
        [
            WEATHER_QUESTION,
            {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
            {
                "role": "tool",
                "tool_call_id": "call_mo1wm122",
                "content": '{"temperature": 72, "condition": "sunny"}',
            },
        ],
        params={"tools": [WEATHER_TOOL]},
        api_base=CLOUD,
        also_sent=_tool_name_given,
    ),
    "ollama/embed.json": Call(
        "embedding", "nomic-embed-text", input="Hello world", params={"temperature": 0}
    ),
    "ollama/error_400_model_does_not_support_tools.json": Call(
        "chat",
        "gemma3:1b",
        [{"role": "user", "content": "Which date do we have today?"}],
        params={"tools": [TIME_TOOL]},
    ),
}
# /api/generate (the legacy completion endpoint) is not built; its reply's
# done_reason and counts are read by the same helpers as chat's (tested below).
LEGACY_GENERATE = "ollama/generate_nonstream.json"


def as_sent(name: str) -> dict[str, Any]:
    """The recorded body as this adapter sends it. langchaingo also sent Ollama's
    empty defaults (``format: ""``, ``options: {}``), which Ollama reads as unset."""
    body = {
        k: v
        for k, v in load_recorded(name)["request"]["body"].items()
        if not ((k == "format" and v == "") or (k == "options" and v == {}))
    }
    adjust = CALLS[name].also_sent
    if adjust is not None:
        adjust(body)
    return body


async def test_every_recording_is_covered() -> None:
    load_recorded(LEGACY_GENERATE)  # skips with a reason when the recordings are absent
    assert set(recorded_names("ollama")) == {*CALLS, LEGACY_GENERATE, OPENAI_COMPAT}


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_request_matches_the_recording(name: str) -> None:
    recorded = load_recorded(name)["request"]
    built = OLLAMA.build(CALLS[name].request())
    assert built.method == recorded["method"]
    assert str(built.url) == recorded["url"]
    assert built.headers["content-type"] == recorded["headers"]["content-type"]
    assert "authorization" not in built.headers
    assert json.loads(built.content) == as_sent(name)


# -- replies ------------------------------------------------------------------


def recorded_reply(name: str) -> httpx.Response:
    response = load_recorded(name)["response"]
    body = response["body"]
    return httpx.Response(
        response["status"],
        headers=response["headers"],
        content=body.encode() if isinstance(body, str) else json.dumps(body).encode(),
    )


def ndjson_lines(name: str) -> list[dict[str, Any]]:
    """The recorded stream read plainly, as the oracle for the decoder's result."""
    text: str = load_recorded(name)["response"]["body"]
    return [json.loads(line) for line in text.splitlines() if line]


async def test_reply_with_thinking() -> None:
    name = "ollama/chat_nonstream_thinking.json"
    resp = OLLAMA.parse(CALLS[name].request(), recorded_reply(name))
    assert isinstance(resp, ChatResponse)
    message = resp.choices[0].message
    assert message.content == "The capital of France is **Paris**."
    assert message.reasoning_content is not None
    assert message.reasoning_content.startswith('The user asks: "What is the capital of France?"')
    assert message.tool_calls is None
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage == Usage(prompt_tokens=74, completion_tokens=40, total_tokens=114)
    assert resp.model == "gpt-oss:120b"
    assert resp.created == int(datetime(2026, 3, 3, 23, 25, 43, tzinfo=UTC).timestamp())
    assert resp.to_dict()["choices"][0]["message"]["reasoning_content"] == (
        message.reasoning_content
    )


async def test_reply_with_a_tool_call() -> None:
    name = "ollama/chat_tool_call.json"
    resp = OLLAMA.parse(CALLS[name].request(), recorded_reply(name))
    assert isinstance(resp, ChatResponse)
    message = resp.choices[0].message
    assert message.content is None  # "" beside tool calls, as OpenAI sends null
    assert message.reasoning_content == (
        "User asks about weather in San Francisco. Use function getWeather."
    )
    assert message.tool_calls is not None
    [call] = message.tool_calls
    assert call.id == "call_mo1wm122"  # Ollama Cloud's own id is kept
    assert call.type == "function"
    assert call.function.name == "getWeather"
    assert json.loads(call.function.arguments) == {"location": "San Francisco, CA"}
    assert resp.choices[0].finish_reason == "tool_calls"  # Ollama said "stop"
    assert resp.usage == Usage(prompt_tokens=145, completion_tokens=44, total_tokens=189)


async def test_reply_after_a_tool_result() -> None:
    name = "ollama/chat_tool_result_followup.json"
    resp = OLLAMA.parse(CALLS[name].request(), recorded_reply(name))
    assert isinstance(resp, ChatResponse)
    assert resp.choices[0].message.content == "San Francisco is currently **72 °F** and **sunny**."
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage == Usage(prompt_tokens=189, completion_tokens=21, total_tokens=210)


async def test_tool_calls_without_an_id_get_a_stable_one() -> None:
    name = "ollama/chat_tool_call.json"
    body = load_recorded(name)["response"]["body"]
    del body["message"]["tool_calls"][0]["id"]  # local Ollama sends none
    second = {"function": {"index": 1, "name": "getTime", "arguments": {}}}
    body["message"]["tool_calls"].append(second)

    def parsed() -> ChatResponse:
        resp = OLLAMA.parse(CALLS[name].request(), httpx.Response(200, json=body))
        assert isinstance(resp, ChatResponse)
        return resp

    first_calls = parsed().choices[0].message.tool_calls
    again = parsed().choices[0].message.tool_calls
    assert first_calls is not None
    assert again is not None
    ids = [c.id for c in first_calls]
    assert ids == [c.id for c in again]
    assert all(i.startswith("call_") for i in ids)
    assert len(set(ids)) == 2
    assert first_calls[1].function.arguments == "{}"


async def test_embedding_reply() -> None:
    name = "ollama/embed.json"
    resp = OLLAMA.parse(CALLS[name].request(), recorded_reply(name))
    assert isinstance(resp, EmbeddingResponse)
    [item] = resp.data
    assert item.index == 0
    assert len(item.embedding) == 768
    assert item.embedding[:3] == [-0.006746773, -0.0013343222, -0.17155783]
    assert resp.usage == Usage(prompt_tokens=2, total_tokens=2)
    assert resp.model == "nomic-embed-text"


async def test_error_reply() -> None:
    name = "ollama/error_400_model_does_not_support_tools.json"
    error = OLLAMA.parse_error(CALLS[name].request(), recorded_reply(name))
    assert type(error) is errors.BadRequestError
    assert error.status_code == 400
    assert error.message == "registry.ollama.ai/library/gemma3:1b does not support tools"
    assert error.provider == "ollama"
    assert error.retryable is False


async def test_legacy_generate_reply_reads_reason_and_counts() -> None:
    """``/api/generate`` is not an endpoint here; its final object carries
    ``done_reason`` and the eval counts in the same fields the chat stream's
    last line does, read by the same helpers."""
    body = load_recorded(LEGACY_GENERATE)["response"]["body"]
    assert usage_from(body) == Usage(prompt_tokens=15, completion_tokens=65, total_tokens=80)
    assert finish_from(body, tool_calls=False) == "stop"
    assert finish_from(body, tool_calls=True) == "tool_calls"
    assert created_from(body) == int(datetime(2025, 8, 20, 13, 48, 21, tzinfo=UTC).timestamp())


# -- NDJSON streams -------------------------------------------------------------

STREAMS = {
    "ollama/chat_stream_ndjson.json": (
        "stop",
        Usage(prompt_tokens=16, completion_tokens=22, total_tokens=38),
    ),
    "ollama/chat_stream_default_done_reason_length.json": (
        "length",
        Usage(prompt_tokens=15, completion_tokens=50, total_tokens=65),
    ),
}


def decode(request: Request, raw: bytes, step: int | None = None) -> list[ChatChunk]:
    return feed(OLLAMA.stream_decoder(request), raw, step)


@pytest.mark.parametrize("name", sorted(STREAMS))
async def test_recorded_stream(name: str) -> None:
    finish, usage = STREAMS[name]
    lines = ndjson_lines(name)
    raw = load_recorded(name)["response"]["body"].encode()
    chunks = decode(CALLS[name].request(), raw)
    assert len(chunks) == len(lines)
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert all(c.usage is None for c in chunks[:-1])
    resp = accumulate(chunks)
    assert resp.choices[0].message.content == "".join(line["message"]["content"] for line in lines)
    assert resp.choices[0].finish_reason == finish
    assert resp.usage == usage
    assert resp.provider == "ollama"
    assert resp.model == "gemma3:1b"
    assert chunks[0].choices[0].delta.role == "assistant"


async def test_stream_text_reads_as_expected() -> None:
    name = "ollama/chat_stream_ndjson.json"
    raw = load_recorded(name)["response"]["body"].encode()
    resp = accumulate(decode(CALLS[name].request(), raw))
    assert resp.choices[0].message.content == "Okay, here we go!\n\n1, 2, 3, 4, 5\n"


@pytest.mark.parametrize("name", sorted(STREAMS))
async def test_stream_fed_one_byte_at_a_time(name: str) -> None:
    raw = load_recorded(name)["response"]["body"].encode()
    request = CALLS[name].request()
    assert decode(request, raw, step=1) == decode(request, raw)


def ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def line(content: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "model": "qwen3",
        "created_at": "2025-08-20T13:48:24Z",
        "message": {"role": "assistant", "content": content, **extra},
        "done": False,
    }


DONE = {
    "model": "qwen3",
    "created_at": "2025-08-20T13:48:25Z",
    "message": {"role": "assistant", "content": ""},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 20,
    "eval_count": 9,
}
STREAMING = Request(
    endpoint="chat", provider="ollama", model="qwen3", messages=[WEATHER_QUESTION], stream=True
)


async def test_streamed_tool_calls_and_thinking() -> None:
    """Ollama streams thinking in ``message.thinking`` and each tool call whole."""
    raw = ndjson(
        line(thinking="Need the weather."),
        line(tool_calls=[{"function": {"name": "getWeather", "arguments": {"location": "SF"}}}]),
        line(tool_calls=[{"function": {"name": "getTime", "arguments": {}}}]),
        DONE,
    )
    chunks = decode(STREAMING, raw)
    assert decode(STREAMING, raw, step=1) == chunks
    resp = accumulate(chunks)
    message = resp.choices[0].message
    assert message.reasoning_content == "Need the weather."
    assert message.tool_calls is not None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("getWeather", {"location": "SF"}),
        ("getTime", {}),
    ]
    assert all(c.id.startswith("call_") for c in message.tool_calls)
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.usage == Usage(prompt_tokens=20, completion_tokens=9, total_tokens=29)


async def test_error_line_mid_stream_raises_a_unified_error() -> None:
    decoder = OLLAMA.stream_decoder(STREAMING)
    [first] = decoder.feed(ndjson(line("Hel")))
    assert first.choices[0].delta.content == "Hel"
    with pytest.raises(errors.InternalServerError, match="unexpected EOF") as caught:
        decoder.feed(
            ndjson({"error": "an error was encountered while running the model: unexpected EOF"})
        )
    assert caught.value.provider == "ollama"


async def test_error_line_naming_a_context_overflow() -> None:
    decoder = OLLAMA.stream_decoder(STREAMING)
    with pytest.raises(errors.ContextWindowExceededError):
        decoder.feed(ndjson({"error": "the input length exceeds the context length"}))


async def test_stream_that_ends_before_its_last_line() -> None:
    decoder = OLLAMA.stream_decoder(STREAMING)
    assert len(decoder.feed(ndjson(line("Hel"), line("lo")))) == 2
    with pytest.raises(errors.ProviderResponseError, match="done"):
        decoder.close()


async def test_crlf_and_blank_lines_read_the_same() -> None:
    raw = ndjson(line("Hel"), line("lo"), DONE)
    spaced = raw.replace(b"\n", b"\r\n\r\n")
    assert decode(STREAMING, spaced, step=1) == decode(STREAMING, raw)


async def test_a_line_that_is_not_json() -> None:
    decoder = OLLAMA.stream_decoder(STREAMING)
    with pytest.raises(errors.ProviderResponseError):
        decoder.feed(b'{"model": "qwen3", "message": \n')


# -- building requests ----------------------------------------------------------


def chat(**fields: Any) -> Request:
    return Request(
        endpoint="chat",
        provider="ollama",
        model="llama3.2",
        messages=fields.pop("messages", [{"role": "user", "content": "hi"}]),
        **fields,
    )


def body_of(request: Request, adapter: Ollama = OLLAMA) -> dict[str, Any]:
    sent: dict[str, Any] = json.loads(adapter.build(request).content)
    return sent


async def test_stream_is_always_said() -> None:
    assert body_of(chat())["stream"] is False
    assert body_of(chat(stream=True))["stream"] is True


async def test_parameters_are_mapped_to_ollama_places() -> None:
    body = body_of(
        chat(
            params={
                "max_completion_tokens": 64,
                "temperature": 0.2,
                "top_p": 0.9,
                "seed": 7,
                "stop": "END",
                "top_k": 40,
                "num_ctx": 8192,
                "options": {"repeat_penalty": 1.1},
                "think": True,
                "keep_alive": "10m",
                "tool_choice": "auto",
                "n": 1,
                "stream_options": {"include_usage": True},
                "presence_penalty": None,
            }
        )
    )
    assert body["options"] == {
        "num_predict": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["END"],
        "top_k": 40,
        "num_ctx": 8192,
        "repeat_penalty": 1.1,
    }
    assert body["think"] is True
    assert body["keep_alive"] == "10m"
    for absent in ("tool_choice", "n", "stream_options", "presence_penalty", "max_tokens"):
        assert absent not in body


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}}},
            {"type": "object"},
        ),
    ],
)
async def test_response_format_becomes_format(response_format: Any, expected: Any) -> None:
    assert body_of(chat(params={"response_format": response_format}))["format"] == expected


async def test_text_response_format_sends_no_format() -> None:
    assert "format" not in body_of(chat(params={"response_format": {"type": "text"}}))


@pytest.mark.parametrize(
    "params",
    [
        {"n": 2},
        {"tool_choice": "none"},
        {"tool_choice": {"type": "function", "function": {"name": "getTime"}}},
        {"parallel_tool_calls": False},
        {"response_format": {"type": "grammar"}},
        {"options": ["num_ctx"]},
    ],
)
async def test_parameters_ollama_cannot_honour(params: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        OLLAMA.build(chat(params=params))
    assert caught.value.provider == "ollama"


async def test_inline_images_and_text_parts() -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "text", "text": "One word."},
            ],
        },
    ]
    sent = body_of(chat(messages=messages))["messages"]
    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is this?\nOne word.", "images": ["iVBORw0KGgo="]},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ],
)
async def test_parts_ollama_cannot_take(part: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidRequestError, match=r"messages\[0\]"):
        OLLAMA.build(chat(messages=[{"role": "user", "content": [part]}]))


async def test_tool_call_arguments_that_are_not_an_object() -> None:
    bad = {**WEATHER_CALL, "function": {"name": "getWeather", "arguments": "[1, 2]"}}
    messages = [WEATHER_QUESTION, {"role": "assistant", "content": None, "tool_calls": [bad]}]
    with pytest.raises(errors.InvalidRequestError, match="arguments"):
        OLLAMA.build(chat(messages=messages))


async def test_earlier_reasoning_goes_back_as_thinking() -> None:
    messages = [
        WEATHER_QUESTION,
        {"role": "assistant", "content": "Sunny.", "reasoning_content": "Looked it up."},
        {"role": "user", "content": "Thanks"},
    ]
    assert body_of(chat(messages=messages))["messages"][1] == {
        "role": "assistant",
        "content": "Sunny.",
        "thinking": "Looked it up.",
    }


async def test_extra_body_and_headers() -> None:
    built = OLLAMA.build(
        chat(params={"extra_body": {"truncate": False}, "extra_headers": {"x-trace": "1"}})
    )
    assert json.loads(built.content)["truncate"] is False
    assert built.headers["x-trace"] == "1"


async def test_embedding_parameters() -> None:
    request = Request(
        endpoint="embedding",
        provider="ollama",
        model="nomic-embed-text",
        input=["a", "b"],
        params={"dimensions": 256, "truncate": True, "keep_alive": 0, "num_thread": 4},
    )
    assert body_of(request) == {
        "model": "nomic-embed-text",
        "input": ["a", "b"],
        "dimensions": 256,
        "truncate": True,
        "keep_alive": 0,
        "options": {"num_thread": 4},
    }


async def test_embedding_of_token_ids_is_refused() -> None:
    request = Request(endpoint="embedding", provider="ollama", model="m", input=[101, 2023])
    with pytest.raises(errors.InvalidRequestError, match="string"):
        OLLAMA.build(request)


# -- where requests go, and with which key --------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "url"),
    [
        ("OLLAMA_HOST", "0.0.0.0", "http://0.0.0.0:11434/api/chat"),
        ("OLLAMA_HOST", "gpu-box:8080", "http://gpu-box:8080/api/chat"),
        ("OLLAMA_HOST", "[::1]", "http://[::1]:11434/api/chat"),
        ("OLLAMA_HOST", "https://ollama.example.com/", "https://ollama.example.com/api/chat"),
        ("OLLAMA_API_BASE", "http://10.0.0.5:11434", "http://10.0.0.5:11434/api/chat"),
    ],
)
async def test_server_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, url: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert str(OLLAMA.build(chat()).url) == url


async def test_server_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(OLLAMA.build(chat()).url) == "http://localhost:11434/api/chat"
    monkeypatch.setenv("OLLAMA_HOST", "host-var:1")
    monkeypatch.setenv("OLLAMA_API_BASE", "http://base-var:2")
    assert str(OLLAMA.build(chat()).url) == "http://base-var:2/api/chat"
    configured = Ollama(base_url="http://configured:3")
    assert str(configured.build(chat()).url) == "http://configured:3/api/chat"
    assert str(configured.build(chat(api_base="http://per-call:4/")).url) == (
        "http://per-call:4/api/chat"
    )


async def test_cloud_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "authorization" not in OLLAMA.build(chat()).headers
    monkeypatch.setenv(KEY_ENV, "env-key-123")
    assert OLLAMA.build(chat()).headers["authorization"] == "Bearer env-key-123"
    per_call = chat(api_key=Secret("call-key-456"))
    assert OLLAMA.build(per_call).headers["authorization"] == "Bearer call-key-456"
    assert "call-key-456" not in repr(per_call)


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (404, {"error": 'model "llama9" not found, try pulling it first'}, errors.NotFoundError),
        (
            400,
            {"error": "input length exceeds maximum context length"},
            errors.ContextWindowExceededError,
        ),
        (400, {"error": "invalid options: num_ctx"}, errors.BadRequestError),
        (500, {"error": "model runner has unexpectedly stopped"}, errors.InternalServerError),
        (
            503,
            {"error": "server busy, please try again.  maximum pending requests exceeded"},
            errors.ServiceUnavailableError,
        ),
    ],
)
async def test_error_classes(status: int, body: Any, cls: type[errors.DispatchError]) -> None:
    error = OLLAMA.parse_error(chat(), httpx.Response(status, json=body))
    assert type(error) is cls
    assert error.message == body["error"]


async def test_error_body_that_is_not_json() -> None:
    error = OLLAMA.parse_error(chat(), httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert type(error) is errors.InternalServerError
    assert "Bad Gateway" in error.message


# -- end to end through a Pipeline ----------------------------------------------


async def map_errors(request: Request, call_next: Handler) -> Result:
    try:
        return await call_next(request)
    except UpstreamStatusError as exc:
        raise exc.unified() from exc


class Replay:
    """A MockTransport handler answering one recorded exchange, in pieces for streams."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        response = load_recorded(self.name)["response"]
        body = response["body"]
        if not isinstance(body, str):
            return httpx.Response(response["status"], headers=response["headers"], json=body)
        raw = body.encode()

        async def pieces() -> AsyncIterator[bytes]:
            for i in range(0, len(raw), 97):
                yield raw[i : i + 97]

        return httpx.Response(response["status"], headers=response["headers"], content=pieces())


async def through_pipeline(name: str, run: Callable[[Pipeline], Any]) -> tuple[Any, Replay]:
    replay = Replay(name)
    async with httpx.AsyncClient(transport=httpx.MockTransport(replay)) as client:
        pipe = Pipeline([map_errors], registry=ProviderRegistry([Ollama()]), http_client=client)
        result = await run(pipe)
        if not isinstance(result, (ChatResponse, EmbeddingResponse)):
            acc = StreamAccumulator()
            async for chunk in result:
                acc.add(chunk)
            result = acc.response()
    return result, replay


async def test_end_to_end_chat() -> None:
    name = "ollama/chat_tool_call.json"
    resp, replay = await through_pipeline(
        name,
        lambda pipe: pipe.acompletion(
            "ollama/gpt-oss:120b", [WEATHER_QUESTION], tools=[WEATHER_TOOL], api_base=CLOUD
        ),
    )
    [sent] = replay.seen
    assert str(sent.url) == "https://ollama.com/api/chat"
    assert json.loads(sent.content) == as_sent(name)
    assert resp.provider == "ollama"
    assert resp.request_id == "9da05030-f8a3-4d49-b758-dcf3e5188e76"
    assert resp.choices[0].message.tool_calls[0].function.name == "getWeather"
    assert resp.choices[0].finish_reason == "tool_calls"


async def test_end_to_end_stream() -> None:
    name = "ollama/chat_stream_ndjson.json"
    resp, replay = await through_pipeline(
        name,
        lambda pipe: pipe.acompletion(
            "ollama/gemma3:1b",
            [{"role": "user", "content": "Count from 1 to 5"}],
            stream=True,
            max_tokens=50,
            temperature=0,
        ),
    )
    assert json.loads(replay.seen[0].content) == as_sent(name)
    assert resp.choices[0].message.content == "Okay, here we go!\n\n1, 2, 3, 4, 5\n"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage == Usage(prompt_tokens=16, completion_tokens=22, total_tokens=38)


async def test_end_to_end_embedding() -> None:
    name = "ollama/embed.json"
    resp, replay = await through_pipeline(
        name, lambda pipe: pipe.aembedding("ollama/nomic-embed-text", "Hello world", temperature=0)
    )
    assert str(replay.seen[0].url) == "http://localhost:11434/api/embed"
    assert json.loads(replay.seen[0].content) == as_sent(name)
    assert len(resp.data[0].embedding) == 768
    assert resp.provider == "ollama"


async def test_end_to_end_error() -> None:
    name = "ollama/error_400_model_does_not_support_tools.json"
    with pytest.raises(errors.BadRequestError, match="does not support tools"):
        await through_pipeline(
            name,
            lambda pipe: pipe.acompletion(
                "ollama/gemma3:1b",
                [{"role": "user", "content": "Which date do we have today?"}],
                tools=[TIME_TOOL],
            ),
        )


async def test_registered_without_auto_detection() -> None:
    registry = default_registry(load_entry_points=False)
    assert registry["ollama"].endpoints == frozenset({"chat", "embedding"})
    pipe = Pipeline(registry=registry)
    assert pipe.request("chat", "ollama/llama3.2", messages=[WEATHER_QUESTION]).provider == "ollama"
    assert registry.detect("llama3.2") is None
    assert registry.detect("gemma3:1b") is None


# -- hypothesis: damaged bodies end in a response or ProviderResponseError --------

JSON_REPLIES = [n for n in CALLS if not n.split("/")[1].startswith(("error", "chat_stream"))]


def parses_or_fails_cleanly(name: str, raw: bytes) -> None:
    try:
        resp = OLLAMA.parse(CALLS[name].request(), httpx.Response(200, content=raw))
    except errors.ProviderResponseError:
        return
    assert isinstance(resp, (ChatResponse, EmbeddingResponse))


def decodes_or_fails_cleanly(raw: bytes, step: int) -> None:
    try:
        chunks = decode(STREAMING, raw, step=step)
    except errors.ProviderResponseError:
        return
    except errors.DispatchError:
        assert b'"error"' in raw  # only a line that says it is an error raises another error
        return
    assert all(isinstance(c, ChatChunk) for c in chunks)
    assert_whole(raw, "ollama")  # a cut stream is an error, never a reply


@FUZZ
@given(data=st.data())
async def test_damaged_json_replies(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(JSON_REPLIES))
    body = data.draw(damaged(load_recorded(name)["response"]["body"]))
    parses_or_fails_cleanly(name, json.dumps(body).encode())


@FUZZ
@given(data=st.data())
async def test_cut_or_flipped_json_replies(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(JSON_REPLIES))
    raw = json.dumps(load_recorded(name)["response"]["body"]).encode()
    parses_or_fails_cleanly(name, data.draw(cut_and_flipped(raw)))


@FUZZ
@given(data=st.data())
async def test_cut_or_flipped_streams(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(STREAMS)))
    raw = data.draw(cut_and_flipped(load_recorded(name)["response"]["body"].encode()))
    decodes_or_fails_cleanly(raw, data.draw(st.integers(1, 64)))


@FUZZ
@given(data=st.data())
async def test_streams_with_a_damaged_line(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(STREAMS)))
    lines = ndjson_lines(name)
    i = data.draw(st.integers(0, len(lines) - 1))
    lines[i] = data.draw(damaged(lines[i]))
    decodes_or_fails_cleanly(ndjson(*lines), data.draw(st.integers(1, 512)))


@FUZZ
@given(data=st.data())
async def test_damaged_error_bodies_still_give_an_error(data: st.DataObject) -> None:
    name = "ollama/error_400_model_does_not_support_tools.json"
    raw = json.dumps(load_recorded(name)["response"]["body"]).encode()
    raw = data.draw(cut_and_flipped(raw))
    status = data.draw(st.sampled_from([400, 401, 404, 429, 500, 503]))
    error = OLLAMA.parse_error(CALLS[name].request(), httpx.Response(status, content=raw))
    assert isinstance(error, errors.APIStatusError)
    assert error.status_code == status
