"""The gateway's ``[redis]`` section: one SharedRedis for the cache, the router's state,
budgets and statistics; read strictly, its password never shown; kept across a
reload while unchanged; and ``dispatchline serve --workers 2`` over a real
redis-server, driven by the official openai SDK: one cache, one breaker and one
set of statistics for both workers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest

from gateway import ConfigError
from gateway._state import Gateway
from gateway.config import load_config
from middlewares import Budget, Cache, Router, Stats
from middlewares.cache import RedisCache
from middlewares.shared import SharedRedis
from middlewares.state import RedisState
from tests._fake_openai import UPSTREAM_KEY, FakeOpenAI
from tests._gateway_process import GatewayProcess, dispatchline
from tests._redis import RedisServer, stored

PASSWORD = "redis-pw-5up3r-s3cret"

SHARED = """
[redis]
url = "{url}"
prefix = "{prefix}"
timeout = 2.0

[router]
breaker = {{ min_requests = 2, failure_ratio = 0.5, cooldown = 60 }}

[[router.groups.chat]]
target = "openai/error-503"

[[router.groups.chat]]
target = "openai/gpt-4o-mini"
priority = 1

[providers.openai]
api_base = "{upstream}"
api_key = "{upstream_key}"

[middlewares]
retry = false
stats = true

[[middlewares.budgets]]
limit_usd = 100
"""


def write(folder: Path, text: str, **values: Any) -> Path:
    path = folder / "dispatchline.toml"
    defaults = {"upstream": "http://127.0.0.1:9/v1", "upstream_key": UPSTREAM_KEY}
    path.write_text(text.format(**{**defaults, **values}))
    return path


def layers(config: Any) -> dict[str, Any]:
    pipe = config.build_pipeline()
    found = {type(m).__name__: m for m in pipe.middlewares}
    return found


def test_one_redis_for_the_cache_router_budgets_and_stats(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SHARED, url="redis://127.0.0.1:6390/0", prefix="p1"))
    found = layers(config)
    cache, router, budget, stats = found["Cache"], found["Router"], found["Budget"], found["Stats"]
    assert isinstance(cache, Cache) and isinstance(cache.backend, RedisCache)
    assert isinstance(router, Router) and isinstance(router.state, RedisState)
    assert isinstance(budget, Budget) and isinstance(stats, Stats)
    redis = config.redis.redis if config.redis is not None else None
    assert isinstance(redis, SharedRedis)
    assert cache.backend.redis is router.state.redis is budget.redis is stats.redis is redis


def test_share_chooses_what_lives_in_redis(tmp_path: Path) -> None:
    text = SHARED.replace("timeout = 2.0", 'share = ["stats"]')
    found = layers(load_config(write(tmp_path, text, url="redis://127.0.0.1:6390/0", prefix="p")))
    assert not isinstance(found["Cache"].backend, RedisCache)
    assert not isinstance(found["Router"].state, RedisState)
    assert found["Budget"].redis is None and found["Stats"].redis is not None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('url = "http://u:{pw}@host/0"', "redis.url: url must be a redis://"),
        ('url = "redis://:{pw}@host/0"\npassword = "{pw}"', "redis.password: is given twice"),
        ('url = "redis://host/0"\nshare = ["cache", "queue"]', "'queue' is not one of"),
        ('url = "redis://host/0"\ntimeout = 0', "redis.timeout: expected a positive number"),
        ('url = "redis://host/0"\nprefix = "a b"', "redis.prefix"),
        ('url = "redis://host/0"\ndatabase = 2', "database"),
        ('password = "{pw}"', "redis.url: is required"),
        ('url = "redis://host/0"\n[middlewares]\ncache = {{ max_entries = 9 }}', "maxmemory"),
    ],
)
def test_bad_redis_sections_are_refused_naming_the_key_never_the_password(
    tmp_path: Path, section: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[redis]\n" + section.format(pw=PASSWORD) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value) and PASSWORD not in str(caught.value)


def test_the_password_comes_from_the_environment_and_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S2_REDIS_PASSWORD", PASSWORD)
    text = SHARED.replace("timeout = 2.0", 'password = "${{S2_REDIS_PASSWORD}}"')
    config = load_config(write(tmp_path, text, url="redis://127.0.0.1:6390/0", prefix="p"))
    assert config.redis is not None
    assert PASSWORD in config.redis.settings.url.reveal()  # sent to Redis, and shown nowhere:
    shown = [
        repr(config),
        repr(config.redis),
        repr(config.build_pipeline()),
        config.redis.redis.url,
    ]
    assert all(PASSWORD not in text for text in shown) and "***@" in config.redis.redis.url


@pytest.mark.anyio
async def test_a_reload_keeps_the_redis_connections_while_the_section_is_unchanged(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    path = write(tmp_path, SHARED, url=redis_url, prefix=redis_prefix)
    gateway = Gateway(config=load_config(path))
    async with gateway.running():
        first = gateway.current
        assert first.redis is not None
        stats = first.find(lambda m: isinstance(m, Stats))
        await gateway.reload()  # the same file
        assert gateway.current.redis is first.redis
        assert gateway.current.find(lambda m: isinstance(m, Stats)) is stats
        path.write_text(path.read_text().replace("timeout = 2.0", "timeout = 1.5"))
        await gateway.reload()
        assert gateway.current.redis is not first.redis  # new settings, new connections
        assert gateway.current.find(lambda m: isinstance(m, Stats)) is not stats
        assert isinstance(gateway.current.find(lambda m: isinstance(m, Router)).state, RedisState)


def test_check_config_says_where_state_is_shared_and_whether_redis_answers(
    tmp_path: Path, redis_url: str, redis_prefix: str, own_redis: RedisServer
) -> None:
    # (The test servers take any password: their default user has none.)
    url = redis_url.replace("redis://", f"redis://:{PASSWORD}@")
    output = _check_config(write(tmp_path, SHARED, url=url, prefix=redis_prefix))
    assert "redis: redis://***@127.0.0.1" in output and PASSWORD not in output
    assert "for budgets, cache, router, stats; answers" in output
    own_redis.stop()
    output = _check_config(write(tmp_path, SHARED, url=own_redis.url, prefix=redis_prefix))
    assert "not answering now" in output and "would start on local state" in output


def _check_config(path: Path) -> str:
    command = [*dispatchline(), "check-config", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr  # a Redis that is out: still valid
    return done.stdout + done.stderr


# -- two workers, one Redis --------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def fresh(gateway: GatewayProcess) -> openai.OpenAI:
    """A client whose every request has a connection of its own: each may reach
    either worker."""
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="unused",
        max_retries=0,
        default_headers={"connection": "close"},
    )


def test_two_workers_share_one_cache_one_breaker_and_one_set_of_statistics(
    upstream: FakeOpenAI, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    path = write(tmp_path, SHARED, url=redis_url, prefix=redis_prefix, upstream=upstream.base_url)
    with GatewayProcess(path, "--workers", "2") as gateway:
        assert _workers(gateway) == 2
        client = fresh(gateway)
        # The breaker: the first deployment fails (503) and the router fails over.
        # Opened after 2 failures in whichever worker, it keeps both workers away.
        for i in range(12):
            reply = client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"breaker {i}"}]
            )
            assert reply.choices[0].message.content
        assert len(upstream.seen("error-503")) == 2
        # The cache: one upstream call for ten identical requests, whichever worker answers.
        before = len(upstream.seen("gpt-4o-mini"))
        for _ in range(10):
            client.chat.completions.create(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": "cached"}],
                temperature=0,
            )
        assert len(upstream.seen("gpt-4o-mini")) == before + 1
        # The statistics: every worker's requests, whichever worker answers; the
        # seed's own counts, in the same answers, are each worker's: both answered.
        seen = anyio.run(_eventually_counted, gateway, 22)
        own = [seen["total_requests"] for seen in _asked(gateway, 20)]
        assert own != sorted(own), own  # two workers' counters, interleaved
        target = seen["targets"]["openai/gpt-4o-mini"]
        assert (target["requests"], target["successes"], target["cache_hits"]) == (22, 22, 9)
        assert seen["deployments"]["openai/gpt-4o-mini"]["requests"] == 12  # (each failed over)
        metrics = httpx.get(gateway.url + "/metrics").text
        assert 'dispatchline_cache_hits_total{model="gpt-4o-mini",provider="openai"} 9.0' in metrics
        log = gateway.log()
    assert UPSTREAM_KEY not in log
    for key, value in anyio.run(stored, redis_url, redis_prefix).items():
        assert UPSTREAM_KEY.encode() not in key + value
        assert not value.startswith(b"\x80")  # no pickle


def _asked(gateway: GatewayProcess, times: int) -> list[dict[str, Any]]:
    """``/api/v1/stats``, ``times`` times, each on a new connection."""
    return [httpx.get(gateway.url + "/api/v1/stats").json() for _ in range(times)]


async def _eventually_counted(gateway: GatewayProcess, requests: int) -> dict[str, Any]:
    """``/api/v1/stats`` once it counts ``requests`` (each worker sends its counts
    within a second), asked on new connections."""
    with anyio.fail_after(10):
        while True:
            async with httpx.AsyncClient() as client:
                seen: dict[str, Any] = (await client.get(gateway.url + "/api/v1/stats")).json()
            if sum(t["requests"] for t in seen["targets"].values()) == requests:
                return seen
            await anyio.sleep(0.1)


def _workers(gateway: GatewayProcess) -> int:
    """How many worker processes the gateway's supervisor runs (Linux /proc)."""
    assert gateway.process is not None
    pid = gateway.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    lines = [Path(f"/proc/{child}/cmdline").read_bytes() for child in children]
    return sum(1 for line in lines if b"spawn_main" in line)  # (not the resource tracker)
