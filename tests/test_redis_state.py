"""RedisState under the Router on a real redis-server: two routers over one Redis
behave as two processes do (one set of limits, one breaker, one latency), slots
of a dead process expire, a Redis that is out hands over to local state, and
nothing stored holds a key. (The same contract as MemoryState is checked
operation by operation in test_router_state.py; four real processes in
test_redis_processes.py.)"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from middlewares import CircuitBreaker, Deployment, Router
from middlewares.shared import SharedRedis
from middlewares.state import Policy, RedisState
from pipeline import errors
from tests._redis import RedisServer, stored
from tests._routing import FakeClock, Terminal, answer, build, timed

pytestmark = pytest.mark.anyio

D = Deployment
SECRET = "sk-deployment-secret-0123456789"


def routers(url: str, prefix: str, groups: dict[str, Any], clock: Any, **kw: Any) -> list[Router]:
    """Two routers, each with its own RedisState over one Redis: as two processes. (A
    generous timeout: on a busy machine these must not fall back to local state.)"""
    return [
        Router(
            groups,
            state=RedisState(SharedRedis(url, timeout=5.0), prefix=prefix),
            clock=clock,
            **kw,
        )
        for _ in range(2)
    ]


async def close(*routers: Router) -> None:
    for router in routers:
        await router.state.redis.aclose()  # type: ignore[attr-defined]


async def crowd(routers: list[Router], terminal: Terminal, n: int, **params: Any) -> list[Any]:
    outcomes: list[Any] = []

    async def one(router: Router) -> None:
        try:
            outcomes.append(await router(build(router, **params), terminal))
        except errors.DispatchError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for i in range(n):
            group.start_soon(one, routers[i % len(routers)])
    return outcomes


async def slow_answer(request: Any) -> Any:
    await anyio.sleep(0.001)  # let the others interleave
    return answer(total_tokens=100)


async def test_rpm_holds_across_routers_under_200_concurrent_requests(
    redis_url: str, redis_prefix: str
) -> None:
    both = routers(
        redis_url, redis_prefix, {"g": [D("a/m", rpm=50), D("b/m", rpm=70)]}, FakeClock()
    )
    terminal = Terminal(default=slow_answer)
    outcomes = await crowd(both, terminal, 200)
    assert terminal.counts == {"a/m": 50, "b/m": 70}
    refused = [o for o in outcomes if isinstance(o, errors.RateLimitError)]
    assert len(refused) == 80 and all(0 < e.retry_after <= 61 for e in refused)  # type: ignore[operator]
    await close(*both)


async def test_tpm_holds_across_routers_with_the_real_usage_counted(
    redis_url: str, redis_prefix: str
) -> None:
    # max_tokens=95 estimates 100 tokens a call; each answer reports 10.
    both = routers(redis_url, redis_prefix, {"g": [D("a/m", tpm=1000)]}, FakeClock())
    terminal = Terminal(default=lambda request: answer(total_tokens=10))
    for i in range(60):  # 60 x 100 estimated would not fit; 60 x 10 used does
        await both[i % 2](build(both[0], max_tokens=95), terminal)
    shared = await both[1].asnapshot()
    assert shared.deployments["a/m"].tpm_used == 600
    assert shared.deployments["a/m"].rpm_used == 60
    await close(*both)


async def test_a_breaker_opened_by_one_is_honoured_by_the_other_and_expires_on_time(
    redis_url: str, redis_prefix: str
) -> None:
    clock = FakeClock()
    first, second = routers(
        redis_url,
        redis_prefix,
        {"g": [D("a/m"), D("b/m")]},
        clock,
        strategy="priority",
        breaker=CircuitBreaker(min_requests=5, failure_ratio=0.5, cooldown=30.0),
    )
    failing = Terminal(a__m=errors.InternalServerError("down"))
    for _ in range(5):
        assert (await first(build(first), failing)).provider == "b"
    healthy = Terminal()
    for _ in range(5):  # the second never saw a failure, yet sends nothing to a
        assert (await second(build(second), healthy)).provider == "b"
    assert healthy.calls == ["b/m"] * 5
    view = (await second.asnapshot()).deployments["a/m"]
    assert (view.breaker, view.reopens_at) == ("open", 1030.0)
    clock.now = 1030.0  # the cooldown is over everywhere: one probe, from whoever asks first
    assert (await second(build(second), healthy)).provider == "a"
    assert (await first.asnapshot()).deployments["a/m"].breaker == "closed"
    await close(first, second)


async def test_the_shared_view_and_this_process_view(redis_url: str, redis_prefix: str) -> None:
    clock = FakeClock()
    first, second = routers(
        redis_url, redis_prefix, {"g": [D("a/m", rpm=100)]}, clock, strategy="latency"
    )
    terminal = Terminal(default=timed(clock, 0.5, answer()))
    for _ in range(3):
        await first(build(first), terminal)
    mine = second.snapshot().deployments["a/m"]  # nothing asked of Redis yet
    assert (mine.rpm_used, mine.latency) == (0, None)
    shared = (await second.asnapshot()).deployments["a/m"]
    assert shared.rpm_used == 3
    assert shared.latency == pytest.approx(0.5, rel=0.01)  # the latency estimate is shared
    assert shared.to_dict() == (await first.asnapshot()).deployments["a/m"].to_dict()
    await close(first, second)


async def test_slots_of_a_process_that_died_expire(redis_url: str, redis_prefix: str) -> None:
    policy = Policy(max_concurrency=1)
    dead = RedisState(redis_url, prefix=redis_prefix, lease=5.0)
    await dead.acquire("d", policy, 1, 100.0)  # taken, never released: the process died
    await dead.aclose()
    alive = RedisState(redis_url, prefix=redis_prefix)
    refused = await alive.acquire("d", policy, 1, 104.0)
    assert (refused.ok, refused.reason) == (False, "concurrency")
    assert (await alive.acquire("d", policy, 1, 105.5)).ok  # its lease ran out
    await alive.aclose()


async def test_a_redis_that_is_out_hands_over_to_local_state_then_back(
    own_redis: RedisServer,
) -> None:
    redis = SharedRedis(own_redis.url, retry_interval=0.1)
    router = Router({"g": [D("a/m", rpm=5)]}, state=RedisState(redis), clock=FakeClock())
    terminal = Terminal()
    for _ in range(2):
        await router(build(router), terminal)
    own_redis.stop()
    with capture_logs() as logs:
        outcomes = [await crowd([router], terminal, 1) for _ in range(8)]
    served = [o for (o,) in outcomes if not isinstance(o, errors.DispatchError)]
    assert len(served) == 5  # the local state enforces the limit meanwhile
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["layer"]) for e in warnings] == [("redis.unavailable", "state")]
    own_redis.start()  # empty: nothing was saved
    await anyio.sleep(0.15)
    with capture_logs():
        await router(build(router), terminal)
        shared = (await router.asnapshot()).deployments["a/m"]
    assert shared.rpm_used == 1  # counted in Redis again
    await redis.aclose()


async def test_nothing_stored_holds_a_key_or_a_pickle(redis_url: str, redis_prefix: str) -> None:
    router = Router(
        {"g": [D("a/m", api_key=SECRET, rpm=10, tpm=10_000)]},
        state=RedisState(redis_url, prefix=redis_prefix),
        clock=FakeClock(),
    )
    terminal = Terminal(default=timed(FakeClock(), 0.1, answer()))
    for _ in range(3):
        await router(build(router), terminal)
    values = await stored(redis_url, redis_prefix)
    assert len(values) >= 3
    for key, value in values.items():
        assert key.startswith(f"{redis_prefix}:state:".encode())
        assert SECRET.encode() not in key + value
        assert not value.startswith(b"\x80")
    await router.state.aclose()  # type: ignore[attr-defined]


def test_bad_options_are_refused(redis_url: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        RedisState(redis_url, prefix="")
    with pytest.raises(ValueError, match="lease"):
        RedisState(redis_url, lease=0)
    with pytest.raises(TypeError):
        RedisState(None)  # type: ignore[arg-type]
