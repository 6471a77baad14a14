"""The adapter shape: one public surface, one base, one error rule, hooks the terminal honours.

- every built-in adapter imports only ``pipeline.adapter`` from the core;
- the HTTP status decides the error class, a body code only narrows it
  (issue 8, item 1), for every adapter's error parser;
- method tables are looked up on the instance, so a subclass override is used;
- an entry point naming an adapter class is instantiated;
- Azure's token provider may be async (awaited) or blocking (run in a thread);
- ``aembedding(..., stream=True)`` never sends ``stream`` in the body;
- ``pipeline``'s public names are what users call; the rest moved, with a warning.
"""

from __future__ import annotations

import ast
import json
import textwrap
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import httpx
import pytest

import pipeline
from pipeline import Pipeline, Request, errors
from pipeline.adapter import Adapter, ChatResponse, class_for_status
from providers import ProviderRegistry, default_registry
from providers.anthropic import ANTHROPIC
from providers.azure import AzureOpenAI
from providers.cohere import COHERE
from providers.compatible import COMPATIBLE
from providers.gemini import GEMINI
from providers.mock import echo_handler, mock_provider
from providers.ollama import OLLAMA
from providers.openai import OPENAI
from providers.openai_compatible import OpenAICompatible
from tests._source import parse_source

pytestmark = pytest.mark.anyio

PROVIDERS = Path(__file__).resolve().parent.parent / "providers"
HI = [{"role": "user", "content": "hi"}]

# -- the public adapter surface -------------------------------------------------


def _core_imports(path: Path) -> set[str]:
    tree = parse_source(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "pipeline" or name.startswith("pipeline.")}


ADAPTER_MODULES = sorted(
    p for p in PROVIDERS.rglob("*.py") if p.name not in ("registry.py", "__main__.py")
)


@pytest.mark.parametrize("path", ADAPTER_MODULES, ids=lambda p: str(p.relative_to(PROVIDERS)))
def test_built_in_adapters_import_only_the_public_adapter_surface(path: Path) -> None:
    assert _core_imports(path) <= {"pipeline.adapter"}


@pytest.mark.parametrize("path", sorted(PROVIDERS.rglob("*.py")), ids=lambda p: p.name)
def test_provider_modules_stay_small(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400


async def test_pipeline_exports_what_users_call_and_warns_for_moved_names() -> None:
    assert {"Pipeline", "Request", "errors", "Stream", "ChatResponse", "acompletion"} <= set(
        pipeline.__all__
    )
    for internal in ("Dispatcher", "ProviderStream", "bind", "AutoDetect", "Registry"):
        assert internal not in pipeline.__all__
    with pytest.warns(DeprecationWarning, match="pipeline._dispatch"):
        moved = pipeline.Dispatcher
    from pipeline._dispatch import Dispatcher

    assert moved is Dispatcher
    with pytest.raises(AttributeError):
        pipeline.no_such_name  # noqa: B018


async def test_every_built_in_adapter_class_is_a_package_name() -> None:
    import providers

    registry = default_registry(load_entry_points=False)
    for name in registry.names():
        cls = type(registry[name])
        assert getattr(providers, cls.__name__) is cls
        assert cls.__name__ in dir(providers)


# -- the status decides the class ---------------------------------------------------

ADAPTERS: dict[str, Adapter] = {
    "openai": OPENAI,
    "azure": AzureOpenAI(base_url="https://r.openai.azure.com", api_key=pipeline.Secret("k")),
    "anthropic": ANTHROPIC,
    "gemini": GEMINI,
    "ollama": OLLAMA,
    "cohere": COHERE,
    **{row.name: row for row in COMPATIBLE if row.name in ("groq", "mistral")},
}
SERVER_ERROR_BODY = {
    "error": {"message": "The server had an error", "type": "server_error", "code": "server_error"}
}


def request_for(name: str) -> Request:
    return Request(endpoint="chat", provider=name, model="m", messages=HI)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, errors.AuthenticationError),
        (429, errors.RateLimitError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (503, errors.ServiceUnavailableError),
    ],
)
async def test_a_server_error_body_never_overrides_the_status(
    name: str, status: int, cls: type[errors.DispatchError]
) -> None:
    response = httpx.Response(status, json=SERVER_ERROR_BODY)
    error = ADAPTERS[name].parse_error(request_for(name), response)
    assert type(error) is cls
    assert error.status_code == status
    assert error.retryable is cls.default_retryable


@pytest.mark.parametrize(
    ("status", "named", "expected"),
    [
        (400, errors.ContextWindowExceededError, errors.ContextWindowExceededError),
        (413, errors.ContextWindowExceededError, errors.ContextWindowExceededError),
        (500, errors.ContextWindowExceededError, errors.InternalServerError),
        (500, errors.ServiceUnavailableError, errors.ServiceUnavailableError),
        (503, errors.InternalServerError, errors.ServiceUnavailableError),
        (401, errors.InternalServerError, errors.AuthenticationError),
        (429, errors.InternalServerError, errors.RateLimitError),
        (429, errors.AuthenticationError, errors.RateLimitError),
        (498, errors.AuthenticationError, errors.AuthenticationError),  # Cohere's token status
        (400, errors.AuthenticationError, errors.AuthenticationError),  # Gemini's bad key
        (404, None, errors.NotFoundError),
    ],
)
async def test_a_body_code_only_narrows_within_the_status_family(
    status: int, named: type[errors.DispatchError] | None, expected: type[errors.DispatchError]
) -> None:
    assert class_for_status(status, named) is expected


async def test_openai_body_codes_still_narrow_a_400() -> None:
    body = {"error": {"message": "too long", "code": "context_length_exceeded"}}
    error = OPENAI.parse_error(request_for("openai"), httpx.Response(400, json=body))
    assert type(error) is errors.ContextWindowExceededError
    body = {"error": {"message": "quota", "code": "insufficient_quota"}}
    error = OPENAI.parse_error(request_for("openai"), httpx.Response(429, json=body))
    assert type(error) is errors.RateLimitError
    assert error.retryable is False


# -- method tables on self -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Shouting(OpenAICompatible):
    """A subclass overriding one body and one parser: both are used."""

    def chat_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        body = super().chat_body(request, params)
        body["messages"] = [{**m, "content": str(m["content"]).upper()} for m in body["messages"]]
        return body

    def parse_chat(self, request: Request, response: httpx.Response) -> ChatResponse:
        parsed = super().parse_chat(request, response)
        parsed.choices[0].message.content = (parsed.choices[0].message.content or "") + "!"
        return parsed


async def test_a_subclass_override_of_a_body_or_parser_is_the_one_called() -> None:
    adapter = Shouting(
        name="shout",
        base_url="http://mock.invalid/v1",
        transport=httpx.MockTransport(echo_handler),
    )
    async with Pipeline(registry=ProviderRegistry([adapter])) as pipe:
        response = await pipe.acompletion("shout/m", HI)
    assert response.choices[0].message.content == "echo: HI!"


# -- entry points naming a class ----------------------------------------------------------


async def test_an_entry_point_naming_an_adapter_class_is_instantiated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "classplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: classplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dispatchline.providers]\nacme = classplugin:Acme\n")
    (tmp_path / "classplugin.py").write_text(
        textwrap.dedent(
            """\
            import attrs
            import httpx

            from providers.mock import echo_handler
            from providers.openai_compatible import OpenAICompatible


            @attrs.frozen(kw_only=True)
            class Acme(OpenAICompatible):
                name: str = "acme"
                base_url: str = "http://acme.invalid/v1"
                transport: httpx.AsyncBaseTransport = httpx.MockTransport(echo_handler)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = default_registry()
    assert "acme" not in registry.load_errors
    assert isinstance(registry["acme"], Adapter) and not isinstance(registry["acme"], type)
    async with Pipeline(registry=registry) as pipe:
        response = await pipe.acompletion("acme/m", HI)
    assert response.choices[0].message.content == "echo: hi"


# -- Azure's token provider ------------------------------------------------------------------


def azure_echo(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return echo_handler(request)

    return httpx.MockTransport(handler)


async def test_an_async_token_provider_is_awaited_before_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_API_KEY", raising=False)
    asked = 0

    async def token() -> str:
        nonlocal asked
        asked += 1
        await anyio.lowlevel.checkpoint()
        return f"token-{asked}"

    seen: list[httpx.Request] = []
    adapter = AzureOpenAI(
        base_url="https://r.openai.azure.com", ad_token_provider=token, transport=azure_echo(seen)
    )
    async with Pipeline(registry=ProviderRegistry([adapter])) as pipe:
        await pipe.acompletion("azure/gpt-4o", HI)
        await pipe.acompletion("azure/gpt-4o", HI)
    assert [r.headers["authorization"] for r in seen] == ["Bearer token-1", "Bearer token-2"]


async def test_a_blocking_token_provider_runs_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_API_KEY", raising=False)
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def token() -> str:
        threads.append(threading.get_ident())
        return "blocking-token"

    seen: list[httpx.Request] = []
    adapter = AzureOpenAI(
        base_url="https://r.openai.azure.com", ad_token_provider=token, transport=azure_echo(seen)
    )
    async with Pipeline(registry=ProviderRegistry([adapter])) as pipe:
        await pipe.acompletion("azure/gpt-4o", HI)
    assert seen[0].headers["authorization"] == "Bearer blocking-token"
    assert threads and threads[0] != loop_thread


async def test_a_failing_token_provider_is_an_authentication_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_API_KEY", raising=False)

    async def token() -> str:
        raise RuntimeError("identity service down")

    seen: list[httpx.Request] = []
    adapter = AzureOpenAI(
        base_url="https://r.openai.azure.com", ad_token_provider=token, transport=azure_echo(seen)
    )
    async with Pipeline(registry=ProviderRegistry([adapter])) as pipe:
        with pytest.raises(errors.AuthenticationError, match="token provider"):
            await pipe.acompletion("azure/gpt-4o", HI)
    assert seen == []


# -- stream is never a body parameter of an embedding ---------------------------------------


async def test_embedding_with_stream_true_sends_no_stream_field() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return echo_handler(request)

    async with Pipeline(registry=ProviderRegistry([mock_provider("m", handler)])) as pipe:
        response = await pipe.aembedding("m/e", "hello", stream=True)
    assert len(response.data) == 1
    assert "stream" not in json.loads(seen[0].content)
