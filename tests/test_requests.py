"""Building a request: resolution, validation and typed errors, all before any I/O."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipeline import Pipeline, errors
from pipeline._resolve import AutoDetect, resolve_target
from providers import OpenAICompatible, ProviderRegistry, mock_provider

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]


class NeverCalled:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return httpx.Response(500)


def chat_only(name: str, handler: Any) -> OpenAICompatible:
    return mock_provider(name, handler, endpoints=frozenset({"chat"}))


@pytest.fixture
def transport() -> NeverCalled:
    return NeverCalled()


@pytest.fixture
def pipe(transport: NeverCalled) -> Pipeline:
    registry = ProviderRegistry(
        [
            mock_provider("mock", transport),
            chat_only("chatonly", transport),
            mock_provider("openai", transport, prefixes=("gpt-",), priority=10),
            mock_provider("router", transport, prefixes=("gpt-", "llama-")),
        ]
    )
    return Pipeline(
        registry=registry, http_client=httpx.AsyncClient(transport=httpx.MockTransport(transport))
    )


BAD_CHAT: list[tuple[str, Any, dict[str, Any]]] = [
    ("no messages", [], {}),
    ("messages not a list", "hi", {}),
    ("message not a dict", ["hi"], {}),
    ("message without role", [{"content": "hi"}], {}),
    ("unknown role", [{"role": "robot", "content": "hi"}], {}),
    ("role of wrong type", [{"role": ["user"], "content": "hi"}], {}),
    ("messages a tuple of non-dicts", (("user", "hi"),), {}),
    ("user without content", [{"role": "user"}], {}),
    ("content of wrong type", [{"role": "user", "content": 42}], {}),
    ("tool message without id", [{"role": "tool", "content": "x"}], {}),
    ("negative max_tokens", HI, {"max_tokens": -1}),
    ("zero max_tokens", HI, {"max_tokens": 0}),
    ("bool max_tokens", HI, {"max_tokens": True}),
    ("temperature out of range", HI, {"temperature": 7}),
    ("nan temperature", HI, {"temperature": float("nan")}),
    ("top_p over one", HI, {"top_p": 1.5}),
    ("n zero", HI, {"n": 0}),
    ("stop of wrong type", HI, {"stop": 3}),
    ("malformed tools", HI, {"tools": [{"type": "function"}]}),
    ("stream not a bool", HI, {"stream": "yes"}),
    ("negative timeout", HI, {"timeout": -1}),
    ("empty api key", HI, {"api_key": ""}),
]


@pytest.mark.parametrize(("case", "messages", "kwargs"), BAD_CHAT, ids=[c[0] for c in BAD_CHAT])
async def test_bad_chat_input_is_invalid_request_before_io(
    pipe: Pipeline, transport: NeverCalled, case: str, messages: Any, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(errors.InvalidRequestError):
        await pipe.acompletion("mock/m", messages, **kwargs)
    assert transport.calls == 0


@pytest.mark.parametrize("model", [None, 42, "", "   ", ["mock/m"]])
async def test_non_string_model_is_invalid_request(
    pipe: Pipeline, transport: NeverCalled, model: Any
) -> None:
    with pytest.raises(errors.InvalidRequestError, match="model"):
        await pipe.acompletion(model, HI)
    assert transport.calls == 0


async def test_provider_without_model_is_invalid(pipe: Pipeline) -> None:
    with pytest.raises(errors.InvalidRequestError):
        await pipe.acompletion("mock/", HI)


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("aembedding", ("mock/e", "")),
        ("aembedding", ("mock/e", [])),
        ("aembedding", ("mock/e", ["ok", 3])),
        ("aimage_generation", ("mock/i", "  ")),
        ("atranscription", ("mock/t", b"")),
        ("atranscription", ("mock/t", "not bytes")),
        ("aspeech", ("mock/s", None)),
    ],
)
async def test_bad_input_on_other_endpoints(
    pipe: Pipeline, transport: NeverCalled, call: str, args: tuple[Any, ...]
) -> None:
    with pytest.raises(errors.InvalidRequestError):
        await getattr(pipe, call)(*args)
    assert transport.calls == 0


async def test_unknown_provider_names_the_closest(pipe: Pipeline, transport: NeverCalled) -> None:
    with pytest.raises(errors.ProviderNotFoundError, match="closest known: openai") as info:
        await pipe.acompletion("opnai/gpt-4o", HI)
    assert "opnai" in str(info.value)
    with pytest.raises(errors.ProviderNotFoundError):
        await pipe.acompletion("m", HI, provider="nope")
    with pytest.raises(errors.ProviderNotFoundError):
        await pipe.acompletion("some-unknown-model", HI)
    assert transport.calls == 0


async def test_unsupported_endpoint_before_io(pipe: Pipeline, transport: NeverCalled) -> None:
    with pytest.raises(errors.UnsupportedEndpointError, match="embedding"):
        await pipe.aembedding("chatonly/e", "text")
    assert transport.calls == 0


async def test_resolution_rules() -> None:
    registry = ProviderRegistry(
        [
            mock_provider("openai", prefixes=("gpt-", "o1"), models=frozenset({"chatgpt"})),
            mock_provider("router", prefixes=("gpt-4o-mini-special", "meta-")),
            mock_provider("groq"),
        ]
    )
    assert resolve_target(registry, "openai/gpt-4o") == ("openai", "gpt-4o")
    assert resolve_target(registry, "gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert resolve_target(registry, "GPT-4o") == ("openai", "GPT-4o")
    assert resolve_target(registry, "chatgpt") == ("openai", "chatgpt")
    # The longest matching prefix wins.
    assert resolve_target(registry, "gpt-4o-mini-special-x") == ("router", "gpt-4o-mini-special-x")
    # provider= overrides, and strips its own prefix.
    assert resolve_target(registry, "gpt-4o", provider="groq") == ("groq", "gpt-4o")
    assert resolve_target(registry, "groq/llama", provider="groq") == ("groq", "llama")
    # Model names with slashes stay whole under a named provider.
    assert resolve_target(registry, "router/meta-llama/Llama-3") == ("router", "meta-llama/Llama-3")
    # A slash whose head is not a provider: the whole name is auto-detected.
    assert resolve_target(registry, "meta-llama/Llama-3") == ("router", "meta-llama/Llama-3")


async def test_priority_decides_contested_prefixes() -> None:
    table = AutoDetect()
    table.add("aggregator", prefixes=("claude-",), priority=0)
    table.add("anthropic", prefixes=("claude-",), priority=10)
    table.add("late", prefixes=("claude-",), priority=10)
    assert table.detect("claude-3-5-haiku") == "anthropic"
    table.remove("anthropic")
    assert table.detect("claude-3-5-haiku") is None


async def test_detection_cost_does_not_grow_with_providers() -> None:
    small = ProviderRegistry([mock_provider(f"p{i}", prefixes=(f"fam{i}-",)) for i in range(10)])
    large = ProviderRegistry([mock_provider(f"p{i}", prefixes=(f"fam{i}-",)) for i in range(1000)])
    # Prefix probes: one per distinct prefix length, not one per provider.
    assert len(large._detect._lengths) <= len("fam999-")
    assert large.detect("fam999-model") == "p999"
    assert small.detect("fam9-model") == "p9"
    assert large.detect("unknown-model") is None


async def test_request_holds_resolved_fields_and_hides_the_key(pipe: Pipeline) -> None:
    request = pipe.request(
        "chat",
        "gpt-4o",
        messages=HI,
        api_key="sk-secret-value-123456",
        params={"temperature": 0.2},
        cache=False,
    )
    assert (request.provider, request.model, request.endpoint) == ("openai", "gpt-4o", "chat")
    assert request.params == {"temperature": 0.2}
    assert request.options == {"cache": False}
    assert "sk-secret" not in repr(request)
    assert request.api_key is not None and request.api_key.reveal() == "sk-secret-value-123456"
    with pytest.raises(AttributeError):
        request.model = "other"  # type: ignore[misc]


async def test_credential_params_are_masked_in_the_repr(pipe: Pipeline) -> None:
    request = pipe.request(
        "chat",
        "mock/m",
        messages=HI,
        params={"extra_headers": {"authorization": "Bearer tok-123456"}, "azure_ad_token": "adt"},
    )
    shown = repr(request)
    assert "tok-123456" not in shown and "'adt'" not in shown
    assert "extra_headers" in shown
