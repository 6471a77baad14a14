"""The table of OpenAI-compatible providers, proven on Groq, Mistral and Ollama traffic.

The recordings in ``shared/fixtures/recorded/groq``, ``mistral`` and
``ollama/openai_compat_chat.json`` are rebuilt through their rows and their
replies parsed (Groq's ``x_groq`` usage and ``reasoning`` deltas, Mistral's
thinking parts, usage sent without ``stream_options``). The rest checks the
table itself: every row well formed, keys required before any I/O, headers
sent, placeholders filled, auto-detection, and the capability table.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from hypothesis import given

from pipeline import Pipeline, Request, Secret, UpstreamStatusError, errors
from pipeline.adapter import ENDPOINTS, Endpoint
from providers import ProviderRegistry, default_registry
from providers.__main__ import capability_table, main
from providers.compatible import COMPATIBLE, OWNER
from providers.openai import OPENAI
from providers.openai_compatible import CHAT, OpenAICompatible
from tests._decoding import accumulate as assemble
from tests.conftest import load_recorded, recorded_names
from tests.test_provider_openai import (
    SETTINGS,
    assert_same_request,
    call_from_recorded,
    check_chat,
    check_error,
    damaged_recordings,
    decode,
    never_called,
    parse_recorded,
    pipeline_for,
    replay,
    survives,
)

pytestmark = pytest.mark.anyio

ROWS = {row.name: row for row in COMPATIBLE}
RECORDED = [
    *recorded_names("groq"),
    *recorded_names("mistral"),
    *[n for n in recorded_names("ollama") if n.endswith("openai_compat_chat.json")],
]
ROW_FOR = {"groq": "groq", "mistral": "mistral", "ollama": "ollama_openai"}
LOCAL = (
    "lm_studio",
    "vllm",
    "llamacpp",
    "llamafile",
    "ollama_openai",
    "sglang",
    "docker_model_runner",
    "jan",
)
HI = [{"role": "user", "content": "hi"}]


def key_for(row: OpenAICompatible) -> str:
    return f"test-key-for-{row.name}-0123456789"


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for row in COMPATIBLE:
        for env in row.key_envs:
            monkeypatch.setenv(env, key_for(row))
        for env in row.base_url_envs:
            monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct123")


def row_of(name: str) -> OpenAICompatible:
    return ROWS[ROW_FOR[name.split("/")[0]]]


def auth_of(row: OpenAICompatible) -> dict[str, str]:
    return {"authorization": f"Bearer {key_for(row)}"} if row.key_envs else {}


# -- recordings ----------------------------------------------------------------------


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_request_is_rebuilt_exactly(name: str) -> None:
    recorded = load_recorded(name)
    row = row_of(name)
    sent = row.build(call_from_recorded(recorded, row.name))
    assert_same_request(sent, recorded, auth_of(row))
    if not row.key_envs:
        assert "authorization" not in sent.headers


EXPECTED: dict[str, dict[str, Any]] = {
    "groq/chat_basic.json": {
        "content": "The capital of France is Paris.",
        "usage": (48, 8, 56),
        "model": "llama-3.3-70b-versatile",
    },
    "groq/chat_stream_reasoning_tool_call.json": {
        "content": None,
        "finish": "tool_calls",
        "usage": (304, 49, 353),
        "reasoning_tokens": 23,
        "reasoning_prefix": 'We need to call the function with correct parameter "name".',
        "tool_calls": (
            (
                "fc_bfb39741-3748-4def-9886-a93fc9c64a90",
                "get_something_by_name",
                '{"name":"example"}',
            ),
        ),
    },
    "groq/error_400_tool_use_failed.json": {
        "error": errors.BadRequestError,
        "status": 400,
        "code": "tool_use_failed",
        "message_part": "Tool call validation failed",
    },
    "mistral/chat_basic.json": {
        "content_prefix": "Hello! \U0001f60a How can I assist you today?",
        "usage": (4, 36, 40),
    },
    "mistral/chat_stream_thinking.json": {
        "content_prefix": "To cross the street safely, follow these steps:",
        "usage": (10, 232, 242),
        "reasoning_prefix": "Okay, the user is asking how to cross the street.",
        "model": "magistral-medium-latest",
    },
    "ollama/openai_compat_chat.json": {
        "content": "4200 + 42 = 4242\n",
        "usage": (21, 16, 37),
        "model": "gemma3:4b",
    },
}


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_reply_is_parsed(name: str) -> None:
    recorded = load_recorded(name)
    row = row_of(name)
    result = parse_recorded(row, call_from_recorded(recorded, row.name), recorded)
    expected = EXPECTED[name]
    if "error" in expected:
        check_error(result, expected)
    else:
        check_chat(result, expected)


async def test_mistral_thinking_parts_never_leak_into_the_content() -> None:
    recorded = load_recorded("mistral/chat_stream_thinking.json")
    row = ROWS["mistral"]
    result = parse_recorded(row, call_from_recorded(recorded, "mistral"), recorded)
    message = result.choices[0].message
    assert message.content.endswith("you can ensure a safe crossing.")
    assert "thinking" not in message.content and "Okay, the user" not in message.content
    assert "Okay, the user" in message.reasoning_content


STREAMS = [n for n in RECORDED if "stream" in n]


@pytest.mark.parametrize("name", STREAMS)
async def test_stream_fed_one_byte_at_a_time_yields_the_same_chunks(name: str) -> None:
    recorded = load_recorded(name)
    row = row_of(name)
    request = call_from_recorded(recorded, row.name)
    raw = recorded["response"]["body"].encode()
    whole = [chunk.to_dict() for chunk in decode(row, request, raw)]
    assert [chunk.to_dict() for chunk in decode(row, request, raw, piece=1)] == whole


async def test_bare_magistral_name_streams_from_mistral_end_to_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded = load_recorded("mistral/chat_stream_thinking.json")
    seen: list[httpx.Request] = []
    registry = ProviderRegistry([OPENAI, *COMPATIBLE])
    client = httpx.AsyncClient(transport=httpx.MockTransport(replay(recorded, seen)))
    async with Pipeline(registry=registry, http_client=client) as pipe:
        stream = await pipe.acompletion(
            "magistral-medium-latest", recorded["request"]["body"]["messages"], stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert_same_request(seen[0], recorded, auth_of(ROWS["mistral"]))
    assert stream.provider == "mistral"
    check_chat(assemble(chunks), EXPECTED["mistral/chat_stream_thinking.json"])


async def test_groq_chat_end_to_end_and_its_error() -> None:
    recorded = load_recorded("groq/chat_basic.json")
    body = recorded["request"]["body"]
    seen: list[httpx.Request] = []
    async with pipeline_for(ROWS["groq"], replay(recorded, seen)) as pipe:
        response = await pipe.acompletion(
            "groq/llama-3.3-70b-versatile", body["messages"], n=1, extra_body={"stream": False}
        )
    assert_same_request(seen[0], recorded, auth_of(ROWS["groq"]))
    check_chat(response, EXPECTED["groq/chat_basic.json"])

    failed = load_recorded("groq/error_400_tool_use_failed.json")
    async with pipeline_for(ROWS["groq"], replay(failed, [])) as pipe:
        with pytest.raises(UpstreamStatusError) as raised:
            await pipe.acompletion(
                "groq/openai/gpt-oss-120b", failed["request"]["body"]["messages"]
            )
    check_error(raised.value.unified(), EXPECTED["groq/error_400_tool_use_failed.json"])


async def test_ollama_openai_chat_end_to_end_sends_no_key() -> None:
    recorded = load_recorded("ollama/openai_compat_chat.json")
    seen: list[httpx.Request] = []
    async with pipeline_for(ROWS["ollama_openai"], replay(recorded, seen)) as pipe:
        response = await pipe.acompletion(
            "ollama_openai/gemma3:4b", recorded["request"]["body"]["messages"]
        )
    assert_same_request(seen[0], recorded, {})
    assert "authorization" not in seen[0].headers
    check_chat(response, EXPECTED["ollama/openai_compat_chat.json"])


# -- the table ---------------------------------------------------------------------------

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
LOCAL_URL = re.compile(r"^http://localhost:\d+/")


async def test_the_table_has_forty_well_formed_rows_with_unique_names() -> None:
    assert len(COMPATIBLE) >= 40
    assert len(ROWS) == len(COMPATIBLE)
    for row in COMPATIBLE:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", row.name), row.name
        assert row.endpoints and row.endpoints <= set(ENDPOINTS), row.name
        assert all(ENV_NAME.match(env) for env in row.key_envs), row.name
        if row.name in LOCAL:
            assert LOCAL_URL.match(row.base_url), row.name
            assert not row.key_envs, row.name
        else:
            assert row.base_url.startswith("https://"), row.name
            assert row.key_envs, row.name
        assert not row.base_url.endswith("/"), row.name
        assert row.timeout is None or row.timeout > 0


async def test_default_registry_holds_every_row_and_at_least_47_providers() -> None:
    registry = default_registry(load_entry_points=False)
    assert len(registry) >= 47
    assert {"mock", "openai", "azure"} <= set(registry.names())
    for row in COMPATIBLE:
        assert registry.get(row.name) is row


def _call(row: OpenAICompatible, **fields: Any) -> Request:
    endpoint: Endpoint = "chat" if "chat" in row.endpoints else sorted(row.endpoints)[0]
    content: dict[str, Any] = {"messages": HI} if endpoint == "chat" else {"input": "hi"}
    return Request(endpoint=endpoint, provider=row.name, model="some-model", **content, **fields)


@pytest.mark.parametrize("name", [row.name for row in COMPATIBLE if row.key_envs])
async def test_missing_key_fails_before_any_io_naming_the_rows_variable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = ROWS[name]
    [env] = row.key_envs
    monkeypatch.delenv(env)
    request = _call(row)
    async with pipeline_for(row, never_called) as pipe:
        with pytest.raises(errors.AuthenticationError) as raised:
            await pipe.send(request)
    assert env in str(raised.value)
    assert raised.value.provider == name


@pytest.mark.parametrize("name", [row.name for row in COMPATIBLE])
async def test_each_row_sends_to_its_base_url_with_its_key_and_headers(name: str) -> None:
    row = ROWS[name]
    sent = row.build(_call(row))
    base = row.base_url.replace("{CLOUDFLARE_ACCOUNT_ID}", "acct123")
    path = "/chat/completions" if "chat" in row.endpoints else "/embeddings"
    assert str(sent.url) == base + path
    for header, value in {**row.headers, **auth_of(row)}.items():
        assert sent.headers[header] == value
    if not row.key_envs:
        assert "authorization" not in sent.headers
    assert json.loads(sent.content)["model"] == "some-model"


async def test_github_models_sends_its_api_version_headers() -> None:
    sent = ROWS["github_models"].build(_call(ROWS["github_models"]))
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert str(sent.url) == "https://models.github.ai/inference/chat/completions"


@pytest.mark.parametrize("name", LOCAL)
async def test_local_servers_take_a_base_and_an_optional_key_per_call(name: str) -> None:
    row = ROWS[name]
    sent = row.build(_call(row, api_base="http://gpu-box:9000/v1/", api_key=Secret("local-k")))
    assert str(sent.url) == "http://gpu-box:9000/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer local-k"


async def test_account_id_placeholder_is_filled_or_named_before_any_io(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    row = ROWS["cloudflare"]
    sent = row.build(_call(row))
    assert sent.url.path == "/client/v4/accounts/acct123/ai/v1/chat/completions"
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID")
    async with pipeline_for(row, never_called) as pipe:
        with pytest.raises(errors.InvalidRequestError, match="CLOUDFLARE_ACCOUNT_ID"):
            await pipe.acompletion("cloudflare/@cf/meta/llama-3.1-8b-instruct", HI)
    assert str(row.build(_call(row, api_base="https://gw.example/v1")).url).startswith(
        "https://gw.example/v1/"
    )


async def test_base_url_variable_relocates_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    row = ROWS["zhipu"]
    assert row.base_url_envs == ("ZHIPUAI_BASE_URL",)
    monkeypatch.setenv("ZHIPUAI_BASE_URL", "https://proxy.example/api/paas/v4/")
    assert str(row.build(_call(row)).url) == "https://proxy.example/api/paas/v4/chat/completions"


async def test_stream_options_are_asked_for_only_where_the_server_takes_them() -> None:
    def stream_body(row: OpenAICompatible) -> dict[str, Any]:
        return json.loads(row.build(_call(row, stream=True)).content)  # type: ignore[no-any-return]

    assert stream_body(ROWS["together"])["stream_options"] == {"include_usage": True}
    for name in ("groq", "mistral"):
        body = stream_body(ROWS[name])
        assert body["stream"] is True and "stream_options" not in body


async def test_capabilities_are_enforced_before_any_io() -> None:
    async with pipeline_for(ROWS["jina"], never_called) as pipe:
        with pytest.raises(errors.UnsupportedEndpointError):
            await pipe.acompletion("jina/jina-embeddings-v3", HI)
    async with pipeline_for(ROWS["cerebras"], never_called) as pipe:
        with pytest.raises(errors.UnsupportedEndpointError):
            await pipe.aembedding("cerebras/x", "hi")


# -- auto-detection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("deepseek-chat", "deepseek"),
        ("deepseek-reasoner", "deepseek"),
        ("grok-4", "xai"),
        ("mistral-large-latest", "mistral"),
        ("codestral-latest", "mistral"),
        ("magistral-medium-latest", "mistral"),
        ("sonar-pro", "perplexity"),
        ("kimi-k2-0905-preview", "moonshot"),
        ("qwen-max", "dashscope"),
        ("MiniMax-M2", "minimax"),
        ("jamba-large", "ai21"),
        ("solar-pro", "upstage"),
        ("jina-embeddings-v3", "jina"),
        ("@cf/meta/llama-3.1-8b-instruct", "cloudflare"),
        ("accounts/fireworks/models/llama-v3p1-8b-instruct", "fireworks"),
        ("gpt-4o-mini", "openai"),
        ("o3-mini", "openai"),
        ("text-embedding-3-small", "openai"),
    ],
)
async def test_bare_model_names_resolve_to_their_owner(model: str, provider: str) -> None:
    assert default_registry(load_entry_points=False).detect(model) == provider


async def test_hosts_of_other_peoples_models_claim_no_names() -> None:
    for name in ("groq", "together", "openrouter", "huggingface", "cerebras", *LOCAL):
        assert ROWS[name].prefixes == () and ROWS[name].models == frozenset()
    for row in COMPATIBLE:
        assert row.prefixes == () or row.priority == OWNER
        assert OPENAI.priority > OWNER


async def test_a_reseller_row_cannot_take_openais_family() -> None:
    reseller = OpenAICompatible(
        name="reseller", base_url="https://r.example/v1", key_envs=("R_KEY",), prefixes=("gpt-",)
    )
    registry = ProviderRegistry([reseller, OPENAI])
    assert registry.detect("gpt-4o") == "openai"


async def test_adding_a_provider_is_one_row() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://api.acme.example/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer acme-k"
        return httpx.Response(
            200,
            json={"choices": [{"message": {"role": "assistant", "content": "hello from acme"}}]},
        )

    acme = OpenAICompatible(
        name="acme",
        base_url="https://api.acme.example/v1",
        key_envs=("ACME_API_KEY",),
        endpoints=CHAT,
        prefixes=("acme-",),
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with Pipeline(registry=ProviderRegistry([*COMPATIBLE, acme]), http_client=client) as pipe:
        response = await pipe.acompletion("acme-1", HI, api_key="acme-k")
    assert (response.provider, response.choices[0].message.content) == ("acme", "hello from acme")


# -- the capability table ----------------------------------------------------------------


async def test_capability_table_is_markdown_one_row_per_provider() -> None:
    table = capability_table({"b": frozenset({"chat"}), "a": frozenset({"embedding", "speech"})})
    assert table.splitlines() == [
        "| provider | chat | embedding | image | transcription | speech |",
        "|---|:-:|:-:|:-:|:-:|:-:|",
        "| a |   | ✓ |   |   | ✓ |",
        "| b | ✓ |   |   |   |   |",
        "",
        "2 providers.",
    ]


async def test_python_m_providers_lists_every_builtin_provider() -> None:
    lines = main(["--builtin"]).splitlines()
    rows = {
        line.split(" | ")[0].removeprefix("| "): line for line in lines if line.startswith("| ")
    }
    registry = default_registry(load_entry_points=False)
    assert set(registry.names()) <= set(rows)
    assert rows["azure"].count("✓") == len(ENDPOINTS)
    assert rows["jina"].count("✓") == 1
    assert lines[-1] == f"{len(registry)} providers."


# -- damaged bodies ------------------------------------------------------------------------


@pytest.mark.skipif(not RECORDED, reason="recorded fixtures not found")
@SETTINGS
@given(case=damaged_recordings([n for n in RECORDED if "error" not in n]))
async def test_damaged_recorded_bodies_parse_or_raise_provider_response_error(
    case: tuple[str, bytes],
) -> None:
    name, body = case
    row = row_of(name)
    survives(row, call_from_recorded(load_recorded(name), row.name), body, "application/json")
