"""Azure OpenAI, proven on real recorded traffic and on its documented formats.

Each recording in ``shared/fixtures/recorded/azure_openai`` is rebuilt from
the call a user makes (deployment as the model, endpoint, API version) and
compared with what went over the wire; replies, streams (whose first event has
empty ``choices``) and content-filter results are parsed and checked. The
content-filter 400 is hand-written from Azure's documented error format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import given

from pipeline import ChatResponse, Request, Secret, UpstreamStatusError, errors
from pipeline.adapter import Endpoint
from providers.azure import AZURE, DEFAULT_API_VERSION, AzureOpenAI
from tests._decoding import accumulate as assemble
from tests.conftest import load_recorded, recorded_names
from tests.test_provider_openai import (
    SETTINGS,
    assert_same_request,
    call_from_recorded,
    check_chat,
    damaged_recordings,
    decode,
    never_called,
    parse_recorded,
    pipeline_for,
    replay,
    survives,
)

pytestmark = pytest.mark.anyio

KEY = "azure-key-0123456789abcdef0123"
RECORDED = recorded_names("azure_openai")
AZURE_ENV = (
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_API_BASE",
    "OPENAI_API_VERSION",
    "AZURE_API_VERSION",
    "AZURE_OPENAI_API_KEY",
    "AZURE_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
)
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)


def azure_call(recorded: Mapping[str, Any]) -> Request:
    """The call behind a recording: the deployment (from its URL) as the model,
    the resource as ``api_base``, its ``api-version``, and a body ``model``
    (which only some clients send) through ``extra_body``."""
    url = httpx.URL(recorded["request"]["url"])
    deployment = url.path.split("/")[3]
    request = call_from_recorded(
        recorded,
        "azure",
        model=deployment,
        api_base=f"{url.scheme}://{url.host}",
        api_version=url.params["api-version"],
    )
    body_model = recorded["request"]["body"].get("model")
    if body_model is None:
        return request
    return attrs.evolve(request, params={**request.params, "extra_body": {"model": body_model}})


def chat(model: str = "gpt-4o", **fields: Any) -> Request:
    return Request(endpoint="chat", provider="azure", model=model, messages=HI, **fields)


# -- every recording -------------------------------------------------------------------


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_request_is_rebuilt_exactly(name: str) -> None:
    recorded = load_recorded(name)
    sent = AZURE.build(azure_call(recorded))
    assert_same_request(sent, recorded, {"api-key": KEY})
    assert "authorization" not in sent.headers


EXPECTED: dict[str, dict[str, Any]] = {
    "azure_openai/chat_basic.json": {
        "content": "The capital of France is **Paris**.",
        "usage": (14, 9, 23),
        "model": "gpt-4o-2024-11-20",
    },
    "azure_openai/chat_tool_call.json": {
        "content": None,
        "finish": "tool_calls",
        "usage": (208, 219, 427),
        "reasoning_tokens": 192,
        "tool_calls": (("call_Cow46pNllpDx0pxUgZFeqlh1", "calculator", '{"expression":"15 * 8"}'),),
    },
    "azure_openai/chat_stream_text_include_usage.json": {
        "content": "Hello! How can I assist you today?",
        "usage": (9, 10, 19),
        "model": "gpt-4o-mini-2024-07-18",
    },
    "azure_openai/chat_stream_tool_call.json": {
        "content": None,
        "finish": "tool_calls",
        "usage": (66, 17, 83),
        "tool_calls": (
            (
                "call_A6XpaIHt5uNwiDqVxyvKoXMa",
                "get_current_temperature",
                '{"city":"San Francisco"}',
            ),
        ),
    },
}


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_reply_is_parsed(name: str) -> None:
    recorded = load_recorded(name)
    result = parse_recorded(AZURE, azure_call(recorded), recorded)
    check_chat(result, EXPECTED[name])


STREAMS = [n for n in RECORDED if "stream" in n]


@pytest.mark.parametrize("name", STREAMS)
async def test_stream_fed_one_byte_at_a_time_yields_the_same_chunks(name: str) -> None:
    recorded = load_recorded(name)
    request = azure_call(recorded)
    raw = recorded["response"]["body"].encode()
    whole = [chunk.to_dict() for chunk in decode(AZURE, request, raw)]
    assert [chunk.to_dict() for chunk in decode(AZURE, request, raw, piece=1)] == whole


@pytest.mark.parametrize("name", STREAMS)
async def test_first_filter_only_event_yields_no_chunk(name: str) -> None:
    recorded = load_recorded(name)
    raw = recorded["response"]["body"]
    events = [e for e in raw.split("\n\n") if e.startswith("data: {")]
    assert json.loads(events[0].removeprefix("data: "))["choices"] == []
    chunks = decode(AZURE, azure_call(recorded), raw.encode())
    assert len(chunks) == len(events) - 1
    assert all(chunk.id.startswith("chatcmpl-") for chunk in chunks)


# -- end to end ----------------------------------------------------------------------------


async def test_stream_end_to_end_from_environment_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded = load_recorded("azure_openai/chat_stream_tool_call.json")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://fake-azure-endpoint.openai.azure.com/")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-12-01-preview")
    body = recorded["request"]["body"]
    seen: list[httpx.Request] = []
    async with pipeline_for(AZURE, replay(recorded, seen)) as pipe:
        stream = await pipe.acompletion(
            "azure/gpt-4o-mini",
            body["messages"],
            stream=True,
            tool_choice="auto",
            tools=body["tools"],
        )
        chunks = [chunk async for chunk in stream]
    assert_same_request(seen[0], recorded, {"api-key": KEY})
    check_chat(assemble(chunks), EXPECTED["azure_openai/chat_stream_tool_call.json"])


async def test_chat_end_to_end_reads_the_apim_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = load_recorded("azure_openai/chat_basic.json")
    monkeypatch.setenv("AZURE_API_BASE", "https://REDACTED.openai.azure.com")
    monkeypatch.setenv("AZURE_API_VERSION", "2024-12-01-preview")
    seen: list[httpx.Request] = []
    async with pipeline_for(AZURE, replay(recorded, seen)) as pipe:
        response = await pipe.acompletion(
            "azure/gpt-4o", recorded["request"]["body"]["messages"], n=1
        )
    (sent,) = seen
    assert sent.url == httpx.URL(recorded["request"]["url"])
    # stream=false is the default, so it is not sent, and the URL names the model
    want = {k: v for k, v in recorded["request"]["body"].items() if k not in ("stream", "model")}
    assert json.loads(sent.content) == want
    assert response.request_id == "1d93fae1-cb8e-4789-8fb6-d26577a3cb77"
    check_chat(response, EXPECTED["azure_openai/chat_basic.json"])


# -- content filter ------------------------------------------------------------------------

FILTER_400: dict[str, Any] = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
        "content management policy. Please modify your prompt and retry. To learn more about "
        "our content filtering policies please read our documentation: "
        "https://go.microsoft.com/fwlink/?linkid=2198766",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": False, "severity": "safe"},
                "jailbreak": {"filtered": False, "detected": False},
                "self_harm": {"filtered": False, "severity": "safe"},
                "sexual": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": True, "severity": "medium"},
            },
        },
    }
}


async def test_content_filter_400_is_a_content_policy_violation() -> None:
    response = httpx.Response(400, headers={"apim-request-id": "filter-req-1"}, json=FILTER_400)
    error = AZURE.parse_error(chat(), response)
    assert type(error) is errors.ContentPolicyViolationError
    assert isinstance(error, errors.BadRequestError)
    assert error.code == "content_filter"
    assert error.request_id == "filter-req-1"
    assert error.retryable is False
    assert "content management policy" in error.message


async def test_inner_policy_code_alone_still_names_the_filter() -> None:
    inner: dict[str, Any] = FILTER_400["error"]
    body = {"error": {"message": "filtered", "code": "400", "innererror": inner["innererror"]}}
    error = AZURE.parse_error(chat(), httpx.Response(400, json=body))
    assert type(error) is errors.ContentPolicyViolationError


async def test_content_filter_400_end_to_end_before_any_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=FILTER_400)

    async with pipeline_for(AZURE, handler) as pipe:
        with pytest.raises(UpstreamStatusError) as raised:
            await pipe.acompletion("azure/gpt-4o", HI, stream=True)
    assert type(raised.value.unified()) is errors.ContentPolicyViolationError


async def test_filtered_completion_keeps_finish_reason_content_filter() -> None:
    reply = httpx.Response(
        200,
        json={
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "content_filter",
                    "message": {"role": "assistant", "content": None},
                    "content_filter_results": {"violence": {"filtered": True, "severity": "high"}},
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5},
        },
    )
    result = AZURE.parse(chat(), reply)
    assert isinstance(result, ChatResponse)
    assert result.choices[0].finish_reason == "content_filter"
    assert result.choices[0].message.content is None


# -- addressing: endpoint, deployment, version -----------------------------------------------


async def test_url_is_the_deployment_path_with_the_api_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/openai/")
    paths: dict[Endpoint, str] = {
        "chat": "chat/completions",
        "embedding": "embeddings",
        "image": "images/generations",
        "speech": "audio/speech",
    }
    endpoint: Endpoint
    for endpoint, path in paths.items():
        request = Request(
            endpoint=endpoint,
            provider="azure",
            model="my-dep",
            messages=HI,
            input="x",
        )
        sent = AZURE.build(request)
        assert str(sent.url) == (
            f"https://res.openai.azure.com/openai/deployments/my-dep/{path}"
            f"?api-version={DEFAULT_API_VERSION}"
        )
        assert "model" not in json.loads(sent.content)


async def test_transcription_goes_to_the_deployment_without_a_model_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    request = Request(endpoint="transcription", provider="azure", model="whisper", input=b"RIFF")
    sent = AZURE.build(request)
    body = sent.read()
    assert sent.url.path == "/openai/deployments/whisper/audio/transcriptions"
    assert b'name="file"' in body and b'name="model"' not in body


@pytest.mark.parametrize(
    ("env", "configured", "per_call", "expected"),
    [
        ({}, None, None, DEFAULT_API_VERSION),
        ({"AZURE_API_VERSION": "2024-06-01"}, None, None, "2024-06-01"),
        ({"AZURE_API_VERSION": "a", "OPENAI_API_VERSION": "b"}, None, None, "b"),
        ({"OPENAI_API_VERSION": "b"}, "c", None, "c"),
        ({"OPENAI_API_VERSION": "b"}, "c", "d", "d"),
    ],
)
async def test_api_version_precedence(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    configured: str | None,
    per_call: str | None,
    expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    adapter = AzureOpenAI(base_url="https://res.openai.azure.com", api_version=configured)
    sent = adapter.build(chat(api_version=per_call))
    assert sent.url.params["api-version"] == expected


async def test_endpoint_from_azure_api_base_and_per_call_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_API_BASE", "https://fallback.openai.azure.com")
    assert AZURE.build(chat()).url.host == "fallback.openai.azure.com"
    sent = AZURE.build(chat(api_base="https://percall.openai.azure.com"))
    assert sent.url.host == "percall.openai.azure.com"


async def test_missing_endpoint_is_an_invalid_request_before_any_io() -> None:
    async with pipeline_for(AZURE, never_called) as pipe:
        with pytest.raises(errors.InvalidRequestError, match="AZURE_OPENAI_ENDPOINT"):
            await pipe.acompletion("azure/gpt-4o", HI)


# -- credentials ---------------------------------------------------------------------------


async def test_api_key_from_the_fallback_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    monkeypatch.setenv("AZURE_API_KEY", "fallback-key")
    sent = AZURE.build(chat(api_base="https://r.openai.azure.com"))
    assert sent.headers["api-key"] == "fallback-key"


async def test_per_call_key_wins_over_the_environment() -> None:
    sent = AZURE.build(chat(api_base="https://r.openai.azure.com", api_key=Secret("per-call")))
    assert sent.headers["api-key"] == "per-call"


@pytest.mark.parametrize("token", ["entra-token-abc", Secret("entra-token-abc")])
async def test_entra_token_param_is_a_bearer_header_and_not_in_the_body(token: Any) -> None:
    request = chat(api_base="https://r.openai.azure.com", params={"azure_ad_token": token})
    sent = AZURE.build(request)
    assert sent.headers["authorization"] == "Bearer entra-token-abc"
    assert "api-key" not in sent.headers
    assert "azure_ad_token" not in json.loads(sent.content)


async def authorized(adapter: AzureOpenAI, request: Request) -> httpx.Request:
    built = adapter.build(request)
    assert "authorization" not in built.headers  # the token comes only when awaited
    await adapter.authorize(request, built)
    return built


async def test_token_provider_is_asked_for_each_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    tokens = iter(["t1", "t2"])
    adapter = AzureOpenAI(
        base_url="https://r.openai.azure.com", ad_token_provider=lambda: next(tokens)
    )
    assert (await authorized(adapter, chat())).headers["authorization"] == "Bearer t1"
    assert (await authorized(adapter, chat())).headers["authorization"] == "Bearer t2"
    assert "t1" not in repr(adapter) and "lambda" not in repr(adapter)


async def test_token_from_the_environment_when_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "env-token")
    sent = AZURE.build(chat(api_base="https://r.openai.azure.com"))
    assert sent.headers["authorization"] == "Bearer env-token"


async def test_no_credentials_fail_before_any_io_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com")
    async with pipeline_for(AZURE, never_called) as pipe:
        with pytest.raises(errors.AuthenticationError, match="AZURE_OPENAI_API_KEY"):
            await pipe.acompletion("azure/gpt-4o", HI)


async def test_configured_key_never_shows_in_repr() -> None:
    adapter = AzureOpenAI(api_key=Secret("configured-secret-key"))
    assert "configured-secret-key" not in repr(adapter)


# -- damaged bodies ------------------------------------------------------------------------


@pytest.mark.skipif(not RECORDED, reason="recorded fixtures not found")
@SETTINGS
@given(case=damaged_recordings(RECORDED))
async def test_damaged_recorded_bodies_parse_or_raise_provider_response_error(
    case: tuple[str, bytes],
) -> None:
    name, body = case
    survives(AZURE, azure_call(load_recorded(name)), body, "application/json")
