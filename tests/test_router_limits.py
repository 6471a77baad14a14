"""Limits: rpm/tpm/max_concurrency under concurrency, slots released by streams and
cancellations, waiting for capacity, and prompts too big for a deployment."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from middlewares import CircuitBreaker, Deployment, ErrorMapping, Router
from middlewares.router import NO_CAPACITY
from pipeline import Pipeline, errors
from providers import Script
from tests._routing import HI, FakeClock, Sleeps, Terminal, answer, build, held
from tests._scripted_replies import chat_ok, registry, sse, sse_cut

pytestmark = pytest.mark.anyio

D = Deployment


async def crowd(router: Router, terminal: Terminal, n: int, **params: Any) -> list[Any]:
    """``n`` requests at once; each result or error, in completion order."""
    outcomes: list[Any] = []

    async def one() -> None:
        try:
            outcomes.append(await router(build(router, **params), terminal))
        except errors.DispatchError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(one)
    return outcomes


async def slow_answer(request: Any) -> Any:
    await anyio.lowlevel.checkpoint()  # let the others interleave
    return answer(total_tokens=100)


async def test_rpm_is_never_exceeded_under_200_concurrent_requests() -> None:
    router = Router({"g": [D("a/m", rpm=50), D("b/m", rpm=70)]}, clock=FakeClock())
    terminal = Terminal(default=slow_answer)
    outcomes = await crowd(router, terminal, 200)
    assert terminal.counts == {"a/m": 50, "b/m": 70}
    refused = [o for o in outcomes if isinstance(o, errors.DispatchError)]
    assert len(refused) == 80
    assert all(isinstance(e, errors.RateLimitError) and e.code == NO_CAPACITY for e in refused)
    assert all(e.retry_after is not None and 0 < e.retry_after <= 61 for e in refused)


async def test_tpm_is_never_exceeded_under_200_concurrent_requests() -> None:
    # "hi" and max_tokens=95 estimate 100 tokens; each answer reports 100.
    router = Router({"g": [D("a/m", tpm=1000), D("b/m", tpm=2000)]}, clock=FakeClock())
    terminal = Terminal(default=slow_answer)
    await crowd(router, terminal, 200, max_tokens=95)
    assert terminal.counts == {"a/m": 10, "b/m": 20}
    snap = router.snapshot().deployments
    assert (snap["a/m"].tpm_used, snap["b/m"].tpm_used) == (1000, 2000)


async def test_real_usage_replaces_the_estimate() -> None:
    router = Router({"g": [D("a/m", tpm=1000)]}, clock=FakeClock())
    terminal = Terminal(default=lambda request: answer(total_tokens=10))
    for _ in range(30):  # 30 x 100 estimated would not fit; 30 x 10 used does
        await router(build(router, max_tokens=95), terminal)
    assert router.snapshot().deployments["a/m"].tpm_used == 300


async def test_max_concurrency_holds_and_refuses_with_a_short_hint() -> None:
    router = Router({"g": [D("a/m", max_concurrency=3)]})
    gate = anyio.Event()

    terminal = Terminal(default=held(gate))
    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(router, build(router), terminal)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(errors.RateLimitError) as caught:
            await router(build(router), terminal)
        assert caught.value.retry_after is not None and caught.value.retry_after <= 1.0
        gate.set()
    assert router.snapshot().deployments["a/m"].in_flight == 0


def one_slot_pipeline(**scripts: Script) -> tuple[Pipeline, Router]:
    router = Router({"g": [D("a/m", max_concurrency=1)]})
    return Pipeline([router, ErrorMapping()], registry=registry(**scripts)), router


async def test_a_stream_holds_its_slot_until_it_ends_or_is_closed() -> None:
    pipe, router = one_slot_pipeline(a=Script(sse("x", "y"), sse("z"), chat_ok()))
    stream = await pipe.acompletion("g", HI, stream=True)
    assert router.snapshot().deployments["a/m"].in_flight == 1
    with pytest.raises(errors.RateLimitError):
        await pipe.acompletion("g", HI)
    async for _ in stream:
        pass
    assert router.snapshot().deployments["a/m"].in_flight == 0
    second = await pipe.acompletion("g", HI, stream=True)
    await second.aclose()  # closed before its end
    assert router.snapshot().deployments["a/m"].in_flight == 0
    assert (await pipe.acompletion("g", HI)).provider == "a"


async def test_a_cancelled_stream_releases_its_slot() -> None:
    gate = anyio.Event()

    async def stalled() -> Any:
        yield b'data: {"choices":[{"index":0,"delta":{"content":"first"}}]}\n\n'
        await gate.wait()  # never set: the stream stalls after its first chunk
        yield b"data: [DONE]\n\n"

    stall = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stalled())
    pipe, router = one_slot_pipeline(a=Script(stall, chat_ok()))
    with anyio.CancelScope() as scope:
        stream = await pipe.acompletion("g", HI, stream=True)
        async for _ in stream:
            scope.cancel()  # cancelled while waiting for the second chunk
    assert scope.cancelled_caught
    assert router.snapshot().deployments["a/m"].in_flight == 0
    assert (await pipe.acompletion("g", HI)).provider == "a"


async def test_a_cancelled_call_releases_its_slot() -> None:
    async def hang(request: Any) -> Any:
        await anyio.sleep_forever()

    router = Router({"g": [D("a/m", max_concurrency=1)]})
    with anyio.move_on_after(0.01):
        await router(build(router), Terminal(default=hang))
    assert router.snapshot().deployments["a/m"].in_flight == 0


async def test_when_every_deployment_is_cooling_wait_up_to_max_wait() -> None:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    breaker = CircuitBreaker(min_requests=1, failure_ratio=1.0, cooldown=30.0)
    terminal = Terminal(a__m=[errors.InternalServerError("down"), answer()])
    waiting = Router({"g": [D("a/m")]}, breaker=breaker, max_wait=60.0, clock=clock, sleep=sleeps)
    with pytest.raises(errors.InternalServerError):
        await waiting(build(waiting), terminal)  # opens the breaker
    assert (await waiting(build(waiting), terminal)).provider == "a"  # after 30 s, the probe
    assert sleeps.waits == [30.0]

    impatient = Router({"g": [D("a/m")]}, breaker=breaker, clock=clock, sleep=sleeps)
    terminal = Terminal(a__m=errors.InternalServerError("down"))
    with pytest.raises(errors.InternalServerError):
        await impatient(build(impatient), terminal)
    with pytest.raises(errors.RateLimitError) as caught:
        await impatient(build(impatient), terminal)
    assert caught.value.retry_after == 30.0
    assert caught.value.code == NO_CAPACITY
    assert len(terminal.calls) == 1 and sleeps.waits == [30.0]  # no waiting: max_wait=0


async def test_a_wait_longer_than_max_wait_fails_at_once() -> None:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    router = Router({"g": [D("a/m", rpm=1)]}, max_wait=5.0, clock=clock, sleep=sleeps)
    await router(build(router), Terminal())
    with pytest.raises(errors.RateLimitError) as caught:
        await router(build(router), Terminal())
    assert caught.value.retry_after is not None and caught.value.retry_after > 5.0
    assert sleeps.waits == []


async def test_a_prompt_too_big_for_a_deployment_skips_it() -> None:
    router = Router(
        {"g": [D("small/m", max_input_tokens=100), D("big/m", max_input_tokens=10_000)]}
    )
    terminal = Terminal()
    long = [{"role": "user", "content": "word " * 400}]  # about 500 tokens
    for _ in range(20):
        await router(build(router, messages=long), terminal)
    assert terminal.counts == {"big/m": 20}
    huge = [{"role": "user", "content": "word " * 20_000}]
    with pytest.raises(errors.ContextWindowExceededError, match="fits no deployment"):
        await router(build(router, messages=huge), terminal)
    assert len(terminal.calls) == 20  # refused before any call


async def test_a_context_window_error_moves_to_a_larger_window() -> None:
    router = Router(
        {
            "g": [
                D("a/m", max_input_tokens=8000),
                D("b/m", max_input_tokens=8000),
                D("c/m", max_input_tokens=128_000),
            ]
        },
        strategy="priority",
    )
    terminal = Terminal(a__m=errors.ContextWindowExceededError("too long"))
    assert (await router(build(router), terminal)).provider == "c"
    assert terminal.calls == ["a/m", "c/m"]  # b's window is no larger than a's


async def test_a_stream_that_breaks_midway_releases_its_slot_and_counts_as_a_failure() -> None:
    breaker = CircuitBreaker(min_requests=1, failure_ratio=1.0, cooldown=30.0)
    router = Router({"g": [D("a/m", max_concurrency=1)]}, breaker=breaker, clock=FakeClock())
    pipe = Pipeline([router, ErrorMapping()], registry=registry(a=Script(sse_cut("x", "y"))))
    stream = await pipe.acompletion("g", HI, stream=True)
    with pytest.raises(errors.APIConnectionError):
        async for _ in stream:
            pass
    snap = router.snapshot().deployments["a/m"]
    assert (snap.in_flight, snap.breaker) == (0, "open")
