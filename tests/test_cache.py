"""Cache: the key, namespaces, MemoryCache (LRU, bytes, TTL), single-flight, streams, controls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs
import httpx
import pytest
import structlog.testing

from middlewares.cache import Cache, CachedStream, MemoryCache, cache_key
from pipeline import (
    ChatChunk,
    ChatResponse,
    Pipeline,
    Request,
    Secret,
    Stream,
    UpstreamStatusError,
    errors,
)
from pipeline._chain import Handler
from providers import ProviderRegistry, echo_handler, mock_provider

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]


class Upstream:
    """A provider (the echo one by default), counting the requests that reach it."""

    def __init__(self, handler: Any = echo_handler) -> None:
        self.calls = 0
        self._handler = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return self._handler(request)  # type: ignore[no-any-return]


def registry(handler: Any) -> ProviderRegistry:
    return ProviderRegistry([mock_provider("mock", handler), mock_provider("other", handler)])


def cached(handler: Any, cache: Cache | None = None) -> Pipeline:
    # sampled=True: these tests exercise the mechanics on plain (sampled) chat requests;
    # what is cached without asking is tested in test_reliability_cache.py.
    return Pipeline([cache or Cache(MemoryCache(), sampled=True)], registry=registry(handler))


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def chunk_event(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the key -------------------------------------------------------------------

BASE_PARAMS = {"temperature": 0.5, "tools": [{"type": "function", "function": {"name": "f"}}]}


def base_request(**fields: Any) -> Request:
    pipe = Pipeline(registry=registry(echo_handler))
    return attrs.evolve(pipe.request("chat", "mock/m", messages=HI, params=BASE_PARAMS), **fields)


def with_params(**params: Any) -> Request:
    return base_request(params={**BASE_PARAMS, **params})


KEY_CHANGES = {
    "temperature": with_params(temperature=0.7),
    "top_p": with_params(top_p=0.9),
    "max_tokens": with_params(max_tokens=5),
    "max_completion_tokens": with_params(max_completion_tokens=5),
    "n": with_params(n=2),
    "stop": with_params(stop=["\n"]),
    "seed": with_params(seed=7),
    "presence_penalty": with_params(presence_penalty=1.0),
    "frequency_penalty": with_params(frequency_penalty=1.0),
    "logit_bias": with_params(logit_bias={"50256": -100}),
    "tool name": with_params(tools=[{"type": "function", "function": {"name": "g"}}]),
    "tool_choice": with_params(tool_choice="required"),
    "response_format": with_params(response_format={"type": "json_object"}),
    "reasoning_effort": with_params(reasoning_effort="high"),
    "extra_body": with_params(extra_body={"safe_prompt": True}),
    "extra_headers": with_params(extra_headers={"anthropic-beta": "x"}),
    "provider extra top_k": with_params(top_k=40),
    "provider extra thinking": with_params(thinking={"type": "enabled", "budget_tokens": 1024}),
    "param removed": base_request(params={"temperature": 0.5}),
    "model": base_request(model="m2"),
    "provider": base_request(provider="other"),
    "message text": base_request(messages=[{"role": "user", "content": "hi!"}]),
    "message role": base_request(messages=[{"role": "system", "content": "hi"}]),
    "extra message": base_request(messages=[*HI, {"role": "assistant", "content": "yo"}]),
    "stream": base_request(stream=True),
    "api_base": base_request(api_base="http://elsewhere.invalid/v1"),
    "api_version": base_request(api_version="2024-10-21"),
    "endpoint": base_request(endpoint="embedding", messages=(), input="hi"),
}


@pytest.mark.parametrize("change", list(KEY_CHANGES))
async def test_key_changes_with_every_output_shaping_field(change: str) -> None:
    base = cache_key(base_request())
    assert base is not None
    assert cache_key(KEY_CHANGES[change]) != base


async def test_key_ignores_key_timeout_options_and_dict_order() -> None:
    base = cache_key(base_request())
    reordered = base_request(params=dict(reversed(list(BASE_PARAMS.items()))))
    assert list(reordered.params) != list(BASE_PARAMS)
    same = [
        reordered,
        base_request(timeout=3.0),
        base_request(options={"metadata": {"user": "u1"}, "cache": {"ttl": 5}}),
        base_request(messages=tuple(HI)),  # a tuple of messages is the same list
    ]
    for request in same:
        assert cache_key(request) == base
    keyed = base_request(api_key=Secret("sk-one-aaaaaaaa"))
    assert cache_key(keyed) == base
    assert "sk-one" not in (Cache().key(keyed) or "")


async def test_key_hashes_bytes_input() -> None:
    def transcription(audio: Any) -> Request:
        return base_request(endpoint="transcription", messages=(), params={}, input=audio)

    one = cache_key(transcription(b"RIFF-one"))
    assert one == cache_key(transcription(b"RIFF-one"))
    assert one != cache_key(transcription(b"RIFF-two"))
    assert one != cache_key(transcription(("a.wav", b"RIFF-one")))


@pytest.mark.parametrize(
    "value",
    [{"a", "b"}, object(), float("nan"), {1: "x", "1": "y"}],
    ids=["set", "object", "nan", "mixed-keys"],
)
async def test_uncanonical_request_is_not_cached_and_does_not_crash(value: Any) -> None:
    request = with_params(custom=value)
    assert cache_key(request) is None
    calls = 0

    async def terminal(request: Request, call_next: Handler) -> Any:
        nonlocal calls
        calls += 1
        return ChatResponse(model=request.model)

    pipe = Pipeline([Cache(MemoryCache(), sampled=True), terminal], registry=registry(echo_handler))
    for _ in range(2):
        assert not (await pipe.send(request)).cache_hit
    assert calls == 2


# -- namespaces ------------------------------------------------------------------


async def test_api_keys_never_share_entries() -> None:
    upstream = Upstream()
    pipe = cached(upstream)
    first = await pipe.acompletion("mock/m", HI, api_key="sk-tenant-one-1234")
    other = await pipe.acompletion("mock/m", HI, api_key="sk-tenant-two-5678")
    again = await pipe.acompletion("mock/m", HI, api_key="sk-tenant-one-1234")
    env = await pipe.acompletion("mock/m", HI)
    env_again = await pipe.acompletion("mock/m", HI)
    assert upstream.calls == 3
    assert (first.cache_hit, other.cache_hit, again.cache_hit) == (False, False, True)
    assert (env.cache_hit, env_again.cache_hit) == (False, True)


async def test_fixed_namespace_shares_across_keys() -> None:
    upstream = Upstream()
    pipe = cached(upstream, Cache(MemoryCache(), namespace="shared", sampled=True))
    await pipe.acompletion("mock/m", HI, api_key="sk-tenant-one-1234")
    hit = await pipe.acompletion("mock/m", HI, api_key="sk-tenant-two-5678")
    assert hit.cache_hit
    assert upstream.calls == 1


async def test_namespace_callable_files_by_tenant() -> None:
    def tenant(request: Request) -> str | None:
        metadata = request.options.get("metadata") or {}
        return metadata.get("tenant")

    upstream = Upstream()
    pipe = cached(upstream, Cache(MemoryCache(), namespace=tenant, sampled=True))
    await pipe.acompletion("mock/m", HI, metadata={"tenant": "a"})
    assert (await pipe.acompletion("mock/m", HI, metadata={"tenant": "a"})).cache_hit
    assert not (await pipe.acompletion("mock/m", HI, metadata={"tenant": "b"})).cache_hit
    # None falls back to the API-key fingerprint: a keyed caller does not see tenant-less entries
    await pipe.acompletion("mock/m", HI)
    assert not (await pipe.acompletion("mock/m", HI, api_key="sk-someone-123456")).cache_hit
    assert upstream.calls == 4


async def test_bad_namespace_and_backend_are_rejected() -> None:
    with pytest.raises(TypeError, match="namespace"):
        Cache(namespace="")
    with pytest.raises(TypeError, match="cache backend"):
        Cache(object())  # type: ignore[arg-type]


# -- hits --------------------------------------------------------------------------


async def test_hit_is_a_marked_copy_that_never_corrupts_the_entry() -> None:
    upstream = Upstream()
    pipe = cached(upstream)
    miss = await pipe.acompletion("mock/m", HI)
    assert not miss.cache_hit
    miss.choices[0].message.content = "changed by the first caller"
    hit = await pipe.acompletion("mock/m", HI)
    assert hit.cache_hit
    assert hit is not miss
    assert hit.choices[0].message.content == "echo: hi"
    hit.choices[0].message.content = "changed by the second caller"
    assert hit.usage is not None
    hit.usage.total_tokens = 999
    again = await pipe.acompletion("mock/m", HI)
    assert again.choices[0].message.content == "echo: hi"
    assert again.usage is not None and again.usage.total_tokens != 999
    assert upstream.calls == 1


async def test_other_endpoints_are_cached_too() -> None:
    upstream = Upstream()
    pipe = cached(upstream)
    first = await pipe.aembedding("mock/e", ["a", "b"])
    second = await pipe.aembedding("mock/e", ["a", "b"])
    third = await pipe.aembedding("mock/e", ["a", "c"])
    speech = await pipe.aspeech("mock/tts", "hello")
    speech_again = await pipe.aspeech("mock/tts", "hello")
    assert second.cache_hit and second.data == first.data
    assert not third.cache_hit
    assert speech_again.cache_hit and speech_again.content == speech.content
    assert upstream.calls == 3


async def test_errors_are_never_cached() -> None:
    replies = [httpx.Response(500, json={"error": {"message": "boom"}}), None]

    def handler(request: httpx.Request) -> httpx.Response:
        reply = replies.pop(0)
        return reply if reply is not None else echo_handler(request)

    pipe = cached(handler)
    with pytest.raises(UpstreamStatusError):
        await pipe.acompletion("mock/m", HI)
    assert not (await pipe.acompletion("mock/m", HI)).cache_hit
    assert (await pipe.acompletion("mock/m", HI)).cache_hit


# -- per-request control ---------------------------------------------------------


async def test_cache_false_bypasses_reads_and_writes() -> None:
    upstream = Upstream()
    pipe = cached(upstream)
    assert not (await pipe.acompletion("mock/m", HI, cache=False)).cache_hit
    assert not (await pipe.acompletion("mock/m", HI)).cache_hit  # nothing was written
    assert not (await pipe.acompletion("mock/m", HI, cache=False)).cache_hit  # no read
    assert upstream.calls == 3


async def test_no_store_reads_but_never_writes() -> None:
    upstream = Upstream()
    pipe = cached(upstream)
    await pipe.acompletion("mock/m", HI, cache={"no_store": True})
    assert not (await pipe.acompletion("mock/m", HI)).cache_hit
    assert (await pipe.acompletion("mock/m", HI, cache={"no_store": True})).cache_hit
    assert upstream.calls == 2


async def test_no_cache_skips_the_read_but_writes() -> None:
    replies = iter(["first", "fresh"])

    def handler(request: httpx.Request) -> httpx.Response:
        body = echo_handler(request)
        data = json.loads(body.content)
        data["choices"][0]["message"]["content"] = next(replies)
        return httpx.Response(200, json=data)

    pipe = cached(handler)
    await pipe.acompletion("mock/m", HI)
    fresh = await pipe.acompletion("mock/m", HI, cache={"no_cache": True})
    assert not fresh.cache_hit
    assert fresh.choices[0].message.content == "fresh"
    hit = await pipe.acompletion("mock/m", HI)
    assert hit.cache_hit and hit.choices[0].message.content == "fresh"


@pytest.mark.parametrize(
    "option",
    ["yes", 1, {"ttl": 0}, {"ttl": "5"}, {"no_store": "true"}, {"tll": 5}],
)
async def test_bad_cache_option_is_a_typed_error_before_io(option: Any) -> None:
    upstream = Upstream()
    with pytest.raises(errors.InvalidRequestError, match="cache"):
        await cached(upstream).acompletion("mock/m", HI, cache=option)
    assert upstream.calls == 0


# -- MemoryCache ---------------------------------------------------------------------


async def test_memory_cache_evicts_least_recently_used() -> None:
    store = MemoryCache(max_entries=3)
    for key in "abc":
        await store.set(key, key.upper())
    assert await store.get("a") == "A"  # a is now the most recent; b the least
    await store.set("d", "D")
    assert await store.get("b") is None
    await store.set("c", "C2")  # rewriting c makes it recent too
    await store.set("e", "E")
    assert await store.get("a") is None
    assert [await store.get(k) for k in "cde"] == ["C2", "D", "E"]
    assert len(store) == 3


async def test_memory_cache_bounds_bytes() -> None:
    store = MemoryCache(max_entries=100, max_bytes=1000)
    for key in "abcd":
        await store.set(key, "x" * 300)
    assert await store.get("a") is None  # evicted to fit the byte bound
    assert [await store.get(k) for k in "bcd"] == ["x" * 300] * 3
    assert 900 < store.size_bytes <= 1000
    await store.set("huge", "y" * 2000)  # larger than the whole bound: not stored
    assert await store.get("huge") is None
    assert await store.get("d") == "x" * 300
    await store.delete("d")
    assert await store.get("d") is None


async def test_memory_cache_expires_entries_on_its_clock() -> None:
    clock = FakeClock()
    store = MemoryCache(ttl=10, clock=clock)
    await store.set("k", "v")
    await store.set("short", "v", ttl=1)
    clock.now += 1
    assert await store.get("short") is None
    clock.now += 8.9
    assert await store.get("k") == "v"
    clock.now += 0.1
    assert await store.get("k") is None
    assert len(store) == 0


async def test_per_request_ttl_through_the_pipeline() -> None:
    clock = FakeClock()
    upstream = Upstream()
    pipe = cached(upstream, Cache(MemoryCache(ttl=100, clock=clock), sampled=True))
    await pipe.acompletion("mock/m", HI, cache={"ttl": 5})
    clock.now += 4
    assert (await pipe.acompletion("mock/m", HI)).cache_hit
    clock.now += 2
    assert not (await pipe.acompletion("mock/m", HI)).cache_hit
    clock.now += 50  # stored again with the backend's 100s
    assert (await pipe.acompletion("mock/m", HI)).cache_hit
    assert upstream.calls == 2


@pytest.mark.parametrize(
    "kwargs",
    [{"max_entries": 0}, {"max_bytes": 0}, {"ttl": -1}, {"ttl": float("inf")}, {"ttl": True}],
)
async def test_memory_cache_rejects_bad_bounds(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        MemoryCache(**kwargs)


async def test_repr_shows_options() -> None:
    cache = Cache(MemoryCache(max_entries=5, ttl=60), namespace="team")
    assert (
        repr(cache)
        == "Cache(MemoryCache(max_entries=5, max_bytes=None, ttl=60.0), namespace='team', "
        "sampled=False)"
    )


# -- single-flight -----------------------------------------------------------------------


def gated(gate: anyio.Event, reply: Any = echo_handler) -> tuple[list[int], Any]:
    calls: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        await gate.wait()
        return reply(request)  # type: ignore[no-any-return]

    return calls, handler


async def test_single_flight_makes_one_upstream_call() -> None:
    gate = anyio.Event()
    calls, handler = gated(gate)
    pipe = cached(handler)
    results: list[ChatResponse] = []

    async def one() -> None:
        results.append(await pipe.acompletion("mock/m", HI))

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert len(calls) == 1
    assert len(results) == 100
    assert sum(not r.cache_hit for r in results) == 1
    assert len({id(r) for r in results}) == 100  # each caller owns its copy
    assert all(r.to_dict() == results[0].to_dict() for r in results)


async def test_single_flight_shares_the_error_and_caches_nothing() -> None:
    gate = anyio.Event()
    calls, handler = gated(gate, lambda request: httpx.Response(503, json={"error": "down"}))
    pipe = cached(handler)
    raised: list[BaseException] = []

    async def one() -> None:
        try:
            await pipe.acompletion("mock/m", HI)
        except UpstreamStatusError as exc:
            raised.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert len(calls) == 1
    assert len(raised) == 20
    # The leader raises the error; each waiter its own copy, chained to it.
    original = next(exc for exc in raised if exc.__cause__ is None)
    copies = [exc for exc in raised if exc is not original]
    assert len({id(exc) for exc in copies}) == 19
    assert all(exc.__cause__ is original for exc in copies)
    with pytest.raises(UpstreamStatusError):
        await pipe.acompletion("mock/m", HI)
    assert len(calls) == 2  # the error was not stored


async def test_a_waiter_takes_over_when_the_leader_is_cancelled() -> None:
    gate = anyio.Event()
    calls, handler = gated(gate)
    pipe = cached(handler)
    results: list[ChatResponse] = []

    async def one() -> None:
        results.append(await pipe.acompletion("mock/m", HI))

    async with anyio.create_task_group() as tg:
        leader = anyio.CancelScope()

        async def lead() -> None:
            with leader:
                await one()

        tg.start_soon(lead)
        await anyio.wait_all_tasks_blocked()
        for _ in range(3):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        assert len(calls) == 1
        leader.cancel()
        await anyio.wait_all_tasks_blocked()
        assert len(calls) == 2  # one waiter now leads
        gate.set()
    assert len(results) == 3
    assert sum(not r.cache_hit for r in results) == 1


# -- streams ------------------------------------------------------------------------------


async def read(stream: Stream[ChatChunk]) -> list[dict[str, Any]]:
    return [chunk.to_dict() async for chunk in stream]


async def test_complete_stream_is_stored_and_replayed() -> None:
    upstream = Upstream()
    cache = Cache(MemoryCache(), sampled=True)
    pipe = cached(upstream, cache)
    first = await pipe.acompletion("mock/m", HI, stream=True)
    assert not first.cache_hit
    chunks = await read(first)
    replay = await pipe.acompletion("mock/m", HI, stream=True)
    assert replay.cache_hit
    assert (replay.provider, replay.model) == ("mock", "m")
    assert await read(replay) == chunks
    assert upstream.calls == 1
    assert any(c.get("usage") for c in chunks)
    # a whole-response request does not share the stream's entry
    assert not (await pipe.acompletion("mock/m", HI)).cache_hit
    assert upstream.calls == 2


async def test_replayed_chunks_are_copies() -> None:
    pipe = cached(Upstream())
    async for chunk in await pipe.acompletion("mock/m", HI, stream=True):
        for choice in chunk.choices:
            choice.delta.content = "mutated"
    contents = [
        c.choices[0].delta.content
        async for c in await pipe.acompletion("mock/m", HI, stream=True)
        if c.choices
    ]
    assert "mutated" not in contents
    assert "".join(x or "" for x in contents) == "echo: hi"


async def test_stream_cut_midway_stores_nothing() -> None:
    calls = 0

    async def body() -> AsyncIterator[bytes]:
        yield sse(chunk_event("one "), chunk_event("two "))
        raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=body()
            )
        return echo_handler(request)

    pipe = cached(handler)
    stream = await pipe.acompletion("mock/m", HI, stream=True)
    seen: list[ChatChunk] = []

    async def drain() -> None:
        async for chunk in stream:
            seen.append(chunk)

    with pytest.raises(httpx.ReadError):
        await drain()
    assert len(seen) == 2
    fresh = await pipe.acompletion("mock/m", HI, stream=True)
    assert not fresh.cache_hit
    await read(fresh)
    assert calls == 2


def whole_body_stream(request: httpx.Request) -> httpx.Response:
    """A stream whose body is plain bytes: closing it early leaves no generator behind
    (the mock's async-generator body is never closed by httpx, which trio reports)."""
    body = sse(chunk_event("echo: "), chunk_event("hi", "stop")) + b"data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


async def test_stream_closed_early_stores_nothing() -> None:
    upstream = Upstream(whole_body_stream)
    pipe = cached(upstream)
    stream = await pipe.acompletion("mock/m", HI, stream=True)
    await stream.__anext__()
    await stream.aclose()
    again = await pipe.acompletion("mock/m", HI, stream=True)
    assert not again.cache_hit
    await read(again)
    assert (await pipe.acompletion("mock/m", HI, stream=True)).cache_hit
    assert upstream.calls == 2


async def test_stream_cache_false_and_no_store() -> None:
    upstream = Upstream()
    pipe = cached(upstream)
    await read(await pipe.acompletion("mock/m", HI, stream=True, cache=False))
    await read(await pipe.acompletion("mock/m", HI, stream=True, cache={"no_store": True}))
    assert not (await pipe.acompletion("mock/m", HI, stream=True)).cache_hit
    assert upstream.calls == 3


async def test_stream_entry_is_stored_as_cached_stream() -> None:
    store = MemoryCache()
    cache = Cache(store, sampled=True)
    pipe = cached(Upstream(), cache)
    await read(await pipe.acompletion("mock/m", HI, stream=True))
    request = pipe.request("chat", "mock/m", messages=HI, stream=True)
    key = cache.key(request)
    assert key is not None
    entry = await store.get(key)
    assert isinstance(entry, CachedStream)
    assert "".join(c.choices[0].delta.content or "" for c in entry.chunks if c.choices) == (
        "echo: hi"
    )


# -- a failing backend ------------------------------------------------------------------------


class BrokenBackend:
    async def get(self, key: str) -> Any | None:
        raise ConnectionError("backend down")

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        raise ConnectionError("backend down")

    async def delete(self, key: str) -> None:
        raise ConnectionError("backend down")


async def test_a_failing_backend_is_logged_and_the_request_goes_on() -> None:
    upstream = Upstream()
    pipe = cached(upstream, Cache(BrokenBackend(), sampled=True))
    with structlog.testing.capture_logs() as logs:
        response = await pipe.acompletion("mock/m", HI)
    assert response.choices[0].message.content == "echo: hi"
    failed = [e for e in logs if e["event"] == "cache.backend_failed"]
    assert [e["operation"] for e in failed] == ["get", "set"]
    assert all(e["error"] == "ConnectionError" for e in failed)
