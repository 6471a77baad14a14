"""A pipeline's lifecycle, like httpx's clients, and one pipeline used from several event loops.

- Used at once; ``async with`` / ``with`` enters the middlewares that are async context
  managers and closes the pipeline once at the end; a closed pipeline raises
  ``PipelineClosedError`` on use and never reopens (no new client, no new loop thread).
- Each event loop that uses a pipeline gets its own HTTP client (made under a lock); closing
  closes every one of them, each on its own loop. Middleware state that belongs to a loop
  (Cache's calls in flight, Callbacks' task group) is kept per loop or refused clearly.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

import pipeline._clients
from middlewares import Cache, Callbacks, ErrorMapping, MemoryCache, RetryBudget
from middlewares.callbacks import BackgroundNotRunningError
from pipeline import ChatResponse, Pipeline, Request, errors
from pipeline._chain import Handler
from providers import OpenAICompatible, ProviderRegistry, echo_handler

HI = [{"role": "user", "content": "hi"}]


class Clients:
    """Stands in for the client a pipeline makes itself; records each one made."""

    def __init__(self, handler: Any = echo_handler) -> None:
        self.made: list[httpx.AsyncClient] = []
        self.handler = handler
        self.lock = threading.Lock()

    def __call__(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        with self.lock:
            self.made.append(client)
        return client

    @property
    def closed(self) -> list[bool]:
        return [client.is_closed for client in self.made]


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Clients:
    made = Clients()
    monkeypatch.setattr(pipeline._clients, "default_client", made)
    return made


def networked(*middlewares: Any, **options: Any) -> Pipeline:
    """A pipeline whose provider goes through the pipeline's own client (not its own transport)."""
    net = OpenAICompatible(name="net", base_url="http://net.invalid/v1")
    return Pipeline(list(middlewares), registry=ProviderRegistry([net]), **options)


def ask(pipe: Pipeline, text: str = "hi") -> str:
    reply = pipe.completion("net/m", [{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


# -- closed means closed ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_closed_pipeline_refuses_use_and_makes_no_new_client(clients: Clients) -> None:
    pipe = networked()
    await pipe.acompletion("net/m", HI)
    await pipe.aclose()
    assert pipe.closed and clients.closed == [True]
    with pytest.raises(errors.PipelineClosedError, match="closed"):
        await pipe.acompletion("net/m", HI)
    with pytest.raises(RuntimeError):  # also what httpx raises for a closed client
        await pipe.acompletion("net/m", HI, stream=True)
    assert len(clients.made) == 1
    await pipe.aclose()  # twice is fine


def test_a_closed_pipeline_refuses_sync_use_and_starts_no_loop_thread(
    clients: Clients, sync_backend: str
) -> None:
    pipe = networked(sync_backend=sync_backend)
    assert ask(pipe) == "echo: hi"
    pipe.close()
    threads = threading.active_count()
    with pytest.raises(errors.PipelineClosedError):
        ask(pipe)
    assert threading.active_count() == threads
    assert clients.closed == [True]


@pytest.mark.anyio
async def test_a_closed_pipeline_cannot_be_entered_again() -> None:
    pipe = Pipeline()
    async with pipe:
        with pytest.raises(RuntimeError, match="already open"):
            await pipe.__aenter__()
    with pytest.raises(errors.PipelineClosedError):
        async with pipe:
            pass


@pytest.mark.anyio
async def test_close_inside_an_event_loop_is_a_clear_error() -> None:
    pipe = Pipeline()
    with pytest.raises(errors.SyncInEventLoopError, match="aclose"):
        pipe.close()
    await pipe.aclose()


# -- one lifecycle for middlewares: entered and exited once -------------------------------------


class Resource:
    """A middleware holding a resource: the async context manager protocol is its lifecycle."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def __aenter__(self) -> Resource:
        self.events.append("enter")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.events.append("exit")

    async def aclose(self) -> None:  # not part of the lifecycle: never called by the pipeline
        self.events.append("aclose")

    async def __call__(self, request: Request, call_next: Handler) -> Any:
        return await call_next(request)


def test_with_pipeline_enters_and_exits_each_middleware_once(sync_backend: str) -> None:
    layer = Resource()
    with Pipeline([layer], sync_backend=sync_backend) as pipe:  # type: ignore[arg-type]
        pipe.completion("mock/m", HI)
    pipe.close()
    assert layer.events == ["enter", "exit"]


@pytest.mark.anyio
async def test_async_with_enters_and_exits_each_middleware_once() -> None:
    layer = Resource()
    async with Pipeline([layer]) as pipe:
        await pipe.acompletion("mock/m", HI)
        await pipe.aclose()  # closing inside the block: the block's end exits the middlewares
        assert layer.events == ["enter"]
    assert layer.events == ["enter", "exit"]


# -- one pipeline, several event loops ----------------------------------------------------------


@pytest.mark.anyio
async def test_sync_and_async_use_of_one_pipeline_each_get_a_client_and_aclose_closes_both(
    clients: Clients, anyio_backend: str
) -> None:
    pipe = networked(sync_backend=anyio_backend)
    reply = await pipe.acompletion("net/m", HI)
    assert reply.choices[0].message.content == "echo: hi"
    assert await anyio.to_thread.run_sync(ask, pipe) == "echo: hi"  # on the loop thread
    await pipe.acompletion("net/m", HI)  # this loop's client again, not a new one
    assert len(clients.made) == 2
    await pipe.aclose()
    assert clients.closed == [True, True]
    assert not pipe._loop.running  # the sync facade's loop thread has stopped


def test_concurrent_sync_calls_from_several_threads(clients: Clients, sync_backend: str) -> None:
    pipe = networked(sync_backend=sync_backend)
    answers: list[str] = []

    def work(n: int) -> None:
        for i in range(5):
            answers.append(ask(pipe, f"t{n}-{i}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pipe.close()
    assert sorted(answers) == sorted(f"echo: t{n}-{i}" for n in range(8) for i in range(5))
    assert len(clients.made) == 1 and clients.closed == [True]


def _run_in_threads(*targets: Any) -> None:
    errors_seen: list[BaseException] = []

    def guarded(target: Any) -> None:
        try:
            target()
        except BaseException as exc:
            errors_seen.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert errors_seen == []


def test_several_threads_each_running_a_loop_get_a_client_each_all_closed(
    clients: Clients,
) -> None:
    pipe = networked()
    start = threading.Barrier(4)

    async def use() -> None:
        start.wait()
        for _ in range(20):
            await pipe.acompletion("net/m", HI)
            await anyio.lowlevel.checkpoint()

    _run_in_threads(
        lambda: asyncio.run(use()),
        lambda: asyncio.run(use()),
        lambda: anyio.run(use, backend="trio"),
        lambda: anyio.run(use, backend="trio"),
    )
    assert len(clients.made) == 4  # one per loop, none replaced, none shared
    assert clients.closed == [True] * 4  # each loop closed its client as it ended

    # A loop still running in another thread when the pipeline closes: its client is
    # closed on that loop.
    closing = threading.Event()

    async def live() -> None:
        await pipe.acompletion("net/m", HI)
        await anyio.to_thread.run_sync(closing.wait, 10)

    thread = threading.Thread(target=lambda: asyncio.run(live()))
    thread.start()
    while len(clients.made) < 5:
        threading.Event().wait(0.01)
    pipe.close()
    closing.set()
    thread.join(10)
    assert clients.closed[4] is True
    with pytest.raises(errors.PipelineClosedError):
        asyncio.run(pipe.acompletion("net/m", HI))


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_pipeline_run_through_several_loops_in_turn_leaves_no_client_open(
    clients: Clients, backend: str
) -> None:
    pipe = networked()

    async def use() -> None:
        await pipe.acompletion("net/m", HI)

    for _ in range(3):
        anyio.run(use, backend=backend)  # a script's asyncio.run(...) per call
    assert clients.closed == [True, True, True]

    async def use_and_close() -> None:
        await use()
        assert clients.closed == [True, True, True, False]
        await pipe.aclose()

    anyio.run(use_and_close, backend=backend)
    assert clients.closed == [True] * 4


def test_single_flight_waits_only_within_one_event_loop() -> None:
    in_flight = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            in_flight.set()
            await anyio.to_thread.run_sync(release.wait, 10)
        return echo_handler(request)

    net = OpenAICompatible(
        name="net", base_url="http://net.invalid/v1", transport=httpx.MockTransport(slow)
    )
    pipe = Pipeline(
        [Cache(MemoryCache(), sampled=True), ErrorMapping()], registry=ProviderRegistry([net])
    )

    async def first() -> None:
        with anyio.fail_after(10):
            await pipe.acompletion("net/m", HI)

    async def second() -> None:
        await anyio.to_thread.run_sync(in_flight.wait, 10)  # the first call is in flight
        with anyio.fail_after(10):
            reply = await pipe.acompletion("net/m", HI)  # must not wait on the other loop's call
        assert isinstance(reply, ChatResponse)
        release.set()

    _run_in_threads(lambda: anyio.run(first), lambda: anyio.run(second, backend="trio"))
    assert len(calls) == 2


def test_background_callbacks_refuse_a_request_from_another_event_loop(sync_backend: str) -> None:
    seen: list[str] = []
    layer = Callbacks(on_success=lambda request, response: seen.append("ok"), background=True)
    with Pipeline([layer, ErrorMapping()], sync_backend=sync_backend) as pipe:  # type: ignore[arg-type]
        pipe.completion("mock/m", HI)  # the loop thread entered the task group: fine

        async def elsewhere() -> None:
            await pipe.acompletion("mock/m", HI)

        with pytest.raises(BackgroundNotRunningError, match="another"):
            anyio.run(elsewhere)
    assert seen == ["ok"]


def test_a_retry_budget_counts_right_from_several_threads() -> None:
    ticks = itertools.count()
    now = [0.0]

    def clock() -> float:  # moves on at every reading: the window's slots turn over constantly
        return now[0] + next(ticks) * 0.001

    budget = RetryBudget(ratio=1.0, min_per_second=0.0, window=1.0, clock=clock)

    def work() -> None:
        for _ in range(20_000):
            budget.deposit()
            budget.withdraw()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: unguarded counting loses updates
    try:
        _run_in_threads(*[work] * 4)
    finally:
        sys.setswitchinterval(switch)
    now[0] = 1e9  # everything counted so far has left the window
    for _ in range(4):
        budget.deposit()
    allowed = 0
    while budget.withdraw() and allowed < 100:
        allowed += 1
    assert allowed == 4  # four requests in the window, ratio 1: exactly four retries
