"""RedisCache on a real redis-server: entries as JSON (never pickle) that come back
whole, hits across pipelines (as across processes), single-flight across them,
a lock holder that dies, TTLs, and a Redis that is down."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import attrs
import httpx
import pytest
from structlog.testing import capture_logs

from middlewares.cache import Cache, CachedStream, RedisCache
from middlewares.cache._codec import decode, encode
from middlewares.shared import SharedRedis
from pipeline import (
    Attempt,
    ChatChunk,
    ChatResponse,
    EmbeddingResponse,
    ImageResponse,
    Pipeline,
    Response,
    SpeechResponse,
    Stream,
    TranscriptionResponse,
    Usage,
)
from pipeline.adapter import (
    Choice,
    ChunkChoice,
    Delta,
    Embedding,
    Function,
    FunctionDelta,
    Image,
    Message,
    ToolCall,
    ToolCallDelta,
)
from providers import echo_handler
from tests._redis import RedisServer, stored
from tests.test_cache import HI, Upstream, registry

pytestmark = pytest.mark.anyio

SECRET = "sk-live-DO-NOT-STORE-0123456789"
PATH = (Attempt("a", "m", "RateLimitError", "dep-a"), Attempt("b", "m", None, "dep-b"))


def every_kind() -> list[Any]:
    usage = Usage(
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        reasoning_tokens=2,
        cached_tokens=3,
        cache_write_tokens=4,
    )
    call = ToolCall(id="call_1", function=Function(name="f", arguments='{"x": 1}'))
    chat = ChatResponse(
        id="chatcmpl-1",
        created=7,
        model="m",
        provider="b",
        attempts=PATH,
        request_id="req-1",
        latency=0.25,
        choices=[
            Choice(
                index=0,
                message=Message(content="hi", reasoning_content="hm", tool_calls=[call]),
                finish_reason="tool_calls",
                logprobs={"content": [{"token": "hi", "logprob": -0.5, "top_logprobs": []}]},
            ),
            Choice(index=1, message=Message(content=None, refusal="no"), finish_reason="stop"),
        ],
        usage=usage,
        system_fingerprint="fp",
    )
    chunks = (
        ChatChunk(
            id="c",
            created=1,
            model="m",
            provider="b",
            choices=[ChunkChoice(delta=Delta(role="assistant", content="he"))],
        ),
        ChatChunk(
            id="c",
            created=1,
            model="m",
            provider="b",
            choices=[
                ChunkChoice(
                    delta=Delta(
                        tool_calls=[
                            ToolCallDelta(
                                index=0,
                                id="t",
                                type="function",
                                function=FunctionDelta(name="f", arguments="{"),
                            )
                        ],
                        reasoning_content="r",
                    ),
                    finish_reason="tool_calls",
                    logprobs={"content": [{"token": "f", "logprob": -0.1}], "refusal": None},
                )
            ],
            usage=usage,
        ),
    )
    return [
        chat,
        CachedStream(chunks, provider="b", model="m", request_id="req-2", attempts=PATH),
        EmbeddingResponse(
            model="e",
            provider="p",
            data=[Embedding(index=0, embedding=[0.1, -2.5e-8, 3.0])],
            usage=Usage(prompt_tokens=3, total_tokens=3),
        ),
        EmbeddingResponse(model="e", provider="p", data=[Embedding(index=0, embedding=[1.0])]),
        ImageResponse(created=3, data=[Image(url="https://x/y.png", revised_prompt="a cat")]),
        TranscriptionResponse(text="hello", language="en", duration=1.5, provider="p"),
        SpeechResponse(content=bytes(range(256)), content_type="audio/wav", provider="p"),
    ]


@pytest.mark.parametrize("value", every_kind(), ids=lambda v: type(v).__name__)
def test_every_kind_of_answer_comes_back_whole_as_json(value: Any) -> None:
    data = encode(value)
    doc = json.loads(data)  # JSON, never pickle
    assert doc["format"] == 1
    assert decode(data) == value


# Every field the codec keeps, by class: a new field fails this test until
# middlewares/cache/_codec.py keeps it too (or says why it need not).
KEPT = {
    ChatResponse: {"id", "created", "choices", "usage", "system_fingerprint"},
    ChatChunk: {"id", "created", "model", "provider", "choices", "usage", "system_fingerprint"},
    Choice: {"index", "message", "finish_reason", "logprobs"},
    ChunkChoice: {"index", "delta", "finish_reason", "logprobs"},
    Message: {"role", "content", "tool_calls", "reasoning_content", "refusal"},
    Delta: {"role", "content", "tool_calls", "reasoning_content", "refusal"},
    ToolCall: {"id", "type", "function"},
    ToolCallDelta: {"index", "id", "type", "function"},
    Function: {"name", "arguments"},
    FunctionDelta: {"name", "arguments"},
    Usage: {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "reasoning_tokens",
        "cached_tokens",
        "cache_write_tokens",
    },
    EmbeddingResponse: {"data", "usage"},
    Embedding: {"index", "embedding"},
    ImageResponse: {"created", "data"},
    Image: {"url", "b64_json", "revised_prompt"},
    TranscriptionResponse: {"text", "language", "duration"},
    SpeechResponse: {"content", "content_type"},
    CachedStream: {"chunks", "provider", "model", "request_id", "attempts"},
}
# What every response carries; kept apart from its body (cost is 0.0 on a hit,
# cache_hit True).
ORIGIN = {"provider", "model", "latency", "cache_hit", "attempts", "request_id", "cost"}


@pytest.mark.parametrize("cls", list(KEPT), ids=lambda cls: cls.__name__)
def test_the_codec_knows_every_field(cls: type) -> None:
    fields = {field.name for field in attrs.fields(cls)}
    if issubclass(cls, Response):
        fields -= ORIGIN
    assert fields == KEPT[cls], "a field changed: teach middlewares/cache/_codec.py"


def test_what_is_not_ours_is_not_stored_and_a_damaged_entry_reads_as_damaged() -> None:
    with pytest.raises(TypeError):
        encode(object())
    for damaged in (b"\x80\x04K\x01.", b"{}", b'{"format": 1, "kind": "chat"}', b"[1]"):
        with pytest.raises(ValueError, match="unreadable cache entry"):
            decode(damaged)


def two_pipelines(redis_url: str, prefix: str, handler: Any = echo_handler) -> tuple[Any, ...]:
    """Two pipelines, each with its own Cache over one Redis: as two processes are."""
    upstream = Upstream(handler)
    caches = [RedisCache(redis_url, prefix=prefix, ttl=60) for _ in range(2)]
    pipes = [
        Pipeline([Cache(cache, sampled=True)], registry=registry(upstream)) for cache in caches
    ]
    return upstream, caches, pipes


async def close(*caches: RedisCache) -> None:
    for cache in caches:
        await cache.aclose()


async def test_an_answer_stored_by_one_is_a_hit_in_another(
    redis_url: str, redis_prefix: str
) -> None:
    upstream, caches, (first, second) = two_pipelines(redis_url, redis_prefix)
    fresh = await first.acompletion("mock/m", HI, api_key=SECRET)
    hit = await second.acompletion("mock/m", HI, api_key=SECRET)
    assert (upstream.calls, fresh.cache_hit, hit.cache_hit) == (1, False, True)
    assert hit.choices[0].message.content == fresh.choices[0].message.content
    assert (hit.provider, hit.model, hit.attempts, hit.cost) == (
        fresh.provider,
        fresh.model,
        fresh.attempts,
        0.0,
    )
    other_key = await second.acompletion("mock/m", HI, api_key=SECRET + "x")
    assert (upstream.calls, other_key.cache_hit) == (2, False)  # namespaces keep keys apart
    await close(*caches)


async def test_a_stream_stored_by_one_replays_as_a_stream_in_another(
    redis_url: str, redis_prefix: str
) -> None:
    upstream, caches, (first, second) = two_pipelines(redis_url, redis_prefix)
    messages = [{"role": "user", "content": "one two three"}]
    stream = await first.acompletion("mock/m", messages, stream=True)
    original = [chunk async for chunk in stream]
    replay = await second.acompletion("mock/m", messages, stream=True)
    assert isinstance(replay, Stream) and replay.cache_hit
    replayed = [chunk async for chunk in replay]
    assert upstream.calls == 1 and len(original) > 2
    assert [c.to_dict() for c in replayed] == [c.to_dict() for c in original]
    await close(*caches)


async def test_keys_are_prefixed_and_nothing_stored_holds_a_key_or_a_pickle(
    redis_url: str, redis_prefix: str
) -> None:
    _, caches, (first, _) = two_pipelines(redis_url, redis_prefix)
    await first.acompletion("mock/m", HI, api_key=SECRET)
    await first.aembedding("mock/e", "hello", api_key=SECRET)
    stream = await first.acompletion("mock/m", HI, api_key=SECRET, stream=True)
    _ = [chunk async for chunk in stream]
    values = await stored(redis_url, redis_prefix)
    assert len(values) == 3
    for key, value in values.items():
        assert key.startswith(f"{redis_prefix}:cache:key-".encode())
        assert SECRET.encode() not in key and SECRET.encode() not in value
        assert not value.startswith(b"\x80")  # a pickle's first opcode
        assert json.loads(value)["format"] == 1
    await close(*caches)


async def test_entries_expire_with_their_ttl(redis_url: str, redis_prefix: str) -> None:
    upstream, caches, (first, second) = two_pipelines(redis_url, redis_prefix)
    await first.acompletion("mock/m", HI, cache={"ttl": 0.2})
    await anyio.sleep(0.3)
    again = await second.acompletion("mock/m", HI)
    assert (upstream.calls, again.cache_hit) == (2, False)
    await close(*caches)


def slow(seconds: float, fail: bool = False) -> Any:
    async def handler(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(seconds)
        if fail:
            return httpx.Response(500, json={"error": {"message": "boom"}})
        return echo_handler(request)

    return handler


async def test_identical_misses_across_caches_make_one_upstream_call(
    redis_url: str, redis_prefix: str
) -> None:
    upstream, caches, pipes = two_pipelines(redis_url, redis_prefix, slow(0.3))
    results: list[Any] = []

    async def ask(pipe: Pipeline) -> None:
        results.append(await pipe.acompletion("mock/m", HI))

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(ask, pipes[i % 2])
    assert upstream.calls == 1
    assert sorted(r.cache_hit for r in results) == [False] + [True] * 9
    assert {r.choices[0].message.content for r in results} == {"echo: hi"}
    await close(*caches)


async def test_when_the_leader_fails_the_others_call_for_themselves_at_once(
    redis_url: str, redis_prefix: str
) -> None:
    upstream, caches, (first, second) = two_pipelines(redis_url, redis_prefix, slow(0.2, True))
    outcomes: list[str] = []

    async def ask(pipe: Pipeline) -> None:
        try:
            await pipe.acompletion("mock/m", HI)
        except Exception as exc:  # the upstream's 500, as each caller's own error
            outcomes.append(type(exc).__name__)

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, first)
        await anyio.sleep(0.05)
        tg.start_soon(ask, second)
    # The second waited for the first, saw it end without an entry, then called itself:
    # well before its lock would have run out (10 s).
    assert upstream.calls == 2 and len(outcomes) == 2
    assert time.monotonic() - started < 2.0
    await close(*caches)


async def test_a_dead_lock_holder_costs_a_bounded_wait_then_a_plain_call(
    redis_url: str, redis_prefix: str
) -> None:
    upstream = Upstream()
    cache = RedisCache(redis_url, prefix=redis_prefix, lock_timeout=0.4)
    pipe = Pipeline([Cache(cache, sampled=True)], registry=registry(upstream))
    key = Cache(cache).key(pipe.request("chat", "mock/m", messages=HI))
    lock = f"{redis_prefix}:cache-lock:{key}"
    # A process took the lead, then died: its lock stays until it expires.
    await cache.redis.user("test", fallback="none").run(
        lambda c: c.set(lock, b"dead-process", px=400)
    )
    started = time.monotonic()
    reply = await pipe.acompletion("mock/m", HI)
    waited = time.monotonic() - started
    assert reply.choices[0].message.content == "echo: hi" and upstream.calls == 1
    assert 0.2 < waited < 1.5
    assert (await pipe.acompletion("mock/m", HI)).cache_hit  # and its answer was stored
    await cache.aclose()


async def test_a_redis_that_is_down_makes_misses_with_one_warning_then_recovers(
    own_redis: RedisServer,
) -> None:
    upstream = Upstream()
    redis = SharedRedis(own_redis.url, retry_interval=0.1)
    cache = RedisCache(redis)
    pipe = Pipeline([Cache(cache, sampled=True)], registry=registry(upstream))
    await pipe.acompletion("mock/m", HI)
    own_redis.stop()
    with capture_logs() as logs:
        for _ in range(5):
            for stream in (False, True):
                reply = await pipe.acompletion("mock/m", HI, stream=stream)
                if isinstance(reply, Stream):
                    _ = [chunk async for chunk in reply]
                else:
                    assert reply.choices[0].message.content == "echo: hi"
    assert upstream.calls == 11
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["layer"]) for e in warnings] == [("redis.unavailable", "cache")]
    own_redis.start()
    await anyio.sleep(0.15)
    with capture_logs():
        await pipe.acompletion("mock/m", HI)  # stored again
        assert (await pipe.acompletion("mock/m", HI)).cache_hit
    await redis.aclose()


async def test_bad_options_are_refused(redis_url: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        RedisCache(redis_url, prefix="has space")
    with pytest.raises(ValueError, match="ttl"):
        RedisCache(redis_url, ttl=0)
    with pytest.raises(ValueError, match="lock_timeout"):
        RedisCache(redis_url, lock_timeout=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RedisCache(42)  # type: ignore[arg-type]


def test_the_sync_api_shares_the_cache_and_closes_cleanly(
    redis_url: str, redis_prefix: str, sync_backend: str
) -> None:
    """The sync facade runs its own event loop in a thread: the cache opens a pool
    there, and closing the pipeline ends it with that loop."""
    upstream = Upstream()
    layers = [Cache(RedisCache(redis_url, prefix=redis_prefix), sampled=True)]
    loop: Any = sync_backend
    with Pipeline(layers, registry=registry(upstream), sync_backend=loop) as pipe:
        first = pipe.completion("mock/m", HI)
        again = pipe.completion("mock/m", HI)
    assert (upstream.calls, first.cache_hit, again.cache_hit) == (1, False, True)
