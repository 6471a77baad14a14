"""The sync twins, the module-level functions over the default pipeline, and the demo."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import httpx
import pytest

import pipeline
from pipeline import ChatResponse, Pipeline, SyncStream, errors
from providers import ProviderRegistry, Script, mock_provider

HI = [{"role": "user", "content": "hello sync"}]


def test_sync_endpoints(sync_backend: str) -> None:
    with Pipeline(sync_backend=sync_backend) as pipe:  # type: ignore[arg-type]
        resp = pipe.completion("mock/echo", HI)
        assert isinstance(resp, ChatResponse)
        assert resp.choices[0].message.content == "echo: hello sync"
        assert len(pipe.embedding("mock/e", ["a", "b"]).data) == 2
        assert pipe.image_generation("mock/i", "fox").data[0].url
        assert pipe.transcription("mock/t", b"audio-bytes").text.startswith("mock transcription")
        assert pipe.speech("mock/s", "hi").content.startswith(b"MOCKAUDIO")


def test_sync_stream_is_a_plain_iterator(sync_backend: str) -> None:
    with Pipeline(sync_backend=sync_backend) as pipe:  # type: ignore[arg-type]
        stream = pipe.completion("mock/echo", HI, stream=True)
        assert isinstance(stream, SyncStream)
        with stream:
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "echo: hello sync"
        assert stream.provider == "mock"


def test_sync_errors_are_the_same_types(sync_backend: str) -> None:
    script = Script(httpx.Response(503, json={"error": {"message": "down"}}))
    registry = ProviderRegistry([mock_provider("mock", script)])
    with Pipeline(registry=registry, sync_backend=sync_backend) as pipe:  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidRequestError):
            pipe.completion("mock/m", [])
        with pytest.raises(httpx.HTTPStatusError):
            pipe.completion("mock/m", HI)


def test_sync_calls_reuse_one_loop_thread(sync_backend: str) -> None:
    threads: set[int] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        threads.add(threading.get_ident())
        return httpx.Response(
            200, json={"choices": [{"message": {"role": "assistant", "content": "x"}}]}
        )

    registry = ProviderRegistry([mock_provider("mock", handler)])
    with Pipeline(registry=registry, sync_backend=sync_backend) as pipe:  # type: ignore[arg-type]
        for _ in range(3):
            pipe.completion("mock/m", HI)
    assert len(threads) == 1 and threading.get_ident() not in threads


@pytest.mark.anyio
async def test_sync_call_inside_an_event_loop_is_a_clear_error() -> None:
    pipe = Pipeline()
    with pytest.raises(errors.SyncInEventLoopError, match="await the a-method"):
        pipe.completion("mock/echo", HI)


@pytest.mark.anyio
async def test_module_level_async_functions() -> None:
    resp = await pipeline.acompletion("mock/echo", HI)
    assert resp.choices[0].message.content == "echo: hello sync"
    emb = await pipeline.aembedding("mock/e", "text")
    assert len(emb.data) == 1
    assert pipeline.default_pipeline() is pipeline.default_pipeline()


def test_module_level_sync_functions() -> None:
    assert pipeline.completion("mock/echo", HI).choices[0].message.content == "echo: hello sync"
    assert pipeline.speech("mock/s", "x").content


@pytest.mark.anyio
async def test_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.__main__ import main

    await main()
    out = capsys.readouterr().out
    assert "chat:       echo: What does dispatchline do?" in out
    assert "stream:     echo: What does dispatchline do?" in out
    assert "again:       cache_hit=True" in out
    assert "embedding 1:" in out


@pytest.mark.anyio
async def test_pipeline_closes_the_client_it_made_but_not_an_injected_one() -> None:
    own = Pipeline()
    await own.acompletion("mock/echo", HI)
    client = own._dispatcher.client
    await own.aclose()
    assert client.is_closed

    injected = httpx.AsyncClient()
    async with Pipeline(http_client=injected):
        pass
    assert not injected.is_closed
    await injected.aclose()


@pytest.mark.anyio
async def test_default_client_uses_aiohttp_on_asyncio_only(anyio_backend: str) -> None:
    from pipeline._aiohttp_transport import AiohttpTransport
    from pipeline._clients import default_client

    client = default_client()
    try:
        transport = client._transport
        assert isinstance(transport, AiohttpTransport) is (anyio_backend == "asyncio")
    finally:
        await client.aclose()


def test_a_pipeline_used_from_a_second_event_loop_gets_a_fresh_client() -> None:
    import anyio

    pipe = Pipeline()
    seen: list[httpx.AsyncClient] = []

    async def use() -> None:
        seen.append(pipe._dispatcher.client)
        seen.append(pipe._dispatcher.client)  # the same loop keeps its client

    anyio.run(use)
    anyio.run(use, backend="trio")
    pipe.close()
    assert seen[0] is seen[1]
    assert seen[2] is seen[3]
    assert seen[0] is not seen[2]  # its pool belonged to the first loop


@pytest.mark.anyio
async def test_a_cancelled_read_still_releases_the_response() -> None:
    import anyio

    gate = anyio.Event()
    closed: list[bool] = []

    class SlowBody(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            await gate.wait()
            yield b"{}"

        async def aclose(self) -> None:
            await anyio.lowlevel.checkpoint()  # a real close awaits the network
            closed.append(True)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=SlowBody())

    pipe = Pipeline(registry=ProviderRegistry([mock_provider("mock", handler)]))
    with anyio.move_on_after(0.05):
        await pipe.acompletion("mock/m", HI)
    assert closed == [True]


def test_sync_with_enters_background_callbacks(sync_backend: str) -> None:
    from middlewares import Callbacks, ErrorMapping

    seen: list[str] = []

    async def on_success(request: object, response: ChatResponse) -> None:
        seen.append(response.choices[0].message.content or "")

    stack = [Callbacks(on_success=on_success, background=True), ErrorMapping()]
    with Pipeline(stack, sync_backend=sync_backend) as pipe:  # type: ignore[arg-type]
        pipe.completion("mock/echo", HI)
        pipe.completion("mock/echo", [{"role": "user", "content": "again"}])
    # leaving the block waited for the pending background hooks
    assert seen == ["echo: hello sync", "echo: again"]
