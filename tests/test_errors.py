"""The unified error hierarchy: classes, fields, and keys never shown."""

from __future__ import annotations

import httpx
import pytest

from pipeline import Pipeline, Request, Secret, UpstreamStatusError, errors
from pipeline.adapter import retry_after_from, status_error
from providers import ProviderRegistry, Script, mock_provider

pytestmark = pytest.mark.anyio

KEY = "sk-live-abcdefghijklmnopqrstuvwxyz0123"
REQUEST = Request(endpoint="chat", provider="p", model="m", api_key=Secret(KEY))


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, errors.BadRequestError, False),
        (401, errors.AuthenticationError, False),
        (403, errors.PermissionDeniedError, False),
        (404, errors.NotFoundError, False),
        (408, errors.TimeoutError, True),
        (409, errors.APIStatusError, False),
        (422, errors.BadRequestError, False),
        (429, errors.RateLimitError, True),
        (500, errors.InternalServerError, True),
        (502, errors.InternalServerError, True),
        (503, errors.ServiceUnavailableError, True),
        (529, errors.ServiceUnavailableError, True),
    ],
)
async def test_status_picks_the_most_specific_class(
    status: int, cls: type[errors.DispatchError], retryable: bool
) -> None:
    error = status_error(REQUEST, httpx.Response(status), "boom")
    assert type(error) is cls
    assert error.retryable is retryable
    assert (error.provider, error.model, error.status_code) == ("p", "m", status)


async def test_hierarchy() -> None:
    assert issubclass(errors.ContextWindowExceededError, errors.BadRequestError)
    assert issubclass(errors.ContentPolicyViolationError, errors.BadRequestError)
    assert issubclass(errors.ServiceUnavailableError, errors.InternalServerError)
    assert issubclass(errors.TimeoutError, errors.APIConnectionError)
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.DispatchError)
            assert name in (errors.__doc__ or ""), f"{name} missing from the drawn tree"


async def test_headers_fill_retry_after_request_id_and_should_retry() -> None:
    response = httpx.Response(
        429, headers={"retry-after": "7", "x-request-id": "req_1", "x-should-retry": "false"}
    )
    error = status_error(REQUEST, response, "slow down")
    assert error.retry_after == 7.0
    assert error.request_id == "req_1"
    assert error.retryable is False  # the provider said so


async def test_retry_after_forms() -> None:
    assert retry_after_from({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_from({"retry-after": "3"}) == 3.0
    when = "Wed, 21 Oct 2015 07:28:00 GMT"
    now = 1445412470.0  # ten seconds before
    assert retry_after_from({"retry-after": when}, now=now) == pytest.approx(10.0)
    assert retry_after_from({"retry-after": "soon"}) is None
    assert retry_after_from({}) is None


async def test_keys_never_appear_in_messages_or_reprs() -> None:
    body = f"Incorrect API key provided: {KEY}. Bearer {KEY}"
    error = status_error(REQUEST, httpx.Response(401), body)
    for text in (str(error), repr(error), error.message):
        assert KEY not in text
        assert KEY[:12] not in text
    assert "sk-live" not in repr(REQUEST)
    assert KEY not in str(Secret(KEY)) and KEY not in f"{Secret(KEY)}"


async def test_key_shaped_strings_are_scrubbed_even_when_unknown() -> None:
    error = errors.AuthenticationError("bad key sk-proj-ABCDEFGH12345678 and AIzaSyA" + "x" * 30)
    assert "ABCDEFGH" not in str(error)
    assert "AIzaSyA" not in str(error)


async def test_upstream_status_error_unifies_through_the_adapter() -> None:
    script = Script(
        httpx.Response(
            400,
            json={"error": {"message": "too long", "code": "context_length_exceeded"}},
            headers={"x-request-id": "r9"},
        )
    )
    pipe = Pipeline(registry=ProviderRegistry([mock_provider("mock", script)]))
    with pytest.raises(UpstreamStatusError) as info:
        await pipe.acompletion("mock/m", [{"role": "user", "content": "x"}], api_key=KEY)
    unified = info.value.unified()
    assert isinstance(unified, errors.ContextWindowExceededError)
    assert unified.request_id == "r9"
    assert info.value.response.is_closed


async def test_fallback_error_is_an_exception_group() -> None:
    causes = [errors.RateLimitError("a"), errors.ServiceUnavailableError("b")]
    group = errors.FallbackError("every alternative failed", causes, provider="p", model="m")
    assert isinstance(group, ExceptionGroup) and isinstance(group, errors.DispatchError)
    assert list(group.exceptions) == causes
    assert group.provider == "p"
    with pytest.raises(ExceptionGroup) as caught:
        raise group
    assert caught.group_contains(errors.RateLimitError)


async def test_an_environment_key_echoed_by_the_provider_is_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_key = "plainkey-from-env-0123456789"  # not shaped like any known key format
    monkeypatch.setenv("ECHO_API_KEY", env_key)

    def echo(request: httpx.Request) -> httpx.Response:
        sent = request.headers["authorization"].removeprefix("Bearer ")
        return httpx.Response(401, json={"error": {"message": f"key {sent} is not valid"}})

    adapter = mock_provider("echoing", echo, key_envs=("ECHO_API_KEY",))
    pipe = Pipeline(registry=ProviderRegistry([adapter]))
    with pytest.raises(UpstreamStatusError) as info:
        await pipe.acompletion("echoing/m", [{"role": "user", "content": "x"}])
    unified = info.value.unified()
    assert isinstance(unified, errors.AuthenticationError)
    assert env_key not in str(unified) and env_key not in repr(unified)
    assert "is not valid" in unified.message
