"""Callbacks: each hook exactly once per request, whole or streamed, whatever happens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import httpx
import pytest
from structlog.testing import capture_logs

from middlewares.callbacks import BackgroundNotRunningError, Callbacks, RequestCancelled
from pipeline import ChatResponse, Pipeline, Request, UpstreamStatusError
from pipeline._chain import Handler
from pipeline._dispatch import ProviderStream
from providers import ProviderRegistry, Script, echo_handler, mock_provider

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]


def pipeline(*layers: Any, handler: Any = echo_handler) -> Pipeline:
    return Pipeline(
        list(layers),
        registry=ProviderRegistry([mock_provider("mock", handler), mock_provider("other")]),
    )


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def chunk_event(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


def streaming(body: Any) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return handler


def failing(status: int = 500) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": "upstream failed"}})


class Recorder:
    """Every hook, recording (hook, args) in order; half of them async, to cover both."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls if name != "on_stream_chunk"]

    def args(self, name: str) -> tuple[Any, ...]:
        [args] = [args for hook, args in self.calls if hook == name]
        return args

    def on_request(self, request: Request) -> None:
        self.calls.append(("on_request", (request,)))

    async def on_success(self, request: Request, response: Any) -> None:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("on_success", (request, response)))

    async def on_failure(self, request: Request, exc: BaseException) -> None:
        await anyio.lowlevel.checkpoint()  # runs even when the request was cancelled
        self.calls.append(("on_failure", (request, exc)))

    def on_stream_chunk(self, request: Request, chunk: Any) -> None:
        self.calls.append(("on_stream_chunk", (request, chunk)))

    async def on_stream_end(self, request: Request, response: Any, completed: bool) -> None:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("on_stream_end", (request, response, completed)))

    def layer(self, **options: Any) -> Callbacks:
        return Callbacks(
            on_request=self.on_request,
            on_success=self.on_success,
            on_failure=self.on_failure,
            on_stream_chunk=self.on_stream_chunk,
            on_stream_end=self.on_stream_end,
            **options,
        )


# -- whole responses ----------------------------------------------------------------


async def test_success_calls_request_then_success_once() -> None:
    hooks = Recorder()
    response = await pipeline(hooks.layer()).acompletion("mock/m", HI)
    assert hooks.names() == ["on_request", "on_success"]
    request, seen = hooks.args("on_success")
    assert seen is response
    assert request.target == "mock/m"


async def test_failure_calls_failure_once_with_the_error() -> None:
    hooks = Recorder()
    pipe = pipeline(hooks.layer(), handler=Script(failing()))
    with pytest.raises(UpstreamStatusError) as raised:
        await pipe.acompletion("mock/m", HI)
    assert hooks.names() == ["on_request", "on_failure"]
    assert hooks.args("on_failure")[1] is raised.value


async def retry_once(request: Request, call_next: Handler) -> Any:
    try:
        return await call_next(request)
    except UpstreamStatusError:
        return await call_next(request)


async def fall_back(request: Request, call_next: Handler) -> Any:
    try:
        return await call_next(request)
    except UpstreamStatusError:
        return await call_next(attrs.evolve(request, provider="other"))


@pytest.mark.parametrize("inner", [retry_once, fall_back])
async def test_a_retried_or_fallen_back_request_is_one_request(inner: Any) -> None:
    hooks = Recorder()
    script = Script(failing(), echo_handler)
    response = await pipeline(hooks.layer(), inner, handler=script).acompletion("mock/m", HI)
    assert hooks.names() == ["on_request", "on_success"]
    assert hooks.args("on_success")[1] is response


async def test_cancelled_request_fails_once_with_a_marker() -> None:
    entered = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        entered.set()
        await anyio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    hooks = Recorder()
    pipe = pipeline(hooks.layer(), handler=handler)
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            await pipe.acompletion("mock/m", HI)

        tg.start_soon(call)
        await entered.wait()
        tg.cancel_scope.cancel()
    assert hooks.names() == ["on_request", "on_failure"]
    marker = hooks.args("on_failure")[1]
    assert isinstance(marker, RequestCancelled)
    assert isinstance(marker.__cause__, anyio.get_cancelled_exc_class())


# -- streams -------------------------------------------------------------------------


async def test_stream_success_fires_at_the_end_with_the_assembled_response() -> None:
    hooks = Recorder()
    stream = await pipeline(hooks.layer()).acompletion("mock/m", HI, stream=True)
    assert hooks.names() == ["on_request"]  # nothing more until the stream ends
    chunks = [chunk async for chunk in stream]
    await stream.aclose()
    assert hooks.names() == ["on_request", "on_stream_end", "on_success"]
    assert [args[1] for name, args in hooks.calls if name == "on_stream_chunk"] == chunks
    _, ended, completed = hooks.args("on_stream_end")
    _, response = hooks.args("on_success")
    assert completed is True
    assert response is ended
    assert isinstance(response, ChatResponse)
    assert response.choices[0].message.content == "echo: hi"
    assert response.choices[0].finish_reason == "stop"
    usage = next(c.usage for c in chunks if c.usage is not None)
    assert response.usage == usage
    assert (response.provider, response.latency > 0) == ("mock", True)


async def test_stream_failure_midway_fires_failure_once() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield sse(chunk_event("one "), chunk_event("two "))
        raise httpx.ReadError("connection reset")

    hooks = Recorder()
    stream = await pipeline(hooks.layer(), handler=streaming(body)).acompletion(
        "mock/m", HI, stream=True
    )
    got: list[Any] = []

    async def drain() -> None:
        async for chunk in stream:
            got.append(chunk)

    with pytest.raises(httpx.ReadError) as raised:
        await drain()
    await stream.aclose()
    assert len(got) == 2
    assert hooks.names() == ["on_request", "on_stream_end", "on_failure"]
    _, partial, completed = hooks.args("on_stream_end")
    assert completed is False
    assert partial.choices[0].message.content == "one two "
    assert hooks.args("on_failure")[1] is raised.value


async def test_stream_failing_before_its_first_chunk_fires_failure_once() -> None:
    hooks = Recorder()
    pipe = pipeline(hooks.layer(), handler=Script(failing(503)))
    with pytest.raises(UpstreamStatusError):
        await pipe.acompletion("mock/m", HI, stream=True)
    assert hooks.names() == ["on_request", "on_failure"]


def whole_body_stream(request: httpx.Request) -> httpx.Response:
    """A stream whose body is plain bytes: closing it early leaves no generator behind
    (the mock's async-generator body is never closed by httpx, which trio reports)."""
    body = sse(chunk_event("echo: "), chunk_event("hi", "stop")) + b"data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


async def test_stream_closed_early_fires_failure_once() -> None:
    hooks = Recorder()
    pipe = pipeline(hooks.layer(), handler=whole_body_stream)
    stream = await pipe.acompletion("mock/m", HI, stream=True)
    await stream.__anext__()
    await stream.aclose()
    await stream.aclose()
    assert hooks.names() == ["on_request", "on_stream_end", "on_failure"]
    assert hooks.args("on_stream_end")[2] is False
    marker = hooks.args("on_failure")[1]
    assert isinstance(marker, RequestCancelled)
    assert marker.__cause__ is None


async def test_stream_cancelled_during_iteration_fires_failure_once() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield sse(chunk_event("one "))
        await anyio.Event().wait()  # stalls until cancelled
        yield b""

    hooks = Recorder()
    stream = await pipeline(hooks.layer(), handler=streaming(body)).acompletion(
        "mock/m", HI, stream=True
    )
    with anyio.CancelScope() as scope:
        async for _ in stream:
            scope.cancel()
    assert scope.cancelled_caught
    await stream.aclose()
    assert hooks.names() == ["on_request", "on_stream_end", "on_failure"]
    _, partial, completed = hooks.args("on_stream_end")
    assert (completed, partial.choices[0].message.content) == (False, "one ")
    marker = hooks.args("on_failure")[1]
    assert isinstance(marker, RequestCancelled)
    assert isinstance(marker.__cause__, anyio.get_cancelled_exc_class())


async def test_stream_with_only_on_request_is_passed_through_unwrapped() -> None:
    seen: list[Request] = []
    pipe = pipeline(Callbacks(on_request=seen.append))
    stream = await pipe.acompletion("mock/m", HI, stream=True)
    assert isinstance(stream, ProviderStream)  # nothing to watch: no wrapper, no cost per chunk
    assert len(seen) == 1
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == (
        "echo: hi"
    )


# -- failing hooks -------------------------------------------------------------------------


async def test_a_raising_hook_is_logged_and_never_breaks_the_request() -> None:
    def broken(*args: Any) -> None:
        raise ValueError("hook bug")

    async def broken_async(*args: Any) -> None:
        await anyio.lowlevel.checkpoint()
        raise KeyError("async hook bug")

    layer = Callbacks(
        on_request=broken,
        on_success=broken_async,
        on_stream_chunk=broken,
        on_stream_end=broken_async,
    )
    pipe = pipeline(layer)
    with capture_logs() as logs:
        response = await pipe.acompletion("mock/m", HI)
        stream = await pipe.acompletion("mock/m", HI, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert response.choices[0].message.content == "echo: hi"
    assert text == "echo: hi"
    failed = [e for e in logs if e["event"] == "callbacks.hook_failed"]
    assert [e["hook"] for e in failed][:3] == ["on_request", "on_success", "on_request"]
    assert {e["hook"] for e in failed} == {
        "on_request",
        "on_success",
        "on_stream_chunk",
        "on_stream_end",
    }
    assert all(e["log_level"] == "error" for e in failed)
    assert {e["error"] for e in failed} == {"ValueError", "KeyError"}


# -- background -----------------------------------------------------------------------------


async def test_background_hooks_run_after_the_response_and_are_awaited_on_exit() -> None:
    gate = anyio.Event()
    done: list[str] = []

    async def on_request(request: Request) -> None:
        await gate.wait()
        done.append("request")

    def on_success(request: Request, response: Any) -> None:
        done.append("success")

    pipe = pipeline(Callbacks(on_request=on_request, on_success=on_success, background=True))
    async with pipe:
        response = await pipe.acompletion("mock/m", HI)  # returns while on_request waits
        assert response.choices[0].message.content == "echo: hi"
        assert done == []
        gate.set()
    assert done == ["request", "success"]  # awaited on exit, in order


async def test_background_stream_hooks_fire_once_in_order() -> None:
    hooks = Recorder()
    pipe = pipeline(hooks.layer(background=True))
    async with pipe:
        stream = await pipe.acompletion("mock/m", HI, stream=True)
        async for _ in stream:
            pass
    assert hooks.names() == ["on_request", "on_stream_end", "on_success"]


async def test_background_outside_async_with_is_a_typed_error_before_io() -> None:
    script = Script()
    pipe = pipeline(Callbacks(on_success=print, background=True), handler=script)
    with pytest.raises(BackgroundNotRunningError, match="async with pipeline"):
        await pipe.acompletion("mock/m", HI)
    assert script.requests == []


# -- construction --------------------------------------------------------------------------


async def test_hooks_must_be_callable_and_repr_names_them() -> None:
    with pytest.raises(TypeError, match="on_success must be callable"):
        Callbacks(on_success="print")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="background"):
        Callbacks(background="yes")  # type: ignore[arg-type]

    def audit(request: Request, response: Any) -> None:
        pass

    assert repr(Callbacks(on_success=audit)) == (
        "Callbacks(on_success=test_hooks_must_be_callable_and_repr_names_them.<locals>.audit, "
        "background=False)"
    )
