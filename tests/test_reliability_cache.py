"""Cache defaults that do not surprise, hits that say where they came from, and single-flight
waiters that each raise their own error.

- Without being asked, only answers that do not sample are cached: a chat completion at
  ``temperature=0``, embeddings, speech; never a sampled chat completion or an image.
- ``MemoryCache()`` entries live an hour.
- A fallback's answer served from the cache keeps its provider and its path (``attempts``).
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from middlewares import Cache, ErrorMapping, MemoryCache, Retry
from middlewares.cache import DEFAULT_TTL, CachedStream
from pipeline import Attempt, Pipeline, Stream, errors
from providers import ProviderRegistry, Script, echo_handler, mock_provider
from tests._scripted_replies import HI, failure
from tests.test_cache import Upstream

pytestmark = pytest.mark.anyio


def default_pipeline(upstream: Upstream, **options: Any) -> Pipeline:
    registry = ProviderRegistry([mock_provider("mock", upstream)])
    return Pipeline.default(registry=registry, logging=False, **options)


# -- what is cached without asking ------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "cached"),
    [
        ({}, False),  # providers sample at temperature 1 unless told otherwise
        ({"temperature": 0.7}, False),
        ({"temperature": 0}, True),
        ({"temperature": 0.0, "seed": 3}, True),
        ({"cache": True}, True),  # asked
        ({"temperature": 0.7, "cache": {"ttl": 60}}, True),  # asked, with options
        ({"temperature": 0, "cache": False}, False),
    ],
)
async def test_the_default_stack_caches_a_chat_answer_only_when_it_does_not_sample(
    params: dict[str, Any], cached: bool
) -> None:
    upstream = Upstream()
    pipe = default_pipeline(upstream)
    first = await pipe.acompletion("mock/m", HI, **params)
    again = await pipe.acompletion("mock/m", HI, **params)
    assert (upstream.calls, again.cache_hit) == ((1, True) if cached else (2, False))
    assert not first.cache_hit


async def test_a_sampled_stream_is_not_replayed_without_asking() -> None:
    upstream = Upstream()
    pipe = default_pipeline(upstream)
    for _ in range(2):
        stream = await pipe.acompletion("mock/m", HI, stream=True)
        async with stream:
            async for _chunk in stream:
                pass
        assert not stream.cache_hit
    assert upstream.calls == 2


async def test_embeddings_and_speech_are_cached_images_are_not() -> None:
    upstream = Upstream()
    pipe = default_pipeline(upstream)
    for _ in range(2):
        await pipe.aembedding("mock/e", ["a"])
        await pipe.aspeech("mock/s", "hello")
        await pipe.aimage_generation("mock/i", "a fox")
    assert upstream.calls == 4  # one embedding, one speech, two images


async def test_cache_sampled_true_caches_sampled_answers_too() -> None:
    upstream = Upstream()
    pipe = default_pipeline(upstream, cache=Cache(sampled=True))
    await pipe.acompletion("mock/m", HI)
    assert (await pipe.acompletion("mock/m", HI)).cache_hit
    assert upstream.calls == 1


async def test_memory_cache_entries_live_an_hour_by_default() -> None:
    now = [0.0]
    store = MemoryCache(clock=lambda: now[0])
    await store.set("k", "v")
    now[0] = DEFAULT_TTL - 1
    assert await store.get("k") == "v"
    now[0] = DEFAULT_TTL + 1
    assert await store.get("k") is None
    assert DEFAULT_TTL == 3600
    assert "ttl=3600.0" in repr(Pipeline.default().middlewares)


# -- a hit says where its answer came from --------------------------------------------------------


def falling_back(primary: Script, backup: Script) -> Pipeline:
    registry = ProviderRegistry([mock_provider("a", primary), mock_provider("b", backup)])
    return Pipeline.default(registry=registry, fallbacks=["b/m"], retry=Retry(attempts=1))


EXPECTED_PATH = (Attempt("a", "m", "ServiceUnavailableError"), Attempt("b", "m"))


async def test_a_fallbacks_answer_served_from_the_cache_still_shows_the_fallback() -> None:
    primary = Script(failure(503))
    backup = Script(echo_handler)
    pipe = falling_back(primary, backup)
    fresh = await pipe.acompletion("a/m", HI, temperature=0)
    with capture_logs() as logs:
        hit = await pipe.acompletion("a/m", HI, temperature=0)
    assert fresh.attempts == EXPECTED_PATH and not fresh.cache_hit
    assert hit.cache_hit
    assert (hit.provider, hit.attempts) == ("b", EXPECTED_PATH)
    event = next(e for e in logs if e["event"] == "llm.request")
    assert (event["served_by"], event["attempts"], event["cache_hit"]) == ("b/m", 2, True)


async def test_a_fallbacks_stream_replayed_from_the_cache_still_shows_the_fallback() -> None:
    primary = Script(failure(503))
    backup = Script(echo_handler)
    pipe = falling_back(primary, backup)
    for _ in range(2):
        stream = await pipe.acompletion("a/m", HI, stream=True, cache=True)
        async with stream:
            async for _chunk in stream:
                pass
    assert stream.cache_hit
    assert (stream.provider, stream.attempts) == ("b", EXPECTED_PATH)
    assert len(backup.requests) == 1
    cache = next(layer for layer in pipe.middlewares if isinstance(layer, Cache))
    assert isinstance(cache.backend, MemoryCache)
    key = cache.key(pipe.request("chat", "a/m", messages=HI, stream=True, cache=True))
    assert key is not None
    stored = await cache.backend.get(key)
    assert isinstance(stored, CachedStream) and stored.attempts == EXPECTED_PATH


# -- single-flight waiters each raise their own copy ----------------------------------------------


async def test_single_flight_waiters_each_raise_their_own_copy_chained_to_the_original() -> None:
    gate = anyio.Event()

    async def slow_failure(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return failure(429, "slow down", headers={"retry-after": "7"})

    pipe = Pipeline(
        [Cache(MemoryCache(), sampled=True), ErrorMapping()],
        registry=ProviderRegistry([mock_provider("mock", slow_failure)]),
    )
    raised: list[errors.RateLimitError] = []

    async def one() -> None:
        try:
            await pipe.acompletion("mock/m", HI)
        except errors.RateLimitError as exc:
            raised.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert len(raised) == 5 and len({id(e) for e in raised}) == 5
    original = next(e for e in raised if not isinstance(e.__cause__, errors.RateLimitError))
    waiters = [e for e in raised if e is not original]
    assert all(e.__cause__ is original for e in waiters)
    assert all(
        (str(e), e.retry_after, e.status_code, e.provider) == (str(original), 7.0, 429, "mock")
        for e in waiters
    )
    # Tracebacks and paths are each waiter's own: recording on one leaves the others alone.
    waiters[0].attempts = (Attempt("mock", "m", "RateLimitError"),) * 3
    assert all(e.attempts == () for e in [original, *waiters[1:]])
    assert len({id(e.__traceback__) for e in raised}) == 5


async def test_a_replayed_stream_is_a_stream() -> None:
    pipe = default_pipeline(Upstream())
    for _ in range(2):
        stream = await pipe.acompletion("mock/m", HI, stream=True, temperature=0)
        assert isinstance(stream, Stream)
        async with stream:
            text = [c.choices[0].delta.content async for c in stream if c.choices]
    assert stream.cache_hit and "".join(t or "" for t in text) == "echo: hi"
