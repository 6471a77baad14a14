"""ErrorMapping: statuses, provider codes and transport errors become unified errors, `from` the
cause, mid-stream too; error responses are closed and no pooled connection leaks."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from middlewares.error_mapping import ErrorMapping
from pipeline import Pipeline, Request, UpstreamStatusError, errors
from pipeline._chain import Handler
from providers import ProviderRegistry, Script, default_registry
from providers.openai_compatible import OpenAICompatible
from tests._scripted_replies import HI, chunk_event, drain, failure, registry, sse, sse_cut
from tests.conftest import load_recorded

pytestmark = pytest.mark.anyio


def mapped_pipeline(*replies: Any) -> tuple[Pipeline, Script]:
    script = Script(*replies)
    return Pipeline([ErrorMapping()], registry=registry(p=script)), script


async def failing_call(*replies: Any, **kwargs: Any) -> errors.DispatchError:
    pipe, _ = mapped_pipeline(*replies)
    with pytest.raises(errors.DispatchError) as caught:
        await pipe.acompletion("p/m-1", HI, **kwargs)
    return caught.value


# -- HTTP statuses and provider error codes --------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected", "retryable"),
    [
        (failure(400, "too long", code="context_length_exceeded"), "ContextWindowExceededError", 0),
        (
            failure(400, "flagged", code="content_policy_violation"),
            "ContentPolicyViolationError",
            0,
        ),
        (failure(400, "bad temperature"), "BadRequestError", 0),
        (failure(401, "who are you", code="invalid_api_key"), "AuthenticationError", 0),
        (failure(403, "not for you"), "PermissionDeniedError", 0),
        (failure(404, "no such model", code="model_not_found"), "NotFoundError", 0),
        (failure(422, "unprocessable"), "BadRequestError", 0),
        (failure(429, "slow down", code="rate_limit_exceeded"), "RateLimitError", 1),
        (failure(429, "pay up", code="insufficient_quota"), "RateLimitError", 0),
        (failure(500, "oops"), "InternalServerError", 1),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), "InternalServerError", 1),
        (failure(503, "down"), "ServiceUnavailableError", 1),
        (failure(529, "Overloaded", code="overloaded_error"), "ServiceUnavailableError", 1),
    ],
)
async def test_status_and_code_map_to_the_most_specific_class(
    reply: httpx.Response, expected: str, retryable: int
) -> None:
    err = await failing_call(reply)
    assert type(err).__name__ == expected
    assert type(err) is getattr(errors, expected)
    assert err.status_code == reply.status_code
    assert (err.provider, err.model) == ("p", "m-1")
    assert err.retryable is bool(retryable)
    cause = err.__cause__
    assert isinstance(cause, UpstreamStatusError)
    assert cause.response.status_code == reply.status_code


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openai/error_400_unsupported_value.json", errors.BadRequestError),
        ("openai/error_401_invalid_api_key.json", errors.AuthenticationError),
        ("openai/error_404_model_not_found.json", errors.NotFoundError),
        ("groq/error_400_tool_use_failed.json", errors.BadRequestError),
        ("ollama/error_400_model_does_not_support_tools.json", errors.BadRequestError),
    ],
)
async def test_recorded_error_bodies(name: str, expected: type[errors.DispatchError]) -> None:
    recorded = load_recorded(name)["response"]
    reply = httpx.Response(recorded["status"], headers=recorded["headers"], json=recorded["body"])
    err = await failing_call(reply)
    assert type(err) is expected
    body = recorded["body"]["error"]
    message = body["message"] if isinstance(body, dict) else body
    assert err.message == message
    assert err.request_id == recorded["headers"].get("x-request-id")


_OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
_TOO_LONG = {
    "type": "error",
    "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens"},
}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (httpx.Response(529, json=_OVERLOADED), errors.ServiceUnavailableError),
        (httpx.Response(400, json=_TOO_LONG), errors.ContextWindowExceededError),
        ("anthropic/error_401_authentication.json", errors.AuthenticationError),
        ("anthropic/error_404_model_not_found.json", errors.NotFoundError),
    ],
)
async def test_a_native_adapter_parses_its_own_error_bodies(
    reply: httpx.Response | str, expected: type[errors.DispatchError]
) -> None:
    if isinstance(reply, str):
        recorded = load_recorded(reply)["response"]
        reply = httpx.Response(
            recorded["status"], headers=recorded["headers"], json=recorded["body"]
        )
    client = httpx.AsyncClient(transport=httpx.MockTransport(Script(reply)))
    pipe = Pipeline(
        [ErrorMapping()], registry=default_registry(load_entry_points=False), http_client=client
    )
    async with client:
        with pytest.raises(errors.DispatchError) as caught:
            await pipe.acompletion("anthropic/claude-3-5-haiku-latest", HI, api_key="test-key-1")
    err = caught.value
    assert type(err) is expected
    assert (err.provider, err.model, err.status_code) == (
        "anthropic",
        "claude-3-5-haiku-latest",
        reply.status_code,
    )
    assert isinstance(err.__cause__, UpstreamStatusError)


async def test_a_failing_error_parser_falls_back_to_the_class_for_the_status() -> None:
    class BrokenParser(OpenAICompatible):
        def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
            raise KeyError("error")

    script = Script(failure(503, "down", headers={"retry-after": "3"}))
    broken = BrokenParser(
        name="p", base_url="http://p.invalid/v1", transport=httpx.MockTransport(script)
    )
    pipe = Pipeline([ErrorMapping()], registry=ProviderRegistry([broken]))
    with pytest.raises(errors.ServiceUnavailableError) as caught:
        await pipe.acompletion("p/m", HI)
    err = caught.value
    assert err.retry_after == 3.0
    assert err.status_code == 503
    assert "could not be read" in err.message
    assert isinstance(err.__cause__, UpstreamStatusError)


async def test_a_plain_http_status_error_from_an_inner_layer_is_mapped_by_status() -> None:
    async def raise_for_status(request: Request, call_next: Handler) -> Any:
        response = httpx.Response(
            429, headers={"retry-after": "2"}, request=httpx.Request("POST", "http://x.invalid")
        )
        response.raise_for_status()
        return await call_next(request)

    pipe = Pipeline([ErrorMapping(), raise_for_status], registry=registry(p=Script()))
    with pytest.raises(errors.RateLimitError) as caught:
        await pipe.acompletion("p/m", HI)
    assert caught.value.retry_after == 2.0
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)


# -- Retry-After, x-should-retry, request ids ---------------------------------------------


async def test_retry_after_in_seconds() -> None:
    err = await failing_call(failure(429, headers={"retry-after": "7", "x-request-id": "req_9"}))
    assert err.retry_after == 7.0
    assert err.request_id == "req_9"


async def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    err = await failing_call(failure(503, headers={"retry-after": when}))
    assert err.retry_after is not None
    assert 25.0 <= err.retry_after <= 31.0


async def test_retry_after_ms_wins_over_retry_after() -> None:
    err = await failing_call(failure(429, headers={"retry-after-ms": "1500", "retry-after": "9"}))
    assert err.retry_after == 1.5


async def test_x_should_retry_overrides_the_class_default() -> None:
    no = await failing_call(failure(500, headers={"x-should-retry": "false"}))
    assert isinstance(no, errors.InternalServerError)
    assert no.retryable is False
    yes = await failing_call(failure(409, "conflict", headers={"x-should-retry": "true"}))
    assert yes.retryable is True


# -- transport errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected", "retryable"),
    [
        (httpx.ReadTimeout("read timed out"), errors.TimeoutError, True),
        (httpx.ConnectTimeout("connect timed out"), errors.TimeoutError, True),
        (httpx.PoolTimeout("no connection free"), errors.TimeoutError, True),
        (httpx.ConnectError("connection refused"), errors.APIConnectionError, True),
        (httpx.ReadError("connection reset"), errors.APIConnectionError, True),
        (httpx.RemoteProtocolError("server hung up"), errors.APIConnectionError, True),
        (httpx.UnsupportedProtocol("ftp:// is not http"), errors.APIConnectionError, False),
        (httpx.LocalProtocolError("bad header"), errors.APIConnectionError, False),
    ],
)
async def test_transport_errors(
    raised: Exception, expected: type[errors.DispatchError], retryable: bool
) -> None:
    err = await failing_call(raised)
    assert type(err) is expected
    assert err.__cause__ is raised
    assert err.retryable is retryable
    assert (err.provider, err.model, err.status_code) == ("p", "m-1", None)
    assert type(raised).__name__ in err.message


async def test_timeout_error_is_also_the_builtin_timeout_error() -> None:
    err = await failing_call(httpx.ReadTimeout("slow"))
    assert isinstance(err, TimeoutError)


async def test_undecodable_body_is_a_provider_response_error() -> None:
    garbled = httpx.Response(
        200,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
        stream=TrackedBody(b"nope"),  # read only when the terminal reads it
    )
    err = await failing_call(garbled)
    assert type(err) is errors.ProviderResponseError
    assert isinstance(err.__cause__, httpx.DecodingError)


async def test_dispatch_errors_pass_unchanged() -> None:
    err = await failing_call(httpx.Response(200, content=b"{not json"))
    assert type(err) is errors.ProviderResponseError
    assert isinstance(err.__cause__, ValueError)  # read_json's own cause, not re-wrapped


async def test_other_exceptions_pass_unchanged() -> None:
    boom = RuntimeError("a bug, not a provider error")
    pipe, _ = mapped_pipeline(boom)
    with pytest.raises(RuntimeError) as caught:
        await pipe.acompletion("p/m", HI)
    assert caught.value is boom


async def test_messages_never_show_the_request_key() -> None:
    key = "tenant-key-0123456789"
    from_body = await failing_call(failure(401, f"Incorrect API key provided: {key}"), api_key=key)
    from_transport = await failing_call(httpx.ConnectError(f"proxy refused {key}"), api_key=key)
    for err in (from_body, from_transport):
        assert key not in str(err)
        assert key not in repr(err)
        assert "***" in err.message


# -- streams -----------------------------------------------------------------------------


async def test_stream_cut_mid_way_raises_a_mapped_error_after_the_chunks() -> None:
    pipe, _ = mapped_pipeline(sse_cut("a", "b"))
    stream = await pipe.acompletion("p/m-1", HI, stream=True)
    assert (stream.provider, stream.model) == ("p", "m-1")
    seen: list[str | None] = []
    with pytest.raises(errors.APIConnectionError) as caught:
        await drain(stream, seen)
    assert seen == ["a", "b"]
    assert isinstance(caught.value.__cause__, httpx.ReadError)
    assert (caught.value.provider, caught.value.model) == ("p", "m-1")


async def test_stream_failing_before_its_first_chunk_raises_from_the_call() -> None:
    pipe, _ = mapped_pipeline(sse_cut())
    with pytest.raises(errors.APIConnectionError) as caught:
        await pipe.acompletion("p/m", HI, stream=True)
    assert isinstance(caught.value.__cause__, httpx.ReadError)


async def test_provider_error_event_mid_stream_passes_as_decoded() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"data: " + json.dumps(chunk_event("a")).encode() + b"\n\n"
        yield b'data: {"error": {"message": "overloaded", "code": "server_error"}}\n\n'

    reply = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())
    pipe, _ = mapped_pipeline(reply)
    stream = await pipe.acompletion("p/m", HI, stream=True)
    seen: list[str | None] = []
    with pytest.raises(errors.InternalServerError, match="overloaded") as caught:
        await drain(stream, seen)
    assert seen == ["a"]
    assert not isinstance(caught.value.__cause__, errors.DispatchError)  # not wrapped again


async def test_a_whole_stream_passes_through_and_close_reaches_the_response() -> None:
    pipe, _ = mapped_pipeline(sse("x", "y", "z"))
    stream = await pipe.acompletion("p/m", HI, stream=True)
    contents = [c.choices[0].delta.content async for c in stream]
    assert contents == ["x", "y", "z", ""]

    body = EndlessBody(b"data: " + json.dumps(chunk_event("more")).encode() + b"\n\n")
    pipe, _ = mapped_pipeline(
        httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)
    )
    stream = await pipe.acompletion("p/m", HI, stream=True)
    assert (await stream.__anext__()).choices[0].delta.content == "more"
    await stream.aclose()
    assert stream.closed
    assert body.closed


# -- closing and connection leaks -----------------------------------------------------------


class TrackedBody(httpx.AsyncByteStream):
    """A one-piece body that records being closed (no generator left to finalize)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed = False
        self.sent = False

    def __aiter__(self) -> TrackedBody:
        return self

    async def __anext__(self) -> bytes:
        if self.sent:
            raise StopAsyncIteration
        self.sent = True
        return self.data

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("stream", [False, True])
async def test_error_response_is_closed_before_the_error_is_raised(stream: bool) -> None:
    body = TrackedBody(json.dumps({"error": {"message": "down"}}).encode())
    err = await failing_call(httpx.Response(503, stream=body), stream=stream)
    assert isinstance(err, errors.ServiceUnavailableError)
    assert body.closed
    assert isinstance(err.__cause__, UpstreamStatusError)
    assert err.__cause__.response.is_closed


class EndlessBody(TrackedBody):
    """The same event forever, until closed."""

    async def __anext__(self) -> bytes:
        return self.data
