"""Four worker processes sharing one real redis-server: what users of several gateway
workers or app replicas rely on. Two workers run on asyncio and two on trio, so
every run also checks that both kinds share one state.

Each worker is ``tests/_redis_worker.py``: Cache(RedisCache) -> Router(RedisState)
-> ErrorMapping -> a mock upstream counting its calls; all start at once.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from middlewares import Deployment, Router
from middlewares.state import RedisState
from tests._redis import RedisServer, stored
from tests._redis_worker import Workers, run_workers

SECRET = "sk-worker-secret-0123456789abcdef"  # the workers' deployment and per-call key


async def shared_view(
    url: str, prefix: str, *, rpm: int | None = None, tpm: int | None = None
) -> Any:
    """The deployment ``up/a`` as Redis holds it (the parent's own router asks)."""
    deployment = Deployment("up/a", rpm=rpm, tpm=tpm)
    router = Router({"g": [deployment]}, state=RedisState(url, prefix=prefix))
    try:
        return (await router.asnapshot()).deployments["up/a"]
    finally:
        await router.state.aclose()  # type: ignore[attr-defined]


async def assert_clean(url: str, prefix: str) -> None:
    values = await stored(url, prefix)
    assert values, "nothing was stored"
    for key, value in values.items():
        assert SECRET.encode() not in key + value
        assert not value.startswith(b"\x80")  # no pickle


def total(results: list[dict[str, Any]], field: str, model: str | None = None) -> int:
    if model is not None:
        return sum(r["upstream"].get(model, 0) for r in results)
    return sum(r[field] for r in results)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the parent only reads Redis
async def test_an_rpm_limit_holds_globally_and_is_used(redis_url: str, redis_prefix: str) -> None:
    results = run_workers(4, "limits", redis_url, redis_prefix, rpm=40, requests=25, concurrency=5)
    admitted = total(results, "ok")
    assert 0.95 * 40 <= admitted <= 40  # 100 asked for, 40 a minute allowed
    assert total(results, "refused") == 100 - admitted
    assert total(results, "", "a") == admitted  # the upstream saw exactly those
    assert (await shared_view(redis_url, redis_prefix, rpm=40)).rpm_used == admitted
    await assert_clean(redis_url, redis_prefix)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_tpm_limit_holds_globally_with_the_real_usage_counted(
    redis_url: str, redis_prefix: str
) -> None:
    # Each call reserves its estimate (max_tokens=20 and the prompt) and uses 10.
    results = run_workers(
        4, "limits", redis_url, redis_prefix, tpm=1000, requests=40, max_tokens=20, usage=10
    )
    used = total(results, "tokens")
    assert 0.95 * 1000 <= used <= 1000
    assert total(results, "ok") > 1000 / 25  # more than the estimates alone would admit
    view = await shared_view(redis_url, redis_prefix, tpm=1000)
    assert view.tpm_used == used  # the estimates were replaced by the real usage


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_breaker_opened_in_one_process_is_honoured_by_the_others(
    redis_url: str, redis_prefix: str
) -> None:
    common = {"backup": True, "cooldown": 3.0}
    # Every worker is started (and connected) before the breaker opens: the phases
    # below take only their requests' time, well within the cooldown.
    others = Workers(3, "breaker", redis_url, redis_prefix, requests=5, **common)
    after = Workers(3, "breaker", redis_url, redis_prefix, requests=3, **common)
    (opener,) = run_workers(1, "breaker", redis_url, redis_prefix, fail=["a"], requests=5, **common)
    assert opener["served"] == ["up/b"] * 5 and opener["upstream"]["a"] == 5
    opened = time.time()
    seen = others.go().results()
    view = await shared_view(redis_url, redis_prefix)
    assert time.time() < view.reopens_at, "too slow to check within the cooldown"
    assert view.breaker == "open" and view.reopens_at == pytest.approx(opened + 3.0, abs=1.0)
    assert all(r["served"] == ["up/b"] * 5 for r in seen)
    assert total(seen, "", "a") == 0  # not one call reached the open deployment
    await anyio.sleep(max(view.reopens_at - time.time(), 0.0) + 0.05)
    probed = after.go().results()
    assert total(probed, "", "a") >= 1  # on time everywhere: the probe went through
    assert (await shared_view(redis_url, redis_prefix)).breaker == "closed"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_cache_entry_written_by_one_is_a_hit_in_the_others(
    redis_url: str, redis_prefix: str
) -> None:
    (writer,) = run_workers(1, "cache", redis_url, redis_prefix)
    assert writer["hits"] == [False, False] and writer["upstream"] == {"a": 2}
    readers = run_workers(3, "cache", redis_url, redis_prefix)
    for reader in readers:
        assert reader["hits"] == [True, True] and reader["upstream"] == {}
        assert reader["content"] == writer["content"]
        assert reader["chunks"] == writer["chunks"] and len(reader["chunks"]) > 2
    await assert_clean(redis_url, redis_prefix)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_twenty_identical_requests_over_four_processes_make_one_upstream_call(
    redis_url: str, redis_prefix: str
) -> None:
    results = run_workers(4, "flight", redis_url, redis_prefix, requests=5, delay=0.5)
    assert total(results, "", "a") == 1
    assert [len(r["answered"]) for r in results] == [5, 5, 5, 5]
    assert {answer for r in results for answer in r["answered"]} == {"echo: hi"}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_stopping_redis_mid_run_degrades_and_restarting_it_resumes(
    own_redis: RedisServer, redis_prefix: str
) -> None:
    workers = Workers(
        4,
        "outage",
        own_redis.url,
        redis_prefix,
        rpm=100_000,
        duration=3.5,
        interval=0.05,
        retry_interval=0.2,
    ).go()
    await anyio.sleep(1.0)
    own_redis.stop()
    await anyio.sleep(1.0)
    own_redis.start()  # empty: nothing is saved
    results = workers.results()
    for result in results:
        assert result["failed"] == 0 and result["ok"] >= 20
        assert result["slowest"] < 1.0  # no request waited on the dead Redis
        assert result["warnings"] == {"cache": 1, "state": 1}  # one warning per layer
        assert result["recovered"] >= 1
    resumed = await shared_view(own_redis.url, redis_prefix, rpm=100_000)
    assert resumed.rpm_used is not None and resumed.rpm_used > 0  # counted in Redis again
    await assert_clean(own_redis.url, redis_prefix)
