"""A key taken from the environment never leaves through an error, on any error path.

The provider's key comes from its environment variable (not the call), and the
provider echoes it back in each way a failure can carry text: an error status body,
an in-stream error event, a body the adapter cannot parse, a transport error. Neither
the raised error, nor anything it chains to, nor an httpx request or response kept on
the way, nor the log event or the failure callback, shows the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from middlewares import Callbacks, ErrorMapping, Logging, Retry
from pipeline import Pipeline, Request, Stream, errors
from pipeline.adapter import AnyResponse
from providers import ProviderRegistry, Script, mock_provider
from providers.openai_compatible import OpenAICompatible
from tests._scripted_replies import HI, chunk_event

pytestmark = pytest.mark.anyio

KEY = "R8envsecret0042xyz"  # shaped like no known key, so only exact scrubbing hides it
ENV = "R8_TEST_PROVIDER_KEY"
AUTH = ("authorization", "api-key", "x-api-key", "x-goog-api-key")


@pytest.fixture(autouse=True)
def key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, KEY)


def echoing_key(request: httpx.Request) -> str:
    """What a provider that echoes the key it received would say."""
    return request.headers["authorization"].removeprefix("Bearer ")


def _everything_in(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and all it chains to, walked here on purpose rather than with
    pipeline._redact's own walk: a place that walk misses shows up as a leak."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            todo += current.exceptions
        unified = getattr(current, "unified_error", None)
        if unified is not None:
            todo.append(unified)


def _kept_http(exc: BaseException) -> Iterator[httpx.Request | httpx.Response]:
    for name in ("request", "response"):
        try:
            value = getattr(exc, name, None)
        except RuntimeError:
            continue
        if isinstance(value, httpx.Response):
            yield value
            value = value._request
        if isinstance(value, httpx.Request):
            yield value


def leaks(exc: BaseException) -> list[str]:
    """Every place in ``exc`` and its chain where the key can still be read."""
    found = []
    for current in _everything_in(exc):
        name = type(current).__name__
        for where, text in (("str", str(current)), ("repr", repr(current))):
            if KEY in text:
                found.append(f"{name} {where}")
        if any(KEY in repr(arg) for arg in current.args):
            found.append(f"{name} args")
        for message in _kept_http(current):
            for header in AUTH:
                if KEY in message.headers.get(header, ""):
                    found.append(f"{name} keeps {type(message).__name__} header {header}")
    return found


def provider(handler: Any) -> OpenAICompatible:
    return mock_provider("envkeyed", handler, key_envs=(ENV,))


async def to_the_end(pipe: Pipeline, stream: bool) -> None:
    result = await pipe.acompletion("envkeyed/m", HI, stream=stream)  # type: ignore[call-overload]
    if isinstance(result, Stream):
        async for _ in result:
            pass


async def fail(pipe: Pipeline, *, stream: bool = False) -> errors.DispatchError:
    with pytest.raises(errors.DispatchError) as caught:
        await to_the_end(pipe, stream)
    return caught.value


def status_echo(request: httpx.Request) -> httpx.Response:
    message = f"Incorrect API key provided: {echoing_key(request)}"
    return httpx.Response(401, json={"error": {"message": message, "code": "invalid_api_key"}})


def stream_error_echo(request: httpx.Request) -> httpx.Response:
    events = [
        chunk_event("partial"),
        {"error": {"message": f"key {echoing_key(request)} was revoked", "code": None}},
    ]
    body = b"".join(b"data: " + httpx.Response(200, json=e).content + b"\n\n" for e in events)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def transport_echo(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"the proxy refused credentials {echoing_key(request)}")


class ParseEcho(OpenAICompatible):
    """An adapter whose parse error quotes the body (as a careless one might)."""

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse:
        raise errors.ProviderResponseError(
            f"unexpected body {response.text}", provider=request.provider, model=request.model
        )


def body_echo(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"unexpected": echoing_key(request)})


PATHS = {
    "status": (provider(status_echo), False),
    "stream error event": (provider(stream_error_echo), True),
    "transport": (provider(Script(*[transport_echo] * 3)), False),
    "parse": (
        ParseEcho(
            name="envkeyed",
            base_url="http://envkeyed.invalid/v1",
            key_envs=(ENV,),
            transport=httpx.MockTransport(body_echo),
        ),
        False,
    ),
}


@pytest.mark.parametrize("path", list(PATHS))
async def test_an_environment_key_leaves_through_no_error_path(path: str) -> None:
    adapter, stream = PATHS[path]
    failures: list[BaseException] = []
    pipe = Pipeline(
        [
            Logging(),
            Callbacks(on_failure=lambda request, exc: failures.append(exc)),
            Retry(attempts=1),
            ErrorMapping(),
        ],
        registry=ProviderRegistry([adapter]),
    )
    with capture_logs() as logs:
        error = await fail(pipe, stream=stream)
    assert leaks(error) == []
    assert failures == [error]
    assert logs and all(KEY not in repr(event) for event in logs)


@pytest.mark.parametrize("path", list(PATHS))
async def test_without_error_mapping_the_raw_exception_keeps_no_key(path: str) -> None:
    adapter, stream = PATHS[path]
    pipe = Pipeline(registry=ProviderRegistry([adapter]))
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever the path raises
        await to_the_end(pipe, stream)
    assert leaks(caught.value) == []


async def test_the_request_a_test_recorded_keeps_its_headers() -> None:
    # Only what the error keeps is stripped: the transport's (or a test's) own
    # request object is left as it was sent.
    script = Script(status_echo)
    pipe = Pipeline([ErrorMapping()], registry=ProviderRegistry([provider(script)]))
    error = await fail(pipe)
    assert script.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert leaks(error) == []


# -- every built-in auth header, from the environment ------------------------------------------


def _adapter(name: str) -> tuple[Any, str, str]:
    """(adapter with its key in the environment, the header it sends it in, a model)."""
    from providers.anthropic import AnthropicMessages
    from providers.azure import AzureOpenAI
    from providers.gemini import Gemini

    adapters = {
        "anthropic": (
            AnthropicMessages(key_envs=(ENV,)),
            "x-api-key",
            "anthropic/claude-3-5-haiku-latest",
        ),
        "azure": (  # reads AZURE_OPENAI_API_KEY, whatever key_envs says (set below)
            AzureOpenAI(base_url="https://r.openai.azure.com"),
            "api-key",
            "azure/gpt-4o",
        ),
        "gemini": (Gemini(key_envs=(ENV,)), "x-goog-api-key", "gemini/gemini-2.0-flash"),
    }
    return adapters[name]


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("the proxy refused the request")


def unauthorized(request: httpx.Request) -> httpx.Response:
    return httpx.Response(401, json={"error": {"message": "no", "type": "authentication_error"}})


@pytest.mark.parametrize("reply", [refuse, unauthorized], ids=["transport", "status"])
@pytest.mark.parametrize("name", ["anthropic", "azure", "gemini"])
async def test_each_auth_header_is_stripped_from_the_request_an_error_keeps(
    name: str, reply: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    adapter, header, model = _adapter(name)
    async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as client:
        pipe = Pipeline([ErrorMapping()], registry=ProviderRegistry([adapter]), http_client=client)
        with pytest.raises(errors.DispatchError) as caught:
            await pipe.acompletion(model, HI)
    kept = [message for e in _everything_in(caught.value) for message in _kept_http(e)]
    assert kept, "the error keeps the request it failed on"
    assert all(header not in message.headers for message in kept)
    assert leaks(caught.value) == []
