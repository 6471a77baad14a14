"""The State protocol's contract, operation by operation. Every implementation
must pass these: MemoryState, and RedisState on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from middlewares.state import WINDOW_STEPS, Grant, MemoryState, Policy, RedisState, State

pytestmark = pytest.mark.anyio

BREAKER = Policy(min_requests=3, failure_ratio=0.5, cooldown=30.0)


@pytest.fixture(params=["MemoryState", "RedisState"])
async def state(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[State]:
    if request.param == "MemoryState":
        yield MemoryState()
        return
    shared = RedisState(request.getfixturevalue("redis_url"), prefix=redis_prefix)
    yield shared
    await shared.aclose()


async def take(state: State, policy: Policy, now: float, cost: int = 1, key: str = "d") -> Grant:
    grant = await state.acquire(key, policy, cost, now)
    assert grant.ok, grant
    return grant


async def test_concurrency_is_a_slot_released_once(state: State) -> None:
    policy = Policy(max_concurrency=2)
    first = await take(state, policy, 0.0)
    await take(state, policy, 0.0)
    refused = await state.acquire("d", policy, 1, 0.0)
    assert (refused.ok, refused.reason) == (False, "concurrency")
    assert refused.retry_after is not None and 0 < refused.retry_after <= 1
    assert state.in_flight("d") == 2
    await state.release(first, "success", 0.1)
    assert state.in_flight("d") == 1
    await take(state, policy, 0.1)


async def test_rpm_is_never_exceeded_over_any_window_and_says_when_a_slot_frees(
    state: State,
) -> None:
    policy = Policy(rpm=3, window=60.0)
    for t in (0.5, 10.0, 20.0):
        await state.release(await take(state, policy, t), "success", t)
    refused = await state.acquire("d", policy, 1, 30.0)
    assert (refused.ok, refused.reason) == (False, "rpm")
    assert refused.retry_after is not None
    step = 60.0 / WINDOW_STEPS
    # The call at 0.5 leaves the window once its whole bucket is more than a window old.
    assert refused.retry_after == pytest.approx(61 * step - 30.0)
    assert not (await state.acquire("d", policy, 1, 60.4)).ok  # 59.9 s after: still counted
    assert (await state.acquire("d", policy, 1, 30.0 + refused.retry_after)).ok
    assert state.view("d", policy, 61.0).rpm_used == 3


async def test_tpm_counts_the_estimate_then_the_real_usage(state: State) -> None:
    policy = Policy(tpm=1000)
    grant = await take(state, policy, 0.0, cost=900)
    refused = await state.acquire("d", policy, 200, 1.0)
    assert (refused.ok, refused.reason) == (False, "tpm")
    await state.release(grant, "success", 1.0, tokens=100)  # it used far less
    assert state.view("d", policy, 1.0).tpm_used == 100
    await take(state, policy, 1.0, cost=200)
    never = await state.acquire("d", policy, 5000, 1.0)
    assert (never.ok, never.retry_after) == (False, None)  # alone over the limit: never fits


async def failures(state: State, policy: Policy, now: float, n: int, **kw: float | None) -> None:
    for _ in range(n):
        await state.release(await take(state, policy, now), "failure", now, **kw)  # type: ignore[arg-type]


async def test_the_breaker_needs_min_requests_and_the_ratio(state: State) -> None:
    await failures(state, BREAKER, 0.0, 1)
    assert state.view("d", BREAKER, 0.0).breaker == "closed"  # one failure of one request
    for _ in range(2):
        await state.release(await take(state, BREAKER, 0.0), "success", 0.0)
    await failures(state, BREAKER, 0.0, 1)
    assert state.view("d", BREAKER, 0.0).breaker == "open"  # 2 of 4 failed


async def test_ignored_outcomes_never_count(state: State) -> None:
    for _ in range(10):
        await state.release(await take(state, BREAKER, 0.0), "ignored", 0.0)
    assert state.view("d", BREAKER, 0.0).breaker == "closed"


async def test_open_lasts_the_longer_of_cooldown_and_retry_after(state: State) -> None:
    await failures(state, BREAKER, 100.0, 3, retry_after=120.0)
    view = state.view("d", BREAKER, 100.0)
    assert (view.breaker, view.reopens_at) == ("open", 220.0)
    refused = await state.acquire("d", BREAKER, 1, 200.0)
    assert (refused.ok, refused.reason, refused.retry_after) == (False, "breaker", 20.0)


async def test_a_later_failure_extends_and_never_shortens(state: State) -> None:
    held = [await take(state, BREAKER, 0.0) for _ in range(5)]
    for grant in held[:3]:
        await state.release(grant, "failure", 0.0, retry_after=100.0)
    assert state.view("d", BREAKER, 0.0).reopens_at == 100.0
    await state.release(held[3], "failure", 10.0)  # cooldown 30 from 10: earlier, ignored
    assert state.view("d", BREAKER, 10.0).reopens_at == 100.0
    await state.release(held[4], "failure", 90.0)  # 90 + 30 = 120: later, taken
    assert state.view("d", BREAKER, 90.0).reopens_at == 120.0


async def test_half_open_lets_exactly_one_probe_through(state: State) -> None:
    await failures(state, BREAKER, 0.0, 3)
    assert state.view("d", BREAKER, 30.0).breaker == "half_open"
    probe = await take(state, BREAKER, 30.0)
    assert probe.probe
    second = await state.acquire("d", BREAKER, 1, 30.0)
    assert (second.ok, second.reason) == (False, "breaker")
    await state.release(probe, "ignored", 31.0)  # cancelled: the turn goes back
    probe = await take(state, BREAKER, 31.0)
    await state.release(probe, "failure", 32.0)
    assert state.view("d", BREAKER, 32.0).reopens_at == 62.0  # open again, from now
    probe = await take(state, BREAKER, 62.0)
    await state.release(probe, "success", 63.0)
    assert state.view("d", BREAKER, 63.0).breaker == "closed"
    await take(state, BREAKER, 63.0)
    await take(state, BREAKER, 63.0)


async def test_latency_is_a_peak_ewma_that_decays_when_idle(state: State) -> None:
    policy = Policy(decay=10.0)
    assert state.latency("d", policy, 0.0) == 0.0  # no sample yet
    await state.release(await take(state, policy, 0.0), "success", 0.0, latency=0.2)
    assert state.latency("d", policy, 0.0) == pytest.approx(0.2)
    await state.release(await take(state, policy, 1.0), "success", 1.0, latency=2.0)
    assert state.latency("d", policy, 1.0) == pytest.approx(2.0)  # a peak is taken at once
    assert state.latency("d", policy, 11.0) == pytest.approx(2.0 / 2.718281828, rel=1e-3)
    await state.release(await take(state, policy, 11.0), "success", 11.0, latency=0.2)
    assert 0.2 < state.latency("d", policy, 11.0) < 2.0 / 2.718281828
    assert state.view("d", policy, 11.0).latency == state.latency("d", policy, 11.0)
