"""The circuit breaker through the Router: what opens it, how long it stays open,
the half-open probe, and what never counts (LiteLLM's cooldown bugs, pinned)."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import pytest

from middlewares import CircuitBreaker, Deployment, Router
from middlewares.router import NO_CAPACITY
from pipeline import errors
from tests._routing import FakeClock, Terminal, answer, build, held

pytestmark = pytest.mark.anyio

D = Deployment


def primary_and_backup(clock: FakeClock, **kw: Any) -> Router:
    """``a`` first while it is available (priority strategy), ``b`` otherwise."""
    kw.setdefault("breaker", CircuitBreaker(min_requests=5, failure_ratio=0.5, cooldown=30.0))
    kw.setdefault("strategy", "priority")
    return Router({"g": [D("a/m"), D("b/m")]}, clock=clock, **kw)


def state_of(router: Router, name: str = "a/m") -> str:
    return router.snapshot().deployments[name].breaker


async def test_one_failure_in_one_request_does_not_open_it() -> None:
    router = primary_and_backup(FakeClock())
    terminal = Terminal(a__m=[errors.InternalServerError("blip")])
    response = await router(build(router), terminal)
    assert response.provider == "b"  # failed over
    assert state_of(router) == "closed"
    await router(build(router), terminal)
    assert terminal.calls == ["a/m", "b/m", "a/m"]


@pytest.mark.parametrize(
    "failure",
    [
        errors.InternalServerError("500"),
        errors.ServiceUnavailableError("503"),
        errors.APIConnectionError("refused"),
        errors.TimeoutError("slow"),
        errors.AuthenticationError("bad key"),
        errors.NotFoundError("no such deployment"),
    ],
)
async def test_repeated_failures_open_it(failure: errors.DispatchError) -> None:
    router = primary_and_backup(FakeClock())
    terminal = Terminal(a__m=failure)
    for _ in range(5):
        assert (await router(build(router), terminal)).provider == "b"
    assert state_of(router) == "open"
    for _ in range(10):
        await router(build(router), terminal)
    assert terminal.counts["a/m"] == 5  # not called while open


async def test_a_429_with_retry_after_keeps_it_open_at_least_that_long() -> None:
    clock = FakeClock()
    router = primary_and_backup(clock)
    terminal = Terminal(a__m=errors.RateLimitError("slow down", retry_after=120.0))
    for _ in range(5):
        await router(build(router), terminal)
    opened = clock.now
    assert router.snapshot().deployments["a/m"].reopens_at == opened + 120.0  # not cooldown's 30
    clock.now = opened + 119.0
    await router(build(router), terminal)
    assert terminal.counts["a/m"] == 5
    clock.now = opened + 120.0
    terminal.scripts["a/m"] = answer()
    assert (await router(build(router), terminal)).provider == "a"  # the probe
    assert state_of(router) == "closed"


async def test_a_later_failure_extends_the_cooldown_and_never_shortens_it() -> None:
    clock = FakeClock()
    router = Router(
        {"g": [D("a/m")]},
        breaker=CircuitBreaker(min_requests=5, failure_ratio=0.5, cooldown=30.0),
        clock=clock,
    )
    calls: list[tuple[anyio.Event, list[BaseException]]] = []

    async def held(request: Any) -> Any:
        call: tuple[anyio.Event, list[BaseException]] = (anyio.Event(), [])
        calls.append(call)
        await call[0].wait()
        raise call[1][0]

    async def fail(index: int, error: BaseException) -> None:
        calls[index][1].append(error)
        calls[index][0].set()
        await anyio.wait_all_tasks_blocked()

    start = clock.now
    async with anyio.create_task_group() as group:
        for _ in range(7):
            group.start_soon(_swallow, router, Terminal(a__m=held))
        await anyio.wait_all_tasks_blocked()
        for index in range(5):
            await fail(index, errors.RateLimitError("slow down", retry_after=100.0))
        assert router.snapshot().deployments["a/m"].reopens_at == start + 100.0
        clock.now = start + 10.0
        await fail(5, errors.InternalServerError("late"))  # 10 + 30 is earlier: kept at 100
        assert router.snapshot().deployments["a/m"].reopens_at == start + 100.0
        clock.now = start + 90.0
        await fail(6, errors.InternalServerError("later"))  # 90 + 30 is later: moved to 120
        assert router.snapshot().deployments["a/m"].reopens_at == start + 120.0


async def _swallow(router: Router, terminal: Terminal) -> None:
    with contextlib.suppress(errors.DispatchError):
        await router(build(router), terminal)


async def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    router = primary_and_backup(clock)
    terminal = Terminal(a__m=errors.InternalServerError("down"))
    for _ in range(5):
        await router(build(router), terminal)
    clock.now += 30.0
    gate = anyio.Event()
    terminal.scripts["a/m"] = held(gate)
    async with anyio.create_task_group() as group:
        group.start_soon(router, build(router), terminal)
        await anyio.wait_all_tasks_blocked()
        assert state_of(router) == "half_open"
        for _ in range(3):  # while the probe is out, the others go to b
            assert (await router(build(router), terminal)).provider == "b"
        gate.set()
    assert terminal.counts["a/m"] == 6
    assert state_of(router) == "closed"


@pytest.mark.parametrize(
    "harmless",
    [
        errors.BadRequestError("bad temperature"),
        errors.ContextWindowExceededError("too long"),
        errors.ContentPolicyViolationError("flagged"),
        errors.InvalidRequestError("malformed"),
        errors.BudgetExceededError(
            "spent", scope="deployment", spent=1.0, limit=1.0, resets_at=0.0
        ),
        errors.RateLimitError("no capacity", code=NO_CAPACITY),  # a router's own refusal
    ],
)
async def test_errors_that_never_count(harmless: errors.DispatchError) -> None:
    router = primary_and_backup(FakeClock())
    terminal = Terminal(a__m=harmless)
    for _ in range(20):
        await _swallow(router, terminal)
    assert terminal.counts["a/m"] == 20
    assert state_of(router) == "closed"


async def test_cancellations_never_count() -> None:
    router = primary_and_backup(FakeClock())

    async def hang(request: Any) -> Any:
        await anyio.sleep_forever()

    terminal = Terminal(a__m=hang)
    for _ in range(10):
        with anyio.move_on_after(0):
            await router(build(router), terminal)
    snap = router.snapshot().deployments["a/m"]
    assert (snap.breaker, snap.in_flight) == ("closed", 0)


async def test_the_routers_own_no_capacity_never_counts_against_a_deployment() -> None:
    clock = FakeClock()
    router = Router({"g": [D("a/m", rpm=2), D("b/m", rpm=2)]}, clock=clock)
    terminal = Terminal()
    for _ in range(4):
        await router(build(router), terminal)
    for _ in range(20):
        with pytest.raises(errors.RateLimitError) as caught:
            await router(build(router), terminal)
        assert caught.value.code == NO_CAPACITY
    assert {d.breaker for d in router.snapshot().deployments.values()} == {"closed"}
    clock.now += 61.0
    await router(build(router), terminal)
    assert len(terminal.calls) == 5
