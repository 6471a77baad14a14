"""Hedged requests: the first answer wins, the loser is cancelled and closed; a
budget bounds them; tools are left alone unless allowed; streams race to the first chunk."""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from middlewares import Deployment, ErrorMapping, Hedge, Router
from middlewares.retry import RetryBudget
from pipeline import Attempt, Pipeline
from tests._routing import HI, FakeClock, Sleeps, Terminal, answer, build, held, timed
from tests._scripted_replies import chat_ok, registry, sse

pytestmark = pytest.mark.anyio

D = Deployment


def hedged(clock: FakeClock, hedge: Hedge, *members: Deployment, **kw: Any) -> Router:
    return Router(
        {"g": list(members)},
        strategy="priority",
        hedge=hedge,
        clock=clock,
        sleep=Sleeps(clock),
        **kw,
    )


async def test_the_first_answer_wins_and_the_loser_is_cancelled() -> None:
    clock = FakeClock()
    seen: dict[str, bool] = {}

    async def stuck(request: httpx.Request) -> httpx.Response:
        try:
            await anyio.sleep_forever()
        finally:
            seen["cancelled"] = True
        raise AssertionError("unreachable")

    router = hedged(clock, Hedge(after=0.5), D("slow/m"), D("fast/m"))
    pipe = Pipeline(
        [router, ErrorMapping()], registry=registry(slow=stuck, fast=lambda r: chat_ok())
    )
    response = await pipe.acompletion("g", HI)
    assert response.provider == "fast"
    assert seen == {"cancelled": True}
    assert response.attempts == (
        Attempt("slow", "m", "Cancelled", "slow/m"),
        Attempt("fast", "m", None, "fast/m"),
    )
    assert {d.in_flight for d in router.snapshot().deployments.values()} == {0}


async def test_streams_race_to_the_first_chunk_and_the_losing_stream_is_closed() -> None:
    clock = FakeClock()
    closed: list[bool] = []

    async def stalled() -> AsyncIterator[bytes]:
        try:
            await anyio.sleep_forever()
            yield b""
        finally:
            closed.append(True)

    def stuck(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stalled())

    router = hedged(clock, Hedge(after=1.0), D("slow/m"), D("fast/m"))
    pipe = Pipeline(
        [router, ErrorMapping()], registry=registry(slow=stuck, fast=lambda r: sse("hi"))
    )
    stream = await pipe.acompletion("g", HI, stream=True)
    assert closed == [True]  # the loser's body closed before the winner is handed over
    contents = [c.choices[0].delta.content async for c in stream]
    assert contents[0] == "hi"
    assert stream.provider == "fast"
    assert {d.in_flight for d in router.snapshot().deployments.values()} == {0}


async def held_until_released(
    router: Router, terminal: Terminal, gate: anyio.Event, **kw: Any
) -> Any:
    """Run one request; if it is still waiting once everything else is blocked, let the
    primary answer (no hedge went out to win for it)."""
    results: list[Any] = []

    async def one() -> None:
        results.append(await router(build(router, **kw), terminal))

    async with anyio.create_task_group() as group:
        group.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    return results[0]


async def test_hedges_respect_their_budget() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.5, min_per_second=0.0, clock=clock)
    router = hedged(clock, Hedge(after=0.5, budget=budget), D("a/m"), D("b/m"))
    winners = []
    for _ in range(4):
        gate = anyio.Event()
        terminal = Terminal(a__m=held(gate, "primary"), b__m=answer("hedge"))
        response = await held_until_released(router, terminal, gate)
        winners.append(response.choices[0].message.content)
    # Half a hedge per request: the 2nd and 4th may hedge, the 1st and 3rd may not.
    assert winners == ["primary", "hedge", "primary", "hedge"]


async def test_requests_with_tools_are_not_hedged_unless_allowed() -> None:
    tools = [{"type": "function", "function": {"name": "act", "parameters": {}}}]
    for allowed, expected in ((False, "primary"), (True, "hedge")):
        clock = FakeClock()
        router = hedged(clock, Hedge(after=0.0, tools=allowed), D("a/m"), D("b/m"))
        gate = anyio.Event()
        terminal = Terminal(a__m=held(gate, "primary"), b__m=answer("hedge"))
        response = await held_until_released(router, terminal, gate, tools=tools)
        assert response.choices[0].message.content == expected


async def test_with_one_deployment_the_copy_goes_to_the_same_target() -> None:
    clock = FakeClock()
    gate = anyio.Event()
    router = hedged(clock, Hedge(after=0.2), D("a/m"))
    terminal = Terminal(a__m=[held(gate, "primary"), answer("copy")])
    response = await router(build(router), terminal)
    assert response.choices[0].message.content == "copy"  # type: ignore[union-attr]
    assert terminal.calls == ["a/m", "a/m"]
    assert [x.error for x in response.attempts] == ["Cancelled", None]


async def test_p95_waits_for_samples_then_uses_the_targets_own_latency() -> None:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    router = Router(
        {"g": [D("a/m")]},
        hedge=Hedge(after="p95", min_samples=20),
        clock=clock,
        sleep=sleeps,
    )
    latencies = [0.1 * (i + 1) for i in range(20)]
    for seconds in latencies:
        await router(build(router), Terminal(a__m=timed(clock, seconds, answer())))
    assert sleeps.waits == []  # no hedging until there are 20 samples
    await router(build(router), Terminal(a__m=timed(clock, 0.1, answer())))
    expected = statistics.quantiles(latencies, n=20, method="inclusive")[-1]
    assert sleeps.waits == [pytest.approx(expected)]
