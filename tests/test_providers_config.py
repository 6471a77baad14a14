"""Every built-in adapter honours the settings it declares.

``HTTPAdapter`` gives every adapter the same settings (``key_envs``,
``base_url_envs``, ``roles``...). An adapter that declares one but reads a
module constant instead ignores what a user configured, silently: a key
variable of their own is never read, a relocated endpoint never used. So each
registered adapter is rebuilt with variables of the test's own naming, and the
request it builds must use them.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import pytest

from pipeline import Pipeline, Request, errors
from pipeline.adapter import Endpoint, HTTPAdapter
from providers import ProviderRegistry, default_registry
from providers.azure import TOKEN_ENV, AzureOpenAI

KEY_ENV = "DISPATCHLINE_TEST_OWN_KEY"
BASE_ENV = "DISPATCHLINE_TEST_OWN_BASE"
KEY = "own-key-0123456789abcdef"
BASE = "http://own-base.example:8123"
HI = [{"role": "user", "content": "hi"}]

ADAPTERS: list[HTTPAdapter] = [
    adapter for adapter in default_registry().adapters.values() if isinstance(adapter, HTTPAdapter)
]


@pytest.fixture(autouse=True)
def _only_the_test_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapters' own variables unset, the test's set."""
    names = {TOKEN_ENV, "AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE"}
    for adapter in ADAPTERS:
        names.update(adapter.key_envs, adapter.base_url_envs)
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(BASE_ENV, BASE)


def request_for(adapter: HTTPAdapter, **fields: Any) -> Request:
    endpoint: Endpoint = "chat" if "chat" in adapter.endpoints else "embedding"
    return Request(
        endpoint=endpoint, provider=adapter.name, model="m", messages=HI, input="hi", **fields
    )


def test_every_built_in_adapter_is_checked() -> None:
    names = {adapter.name for adapter in ADAPTERS}
    assert {"openai", "azure", "anthropic", "gemini", "cohere", "ollama", "mock"} <= names


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_the_key_comes_from_the_configured_key_envs(adapter: HTTPAdapter) -> None:
    own = attrs.evolve(adapter, key_envs=(KEY_ENV,))
    sent = own.build(request_for(own, api_base=BASE))
    assert any(KEY in value for value in sent.headers.values()), dict(sent.headers)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_no_key_names_the_configured_key_envs(
    adapter: HTTPAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    own = attrs.evolve(adapter, key_envs=(KEY_ENV,))
    if not own.key_required:
        return  # a keyless server (Ollama without its cloud): nothing to name
    with pytest.raises(errors.AuthenticationError, match=KEY_ENV):
        own.build(request_for(own, api_base=BASE))


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_the_server_comes_from_the_configured_base_url_envs(adapter: HTTPAdapter) -> None:
    own = attrs.evolve(adapter, base_url_envs=(BASE_ENV,), key_envs=(KEY_ENV,))
    sent = own.build(request_for(own))
    assert str(sent.url).startswith(BASE + "/"), str(sent.url)


# -- Azure end to end --------------------------------------------------------------------


@pytest.mark.anyio
async def test_azure_configured_variables_serve_a_call_end_to_end() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hello"},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    adapter = AzureOpenAI(key_envs=(KEY_ENV,), base_url_envs=(BASE_ENV,))
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with Pipeline(registry=ProviderRegistry([adapter]), http_client=client) as pipe:
        reply = await pipe.acompletion("azure/my-deployment", HI)
    assert reply.choices[0].message.content == "hello"
    (sent,) = seen
    assert sent.headers["api-key"] == KEY
    assert str(sent.url).startswith(f"{BASE}/openai/deployments/my-deployment/chat/completions")


def test_azure_keeps_configured_roles_below_the_developer_version() -> None:
    messages = [{"role": "developer", "content": "be brief"}, *HI]

    def roles(adapter: AzureOpenAI) -> list[str]:
        request = attrs.evolve(
            request_for(adapter, api_base=BASE, api_version="2024-10-21"), messages=messages
        )
        return [m["role"] for m in json.loads(adapter.build(request).content)["messages"]]

    assert roles(AzureOpenAI(key_envs=(KEY_ENV,))) == ["system", "user"]
    # A deployment whose model takes no system message (o1-mini did not):
    no_system = AzureOpenAI(key_envs=(KEY_ENV,), roles={"developer": "user", "system": "user"})
    assert roles(no_system) == ["user", "user"]
