"""OpenAI parameters are translated, renamed, refused or dropped: never forwarded blindly.

Each provider's handling was checked against its API reference: Anthropic's
Messages API (structured outputs under ``output_config.format``), Gemini's
``generateContent`` (``mediaResolution``), Mistral's chat completions
(``random_seed``), Groq's and Cerebras' OpenAI-compatibility pages, Azure's
API versions (the developer role), Cohere's v2 chat. The bodies below are compared field
by field with the shapes those references document, and every parameter a
provider refuses is refused before any I/O, or dropped and logged with
``drop_params=True``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from pipeline import Pipeline, Request, errors
from pipeline.adapter import OPENAI_CHAT_PARAMS, Adapter, ParamPolicy
from providers import ProviderRegistry, default_registry
from providers.__main__ import chat_policy, params_table
from providers.anthropic import ANTHROPIC
from providers.azure import AzureOpenAI
from providers.cohere import COHERE
from providers.compatible import COMPATIBLE
from providers.gemini import GEMINI
from providers.ollama import OLLAMA
from providers.openai import OPENAI

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"
ROWS = {row.name: row for row in COMPATIBLE}
# The compatible rows whose chat policy was checked against the provider's reference.
CHECKED_ROWS = {
    name: row
    for name, row in ROWS.items()
    if (policy := chat_policy(row)) is not None and not policy.speaks_openai
}
MISTRAL, GROQ, TOGETHER = ROWS["mistral"], ROWS["groq"], ROWS["together"]
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "CO_API_KEY"):
        monkeypatch.setenv(name, "test-key-0123456789")
    for name in ("MISTRAL_API_KEY", "GROQ_API_KEY", "TOGETHER_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(name, "test-key-0123456789")
    for row in CHECKED_ROWS.values():
        for env in row.key_envs or ():
            monkeypatch.setenv(env, "test-key-0123456789")


def chat(
    provider: str, messages: Any = None, *, stream: bool = False, drop: bool = False, **params: Any
) -> Request:
    return Request(
        endpoint="chat",
        provider=provider,
        model="m",
        messages=messages if messages is not None else HI,
        params=params,
        stream=stream,
        options={"drop_params": True} if drop else {},
    )


def body(adapter: Adapter, request: Request) -> dict[str, Any]:
    built: dict[str, Any] = json.loads(adapter.build(request).content)
    return built


# -- the README's table is the code's -----------------------------------------------


def test_readme_parameter_table_matches_the_policies() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- params:start -->") + len("<!-- params:start -->")
    end = text.index("<!-- params:end -->")
    expected = params_table(default_registry(load_entry_points=False).adapters)
    assert text[start:end].strip() == expected.strip(), "run: python -m providers params --builtin"


# -- every refused parameter, for every provider that refuses it ------------------------

# A value OpenAI accepts for each parameter (for a fixed one, a value other than the fixed).
SAMPLES: dict[str, Any] = {
    "audio": {"voice": "alloy", "format": "wav"},
    "frequency_penalty": 0.5,
    "function_call": "auto",
    "functions": [{"name": "f", "parameters": {"type": "object"}}],
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "max_completion_tokens": 10,
    "max_tokens": 10,
    "modalities": ["text", "audio"],
    "moderation": {"model": "omni-moderation-latest"},
    "n": 2,
    "parallel_tool_calls": False,
    "prediction": {"type": "content", "content": "x"},
    "presence_penalty": 0.5,
    "prompt_cache_key": "k",
    "prompt_cache_options": {"mode": "implicit"},
    "prompt_cache_retention": "24h",
    "reasoning_effort": "low",
    "response_format": {"type": "json_object"},
    "safety_identifier": "u-1",
    "seed": 7,
    "service_tier": "flex",
    "stop": "END",
    "store": True,
    "stream_options": {"include_usage": True},
    "temperature": 0.5,
    "tool_choice": "none",
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "top_logprobs": 2,
    "top_p": 0.5,
    "user": "u-1",
    "verbosity": "low",
    "web_search_options": {},
}
POLICED: dict[str, Adapter] = {
    "anthropic": ANTHROPIC,
    "gemini": GEMINI,
    "ollama": OLLAMA,
    "cohere": COHERE,
    **CHECKED_ROWS,
}


def refused_cases() -> list[tuple[str, str]]:
    cases = []
    for name, adapter in POLICED.items():
        policy = chat_policy(adapter)
        assert policy is not None
        for param in sorted(OPENAI_CHAT_PARAMS):
            found = policy.handling(param)
            assert found is not None, (name, param)  # every OpenAI parameter is declared
            if found[0] in ("refuse", "fixed", "only") and SAMPLES[param] != found[1]:
                cases.append((name, param))
    return cases


REFUSED = refused_cases()


def test_samples_cover_every_openai_parameter() -> None:
    assert set(SAMPLES) == OPENAI_CHAT_PARAMS
    assert len(REFUSED) > 40


@pytest.mark.parametrize(("name", "param"), REFUSED)
async def test_a_parameter_the_provider_cannot_honour_is_refused_before_io(
    name: str, param: str
) -> None:
    adapter = POLICED[name]
    with pytest.raises(errors.InvalidRequestError) as caught:
        adapter.build(chat(name, **{param: SAMPLES[param]}))
    assert param in caught.value.message
    assert caught.value.provider == name
    assert "drop_params=True" in caught.value.message


@pytest.mark.parametrize(("name", "param"), REFUSED)
async def test_drop_params_drops_the_refused_parameter_and_logs_it(name: str, param: str) -> None:
    adapter = POLICED[name]
    with capture_logs() as logs:
        sent = body(adapter, chat(name, drop=True, **{param: SAMPLES[param]}))
    assert param not in sent
    [event] = [e for e in logs if e["event"] == "params_dropped"]
    assert event["params"] == [param]
    assert event["provider"] == name


async def test_none_means_not_given_and_is_never_refused() -> None:
    sent = body(ANTHROPIC, chat("anthropic", seed=None, logit_bias=None, n=None))
    assert "seed" not in sent and "logit_bias" not in sent and "n" not in sent


async def test_provider_native_parameters_pass_through() -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    sent = body(ANTHROPIC, chat("anthropic", top_k=5, thinking=thinking))
    assert (sent["top_k"], sent["thinking"]) == (5, thinking)
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert body(GEMINI, chat("gemini", safetySettings=safety))["safetySettings"] == safety
    docs = [{"data": {"text": "x"}}]
    assert body(COHERE, chat("cohere", documents=docs))["documents"] == docs
    assert body(OLLAMA, chat("ollama", num_ctx=4096))["options"] == {"num_ctx": 4096}
    assert body(MISTRAL, chat("mistral", safe_prompt=True))["safe_prompt"] is True


# -- drop_params through a pipeline: per call, per pipeline, default stack ------------------


def recording(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        return httpx.Response(200, json=reply)

    return httpx.MockTransport(handler)


async def test_refusal_happens_before_any_request_is_sent() -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=recording(seen)) as client:
        pipe = Pipeline(registry=ProviderRegistry([ANTHROPIC]), http_client=client)
        with pytest.raises(errors.InvalidRequestError, match="seed"):
            await pipe.acompletion("anthropic/claude-x", HI, seed=7)
    assert seen == []


@pytest.mark.parametrize("where", ["call", "pipeline", "default"])
async def test_drop_params_per_call_per_pipeline_and_on_the_default_stack(where: str) -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=recording(seen)) as client:
        registry = ProviderRegistry([ANTHROPIC])
        if where == "default":
            pipe = Pipeline.default(registry=registry, http_client=client, drop_params=True)
        else:
            pipe = Pipeline(registry=registry, http_client=client, drop_params=where == "pipeline")
        extra: dict[str, Any] = {"drop_params": True} if where == "call" else {}
        with capture_logs() as logs:
            response = await pipe.acompletion(
                "anthropic/claude-x", HI, seed=7, logit_bias={"1": 2}, temperature=0.2, **extra
            )
    assert response.choices[0].message.content == "ok"
    [request] = seen
    sent = json.loads(request.content)
    assert "seed" not in sent and "logit_bias" not in sent
    assert sent["temperature"] == 0.2
    [event] = [e for e in logs if e["event"] == "params_dropped"]
    assert event["params"] == ["seed", "logit_bias"]


async def test_a_call_can_refuse_what_its_pipeline_drops() -> None:
    pipe = Pipeline(registry=ProviderRegistry([ANTHROPIC]), drop_params=True)
    request = pipe.request("chat", "anthropic/claude-x", messages=HI, drop_params=False)
    assert "drop_params" not in request.options
    refusing = pipe.request(
        "chat", "anthropic/m", messages=HI, params={"seed": 1}, drop_params=False
    )
    with pytest.raises(errors.InvalidRequestError):
        ANTHROPIC.build(refusing)
    dropping = pipe.request("chat", "anthropic/m", messages=HI, params={"seed": 1})
    assert "seed" not in body(ANTHROPIC, dropping)


# -- Anthropic ----------------------------------------------------------------------


async def test_anthropic_json_schema_becomes_structured_output() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    sent = body(ANTHROPIC, chat("anthropic", response_format=fmt))
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "response_format" not in sent
    native = chat("anthropic", response_format=fmt, output_config={"effort": "low"})
    assert body(ANTHROPIC, native)["output_config"] == {
        "effort": "low",
        "format": {"type": "json_schema", "schema": schema},
    }
    clash = chat("anthropic", response_format=fmt, output_config={"format": {}})
    with pytest.raises(errors.InvalidRequestError, match="not both"):
        ANTHROPIC.build(clash)
    assert "output_config" not in body(
        ANTHROPIC, chat("anthropic", response_format={"type": "text"})
    )


async def test_anthropic_json_object_is_a_forced_tool() -> None:
    sent = body(ANTHROPIC, chat("anthropic", response_format={"type": "json_object"}))
    assert sent["tools"] == [
        {
            "name": "json_object",
            "description": "Reply with the JSON object that answers the request.",
            "input_schema": {"type": "object"},
        }
    ]
    assert sent["tool_choice"] == {"type": "tool", "name": "json_object"}
    tools = [{"type": "function", "function": {"name": "f"}}]
    with pytest.raises(errors.InvalidRequestError, match="tools"):
        ANTHROPIC.build(chat("anthropic", response_format={"type": "json_object"}, tools=tools))
    thinking = {"type": "enabled", "budget_tokens": 1024}
    with pytest.raises(errors.InvalidRequestError, match="thinking"):
        ANTHROPIC.build(
            chat("anthropic", response_format={"type": "json_object"}, thinking=thinking)
        )


JSON_REPLY = {
    "id": "msg_j",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "tool_use", "id": "toolu_1", "name": "json_object", "input": {"a": 1}}],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 3, "output_tokens": 4},
}


async def test_anthropic_json_object_reply_is_the_message_content() -> None:
    request = chat("anthropic", response_format={"type": "json_object"})
    parsed = ANTHROPIC.parse(request, httpx.Response(200, json=JSON_REPLY))
    assert parsed.to_dict()["choices"][0]["message"]["content"] == '{"a": 1}'
    assert parsed.to_dict()["choices"][0]["finish_reason"] == "stop"
    assert parsed.to_dict()["choices"][0]["message"].get("tool_calls") is None
    plain = ANTHROPIC.parse(chat("anthropic"), httpx.Response(200, json=JSON_REPLY))
    assert plain.to_dict()["choices"][0]["finish_reason"] == "tool_calls"  # not asked: a call


async def test_anthropic_json_object_stream_is_content_deltas() -> None:
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "m", "model": "c"}}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "t", "name": "json_object"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"a": '},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "1}"},
            },
        ),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    raw = "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events).encode()
    request = chat("anthropic", stream=True, response_format={"type": "json_object"})
    decoder = ANTHROPIC.stream_decoder(request)
    chunks = decoder.feed(raw) + decoder.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"a": 1}
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)


async def test_anthropic_empty_text_blocks_are_handled_deliberately() -> None:
    messages = [
        {"role": "system", "content": "  "},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "again"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f"}}],
        },
        {"role": "tool", "tool_call_id": "t1", "content": ""},
    ]
    sent = body(ANTHROPIC, chat("anthropic", messages))
    assert "system" not in sent
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "user", "content": "again"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ]
    with pytest.raises(errors.InvalidRequestError, match=r"messages\[1\] \(user\) has no content"):
        ANTHROPIC.build(chat("anthropic", [HI[0], {"role": "user", "content": " "}]))


async def test_anthropic_end_user_ids() -> None:
    assert body(ANTHROPIC, chat("anthropic", user="u"))["metadata"] == {"user_id": "u"}
    both = chat("anthropic", user="u", safety_identifier="s")
    assert body(ANTHROPIC, both)["metadata"] == {"user_id": "s"}
    sent = body(ANTHROPIC, chat("anthropic", store=True, stream_options={"include_usage": True}))
    assert "store" not in sent and "stream_options" not in sent


# -- Gemini ---------------------------------------------------------------------------


def image(detail: str | None) -> dict[str, Any]:
    url: dict[str, Any] = {"url": "https://example.com/cat.png"}
    if detail is not None:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (["low"], "MEDIA_RESOLUTION_LOW"),
        (["high"], "MEDIA_RESOLUTION_HIGH"),
        (["low", "high"], "MEDIA_RESOLUTION_HIGH"),  # the highest asked wins
        (["auto"], None),
        ([None], None),
    ],
)
async def test_gemini_image_detail_becomes_media_resolution(
    details: list[str | None], expected: str | None
) -> None:
    content = [{"type": "text", "text": "look"}, *(image(d) for d in details)]
    sent = body(GEMINI, chat("gemini", [{"role": "user", "content": content}]))
    assert sent.get("generationConfig", {}).get("mediaResolution") == expected
    assert all("detail" not in json.dumps(part) for part in sent["contents"][0]["parts"])


async def test_gemini_media_resolution_given_by_the_caller_wins() -> None:
    own = {"mediaResolution": "MEDIA_RESOLUTION_MEDIUM"}
    request = chat("gemini", [{"role": "user", "content": [image("high")]}], generationConfig=own)
    assert body(GEMINI, request)["generationConfig"] == own
    with pytest.raises(errors.InvalidRequestError, match="detail"):
        GEMINI.build(chat("gemini", [{"role": "user", "content": [image("ultra")]}]))


async def test_gemini_has_no_top_level_user() -> None:
    sent = body(GEMINI, chat("gemini", user="u", temperature=0.3, seed=3))
    assert "user" not in sent
    assert sent["generationConfig"] == {"temperature": 0.3, "seed": 3}


# -- Mistral, Groq and the other rows -----------------------------------------------------


async def test_mistral_renames_and_drops_what_it_lacks() -> None:
    messages = [{"role": "developer", "content": "Be terse."}, *HI]
    request = chat(
        "mistral",
        messages,
        stream=True,
        seed=7,
        max_completion_tokens=50,
        user="u",
        stream_options={"include_usage": True},
        temperature=0.1,
    )
    assert body(MISTRAL, request) == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be terse."}, *HI],
        "random_seed": 7,
        "max_tokens": 50,
        "temperature": 0.1,
        "stream": True,
    }


async def test_mistral_max_tokens_and_max_completion_tokens_must_agree() -> None:
    assert body(MISTRAL, chat("mistral", max_tokens=5, max_completion_tokens=5))["max_tokens"] == 5
    with pytest.raises(errors.InvalidRequestError, match="disagree"):
        MISTRAL.build(chat("mistral", max_tokens=5, max_completion_tokens=6))


async def test_groq_takes_n_of_one_only() -> None:
    assert body(GROQ, chat("groq", n=1))["n"] == 1
    with pytest.raises(errors.InvalidRequestError, match="n=2"):
        GROQ.build(chat("groq", n=2))


ROW_REFUSALS = [(name, param) for name, param in REFUSED if name in CHECKED_ROWS]


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a refused call reached the network: {request.url}")


def chat_reply(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        choice = {"index": 0, "message": {"role": "assistant", "content": "ok"}}
        reply = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m"}
        return httpx.Response(200, json={**reply, "choices": [{**choice, "finish_reason": "stop"}]})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(("name", "param"), ROW_REFUSALS)
async def test_a_checked_row_refuses_through_the_pipeline_before_any_io(
    name: str, param: str
) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(never_called)) as client:
        pipe = Pipeline(registry=ProviderRegistry([ROWS[name]]), http_client=client)
        with pytest.raises(errors.InvalidRequestError) as caught:
            await pipe.acompletion(f"{name}/some-model", HI, **{param: SAMPLES[param]})
    assert param in caught.value.message and name in caught.value.message
    assert caught.value.provider == name


@pytest.mark.parametrize(("name", "param"), ROW_REFUSALS)
async def test_a_checked_row_sends_the_rest_without_what_drop_params_dropped(
    name: str, param: str
) -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=chat_reply(seen)) as client:
        pipe = Pipeline(registry=ProviderRegistry([ROWS[name]]), http_client=client)
        response = await pipe.acompletion(
            f"{name}/some-model", HI, temperature=0.2, drop_params=True, **{param: SAMPLES[param]}
        )
    assert response.choices[0].message.content == "ok"
    [request] = seen
    sent = json.loads(request.content)
    assert param not in sent
    assert (sent["model"], sent["temperature"]) == ("some-model", 0.2)


async def test_cerebras_refuses_the_penalties_even_at_zero_and_sends_the_rest() -> None:
    cerebras = ROWS["cerebras"]
    penalties: dict[str, Any] = {"frequency_penalty": 0.0, "presence_penalty": 0.0}
    for param, zero in penalties.items():  # a 400 whenever supplied
        with pytest.raises(errors.InvalidRequestError, match=param):
            cerebras.build(chat("cerebras", **{param: zero}))
    params: dict[str, Any] = {"seed": 7, "logprobs": True, "top_logprobs": 2, "n": 1}
    sent = body(cerebras, chat("cerebras", **params, parallel_tool_calls=False))
    assert sent == {"model": "m", "messages": HI, **params, "parallel_tool_calls": False}


async def test_openai_keeps_developer_and_every_parameter() -> None:
    messages = [{"role": "developer", "content": "Be terse."}, *HI]
    params: dict[str, Any] = {"seed": 7, "logprobs": True, "user": "u", "service_tier": "flex"}
    sent = body(OPENAI, chat("openai", messages, **params))
    assert sent == {"model": "m", "messages": messages, **params}


async def test_other_compatible_rows_send_developer_as_system() -> None:
    messages = [{"role": "developer", "content": "Be terse."}, *HI]
    sent = body(TOGETHER, chat("together", messages, seed=7))
    assert sent["messages"][0] == {"role": "system", "content": "Be terse."}
    assert sent["seed"] == 7


@pytest.mark.parametrize(
    ("version", "role"),
    [
        (None, "system"),  # the default, 2024-10-21
        ("2024-10-21", "system"),
        ("2024-08-01-preview", "system"),
        ("2024-12-01-preview", "developer"),
        ("2025-04-01-preview", "developer"),
        ("preview", "developer"),
    ],
)
async def test_azure_sends_developer_only_where_the_api_version_has_it(
    version: str | None, role: str
) -> None:
    adapter = AzureOpenAI(base_url="https://r.openai.azure.com")
    messages = [{"role": "developer", "content": "Be terse."}, *HI]
    request = Request(
        endpoint="chat", provider="azure", model="d", messages=messages, api_version=version
    )
    assert body(adapter, request)["messages"][0]["role"] == role


# -- Cohere -------------------------------------------------------------------------------


async def test_cohere_messages_always_carry_content_and_skip_empty_turns() -> None:
    messages = [
        {"role": "system", "content": None},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "hi"},
    ]
    sent = body(COHERE, chat("cohere", messages, top_p=0.9, seed=4, user="u"))
    assert sent["messages"] == [
        {"role": "system", "content": ""},
        {"role": "user", "content": ""},
        {"role": "user", "content": "hi"},
    ]
    assert (sent["p"], sent["seed"]) == (0.9, 4)
    assert "user" not in sent and "top_p" not in sent


# -- the policy itself ---------------------------------------------------------------------


async def test_a_policy_rejects_a_parameter_declared_twice() -> None:
    with pytest.raises(ValueError, match="both"):
        ParamPolicy(send={"seed"}, drop={"seed"})
