"""SharedRedis, the client layer every Redis-backed layer uses: pools per event loop,
bounded operations, degradation with one warning per layer, automatic recovery."""

from __future__ import annotations

import gc
import time
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest
from structlog.testing import capture_logs

from middlewares.shared import RedisUnavailable, SharedRedis, script
from tests._redis import RedisServer

pytestmark = pytest.mark.anyio

INCR = script("return redis.call('INCR', KEYS[1])")


async def clients_named_dispatchline(url: str) -> int:
    probe = SharedRedis(url)
    try:
        listing: Any = await probe.user("probe", fallback="none").run(lambda c: c.client_list())
        return sum(1 for client in listing if client.get("name") == "dispatchline") - 1
    finally:
        await probe.aclose()


async def test_operations_and_scripts_run_and_the_pools_close(
    redis_url: str, redis_prefix: str
) -> None:
    redis = SharedRedis(redis_url)
    user = redis.user("test", fallback="nothing")
    key = f"{redis_prefix}:n"
    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(user.eval, INCR, [key], [])
    assert await user.run(lambda c: c.get(key)) == b"50"
    assert await clients_named_dispatchline(redis_url) >= 1
    await redis.aclose()
    await anyio.sleep(0.05)
    assert await clients_named_dispatchline(redis_url) == 0
    assert await user.eval(INCR, [key], []) == 51  # a closed one opens again on use
    await redis.aclose()


async def test_a_forgotten_one_closes_its_pools(redis_url: str, redis_prefix: str) -> None:
    """A pipeline rebuilt (a reload) and dropped without aclose leaks no connections."""
    redis = SharedRedis(redis_url)
    await redis.user("test", fallback="nothing").eval(INCR, [f"{redis_prefix}:n"], [])
    before = await clients_named_dispatchline(redis_url)
    del redis
    gc.collect()
    await anyio.sleep(0.1)
    assert before >= 1 and await clients_named_dispatchline(redis_url) == before - 1


async def test_one_object_serves_several_event_loops(
    redis_url: str, redis_prefix: str, anyio_backend: str
) -> None:
    """A pipeline may be used from several loops (its sync facade runs its own):
    each loop gets a pool of its own, and aclose closes them all."""
    other = "asyncio" if anyio_backend == "trio" else "trio"
    redis = SharedRedis(redis_url)
    user = redis.user("test", fallback="nothing")
    key = f"{redis_prefix}:n"
    await user.eval(INCR, [key], [])
    with anyio.from_thread.start_blocking_portal(other) as portal:
        assert await anyio.to_thread.run_sync(portal.call, user.eval, INCR, [key], []) == 2
        assert await clients_named_dispatchline(redis_url) >= 2
        await redis.aclose()  # the other loop's pool too, on its own loop
        await anyio.sleep(0.1)
        assert await clients_named_dispatchline(redis_url) == 0


async def test_a_stopped_redis_fails_fast_warns_once_per_layer_then_recovers(
    own_redis: RedisServer,
) -> None:
    redis = SharedRedis(own_redis.url, retry_interval=0.2)
    cache, state = redis.user("cache", fallback="a miss"), redis.user("state", fallback="local")
    await cache.run(lambda c: c.ping())
    own_redis.stop()
    with capture_logs() as logs:
        started = time.monotonic()
        for _ in range(20):
            for user in (cache, state):
                with pytest.raises(RedisUnavailable):
                    await user.run(lambda c: c.ping())
            await anyio.sleep(0.02)  # two retry intervals pass: Redis is tried again
        assert time.monotonic() - started < 2.0
        own_redis.start()
        deadline = time.monotonic() + 5
        while True:
            try:
                await cache.run(lambda c: c.ping())
                break
            except RedisUnavailable:
                assert time.monotonic() < deadline, "Redis never came back"
                await anyio.sleep(0.05)
    warnings = [e for e in logs if e["event"] == "redis.unavailable"]
    assert sorted((e["layer"], e["fallback"]) for e in warnings) == [
        ("cache", "a miss"),
        ("state", "local"),
    ]
    assert [e["event"] for e in logs if e["event"] == "redis.recovered"] == ["redis.recovered"]
    await redis.aclose()


async def test_a_hung_redis_costs_at_most_the_timeout(own_redis: RedisServer) -> None:
    redis = SharedRedis(own_redis.url, timeout=0.2, retry_interval=0.2)
    user = redis.user("test", fallback="nothing")
    await user.run(lambda c: c.set("k", b"v"))
    own_redis.pause()
    try:
        started = time.monotonic()
        with capture_logs(), pytest.raises(RedisUnavailable) as caught:
            await user.run(lambda c: c.get("k"))
        assert 0.15 < time.monotonic() - started < 1.0
        assert isinstance(caught.value.__cause__, TimeoutError)
        with pytest.raises(RedisUnavailable):  # within the retry interval: no I/O at all
            await user.run(lambda c: c.get("k"))
    finally:
        own_redis.resume()
    await anyio.sleep(0.25)
    with capture_logs():
        assert await user.run(lambda c: c.get("k")) == b"v"  # and replies stay in order
    await redis.aclose()


async def test_the_password_never_shows() -> None:
    redis = SharedRedis("redis://app:s3cret-pass@127.0.0.1:9/0", timeout=0.1)
    assert "s3cret" not in repr(redis) and "s3cret" not in redis.url
    with capture_logs() as logs, pytest.raises(RedisUnavailable) as caught:
        await redis.user("test", fallback="nothing").run(lambda c: c.ping())
    assert "s3cret" not in str(logs) and "s3cret" not in str(caught.value)
    await redis.aclose()


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("http://127.0.0.1:6379", {}),
        ("redis://127.0.0.1:6379", {"timeout": 0}),
        ("redis://127.0.0.1:6379", {"retry_interval": -1}),
        ("redis://127.0.0.1:6379", {"max_connections": 0}),
    ],
)
def test_bad_settings_are_refused_at_construction(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SharedRedis(url, **options)
