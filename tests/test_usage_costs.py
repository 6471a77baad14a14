"""Costs: every reply's price is genai-prices' own figure for its usage; unknown is None."""

from __future__ import annotations

import socket
import sys
from typing import Any

import httpx
import pytest

from middlewares import Cache, Callbacks, Costs, ErrorMapping
from middlewares.usage import MissingExtraError, estimate_cost
from middlewares.usage import costs as costs_module
from pipeline import ChatResponse, Pipeline, errors
from providers import Script
from tests._usage import (
    HI,
    FakeDeployment,
    Replay,
    chat_reply,
    library_price,
    mock_pipeline,
    real_providers,
    recorded,
    route_to,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-anthropic")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def costed(handler: Any) -> Pipeline:
    return real_providers(handler, costs=Costs(), cache=False, logging=False)


async def test_recorded_openai_reply_costs_what_the_library_says() -> None:
    data = recorded("openai/chat_basic.json")
    async with costed(Replay(data)) as pipe:
        response = await pipe.acompletion("openai/gpt-4o", HI)
    assert response.usage is not None
    expected = library_price(
        data["response"]["body"]["model"],  # the dated model the provider named
        "openai",
        input_tokens=response.usage.prompt_tokens,
        output_tokens=response.usage.completion_tokens,
    )
    assert expected > 0
    assert response.cost == expected


async def test_cached_prompt_tokens_cost_what_the_library_says() -> None:
    details = {"cached_tokens": 12, "audio_tokens": 0}
    cached = recorded("openai/chat_basic.json", {"prompt_tokens_details": details})
    plain = recorded("openai/chat_basic.json")
    async with costed(Replay(cached)) as pipe:
        with_cache = await pipe.acompletion("openai/gpt-4o", HI)
    async with costed(Replay(plain)) as pipe:
        without = await pipe.acompletion("openai/gpt-4o", HI)
    model = cached["response"]["body"]["model"]
    usage = cached["response"]["body"]["usage"]
    expected = library_price(
        model,
        "openai",
        input_tokens=usage["prompt_tokens"],
        cache_read_tokens=12,
        output_tokens=usage["completion_tokens"],
    )
    assert with_cache.cost == expected
    assert without.cost is not None and with_cache.cost < without.cost


async def test_anthropic_cache_writes_and_reads_cost_what_the_library_says() -> None:
    data = recorded(
        "anthropic/messages_basic.json",
        {"cache_creation_input_tokens": 400, "cache_read_input_tokens": 300},
    )
    async with costed(Replay(data)) as pipe:
        response = await pipe.acompletion("anthropic/claude-sonnet-4-0", HI)
    body = data["response"]["body"]
    expected = library_price(
        body["model"],
        "anthropic",
        input_tokens=body["usage"]["input_tokens"] + 400 + 300,
        cache_write_tokens=400,
        cache_read_tokens=300,
        output_tokens=body["usage"]["output_tokens"],
    )
    assert response.usage is not None and response.usage.cache_write_tokens == 400
    assert response.cost == expected
    fresh = library_price(
        body["model"],
        "anthropic",
        input_tokens=17 + 700,
        output_tokens=body["usage"]["output_tokens"],
    )
    assert response.cost != fresh  # writes cost more and reads less than fresh input


async def test_reasoning_tokens_are_priced_as_the_library_prices_them() -> None:
    reply = chat_reply("o3-mini", prompt=100, completion=500, reasoning=400)
    async with mock_pipeline([Costs()], Script(reply)) as pipe:
        response = await pipe.acompletion("openai/o3-mini", HI)
    assert response.cost == library_price(
        "o3-mini", "openai", input_tokens=100, output_tokens=500, output_reasoning_tokens=400
    )


async def test_stream_cost_is_known_when_it_ends_and_reaches_callbacks() -> None:
    data = recorded("openai/chat_stream_text_include_usage.json")
    successes: list[ChatResponse] = []
    client = httpx.AsyncClient(transport=httpx.MockTransport(Replay(data)))
    from providers import default_registry

    pipe = Pipeline(
        [Callbacks(on_success=lambda request, response: successes.append(response)), Costs()],
        registry=default_registry(load_entry_points=False),
        http_client=client,
    )
    async with pipe:
        stream = await pipe.acompletion("openai/gpt-4o", HI, stream=True)
        assert stream.cost is None
        usage = None
        async for chunk in stream:
            usage = chunk.usage or usage
    assert usage is not None
    expected = library_price(
        "gpt-4o-2024-08-06",
        "openai",
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
    )
    assert stream.cost == expected
    assert [response.cost for response in successes] == [expected]


async def test_embeddings_are_priced_by_their_prompt_tokens() -> None:
    data = recorded("openai/embeddings_float.json")
    async with costed(Replay(data)) as pipe:
        response = await pipe.aembedding("openai/" + data["request"]["body"]["model"], "hello")
    assert response.usage is not None
    expected = library_price(
        data["request"]["body"]["model"], "openai", input_tokens=response.usage.prompt_tokens
    )
    assert response.cost == expected


async def test_speech_is_priced_by_characters_and_transcription_by_seconds() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/audio/speech"):
            return httpx.Response(200, headers={"content-type": "audio/mpeg"}, content=b"ID3")
        return httpx.Response(200, json={"text": "hello", "duration": 42.5})

    async with mock_pipeline([Costs()], handler) as pipe:
        speech = await pipe.aspeech("openai/tts-1", "Say this aloud.")
        heard = await pipe.atranscription("openai/whisper-1", ("a.mp3", b"ID3"))
    assert speech.cost == library_price("tts-1", "openai", input_characters=len("Say this aloud."))
    assert heard.cost == library_price("whisper-1", "openai", audio_seconds=42.5)


async def test_unknown_model_provider_or_unit_costs_none_never_an_error() -> None:
    async with mock_pipeline([Costs()], names=("openai", "mock")) as pipe:
        unknown_model = await pipe.acompletion("openai/no-such-model-anywhere", HI)
        again = await pipe.acompletion("openai/no-such-model-anywhere", HI)
        unknown_provider = await pipe.acompletion("mock/echo", HI)
        image = await pipe.aimage_generation("openai/dall-e-3", "a cat")
    assert unknown_model.cost is None and again.cost is None
    assert unknown_provider.cost is None
    assert image.cost is None


async def test_reply_without_usage_costs_none() -> None:
    reply = chat_reply()
    body = reply.json()
    del body["usage"]
    async with mock_pipeline([Costs()], Script(httpx.Response(200, json=body))) as pipe:
        response = await pipe.acompletion("openai/gpt-4o-mini", HI)
    assert response.cost is None


async def test_a_deployment_price_overrides_the_library() -> None:
    deployment = FakeDeployment("east", input_cost_per_token=1e-6, output_cost_per_token=3e-6)
    reply = chat_reply("my-azure-name", prompt=1000, completion=200)
    async with mock_pipeline([route_to(deployment), Costs()], Script(reply)) as pipe:
        response = await pipe.acompletion("openai/my-azure-name", HI)
    assert response.cost == pytest.approx(1000 * 1e-6 + 200 * 3e-6)


async def test_a_call_price_in_metadata_wins_over_the_deployment_and_library() -> None:
    deployment = FakeDeployment("east", input_cost_per_token=1.0, output_cost_per_token=1.0)
    reply = chat_reply("gpt-4o-mini", prompt=10, completion=4)
    price = {"input_cost_per_token": 2e-6, "output_cost_per_token": 5e-6}
    async with mock_pipeline([route_to(deployment), Costs()], Script(reply)) as pipe:
        response = await pipe.acompletion("openai/gpt-4o-mini", HI, metadata=price)
    assert response.cost == pytest.approx(10 * 2e-6 + 4 * 5e-6)


@pytest.mark.parametrize("bad", [-1e-6, "cheap", float("nan"), True])
async def test_a_malformed_call_price_is_refused_before_io(bad: object) -> None:
    script = Script(chat_reply())
    async with mock_pipeline([Costs()], script) as pipe:
        with pytest.raises(errors.InvalidRequestError, match="input_cost_per_token"):
            await pipe.acompletion("openai/gpt-4o-mini", HI, metadata={"input_cost_per_token": bad})
    assert script.requests == []


async def test_a_cache_hit_costs_nothing() -> None:
    async with mock_pipeline([Cache(sampled=True), Costs()]) as pipe:
        first = await pipe.acompletion("openai/gpt-4o-mini", HI)
        hit = await pipe.acompletion("openai/gpt-4o-mini", HI)
    assert first.cost is not None and first.cost > 0
    assert hit.cache_hit and hit.cost == 0.0


async def test_pricing_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no connection may be opened")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    async with mock_pipeline([Costs(), ErrorMapping()]) as pipe:
        response = await pipe.acompletion("openai/gpt-4o-mini", HI)
    assert response.cost is not None


async def test_estimate_cost_is_the_librarys_figure() -> None:
    assert estimate_cost("openai", "gpt-4o-mini", 1000, 500) == library_price(
        "gpt-4o-mini", "openai", input_tokens=1000, output_tokens=500
    )
    assert estimate_cost("openai", "no-such-model", 1000, 500) is None
    assert estimate_cost("mock", "echo", 1000, 500) is None


async def test_without_genai_prices_costs_names_the_extra_and_estimates_are_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)
    monkeypatch.setattr(costs_module, "_shared", None)
    with pytest.raises(MissingExtraError, match=r"dispatchline\[prices\]"):
        Costs()
    assert estimate_cost("openai", "gpt-4o-mini", 1000, 500) is None
