"""Failover inside a group, the path on responses and errors, bounded attempts with
Retry and Fallback, and every endpoint, sync and streamed, through Pipeline.default."""

from __future__ import annotations

import json

import httpx
import pytest

from middlewares import Deployment, ErrorMapping, Fallback, Retry, Router
from middlewares.retry import RetryBudget
from pipeline import Attempt, Pipeline, errors
from providers import ProviderRegistry, Script, mock_provider
from tests._routing import HI, FakeClock, Sleeps, Terminal, answer, build
from tests._scripted_replies import chat_ok, failure, registry, sse

D = Deployment


@pytest.mark.anyio
async def test_failover_goes_to_the_next_deployment_and_the_path_shows_it() -> None:
    a, b = Script(failure(503)), Script(chat_ok("from b", model="m2"))
    router = Router({"g": [D("a/m1"), D("b/m2", name="bee")]}, strategy="priority")
    pipe = Pipeline([router, ErrorMapping()], registry=registry(a=a, b=b))
    response = await pipe.acompletion("g", HI)
    assert response.choices[0].message.content == "from b"
    assert (response.provider, response.model) == ("b", "m2")
    assert response.attempts == (
        Attempt("a", "m1", "ServiceUnavailableError", "a/m1"),
        Attempt("b", "m2", None, "bee"),
    )
    assert json.loads(a.requests[0].content)["model"] == "m1"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [failure(429), failure(401), failure(403), failure(404), failure(500), httpx.ConnectError("x")],
)
async def test_errors_that_call_for_another_deployment(reply: object) -> None:
    a, b = Script(reply), Script(chat_ok())  # type: ignore[arg-type]
    router = Router({"g": [D("a/m"), D("b/m")]}, strategy="priority")
    pipe = Pipeline([router, ErrorMapping()], registry=registry(a=a, b=b))
    assert (await pipe.acompletion("g", HI)).provider == "b"


@pytest.mark.anyio
async def test_a_bad_request_does_not_fail_over_and_carries_the_path() -> None:
    a, b = Script(failure(400, "bad temperature")), Script()
    router = Router({"g": [D("a/m"), D("b/m")]}, strategy="priority")
    pipe = Pipeline([router, ErrorMapping()], registry=registry(a=a, b=b))
    with pytest.raises(errors.BadRequestError) as caught:
        await pipe.acompletion("g", HI)
    assert caught.value.attempts == (Attempt("a", "m", "BadRequestError", "a/m"),)
    assert b.requests == []


@pytest.mark.anyio
async def test_when_every_deployment_fails_a_fallback_error_holds_each_in_order() -> None:
    router = Router({"g": [D("a/m"), D("b/m"), D("c/m")]}, strategy="priority", breaker=None)
    terminal = Terminal(
        a__m=errors.InternalServerError("a down"),
        b__m=errors.RateLimitError("b busy"),
        c__m=errors.APIConnectionError("c gone"),
    )
    with pytest.raises(errors.FallbackError) as caught:
        await router(build(router), terminal)
    group = caught.value
    assert [type(e) for e in group.exceptions] == [
        errors.InternalServerError,
        errors.RateLimitError,
        errors.APIConnectionError,
    ]
    assert [a.deployment for a in group.attempts] == ["a/m", "b/m", "c/m"]
    assert (group.provider, group.model) == ("router", "g")


@pytest.mark.anyio
async def test_attempts_per_request_are_bounded() -> None:
    router = Router({"g": [D(f"p{i}/m") for i in range(6)]}, max_attempts=3, breaker=None)
    terminal = Terminal(default=errors.InternalServerError("down"))
    with pytest.raises(errors.FallbackError):
        await router(build(router), terminal)
    assert len(terminal.calls) == 3


@pytest.mark.anyio
async def test_a_budget_refusal_skips_the_deployment_without_counting() -> None:
    spent = errors.BudgetExceededError(
        "spent", scope="deployment", spent=2.0, limit=2.0, resets_at=0.0
    )
    router = Router({"g": [D("a/m"), D("b/m")]}, strategy="priority", max_attempts=1)
    terminal = Terminal(a__m=spent)
    assert (await router(build(router), terminal)).provider == "b"  # max_attempts not spent


@pytest.mark.anyio
async def test_router_retry_and_fallback_never_restart_each_other() -> None:
    """Everything fails: Fallback tries the group then one alternative; the Router
    tries each of the group's two deployments once; Retry tries each call twice.
    2 deployments x 2 + 1 alternative x 2 = 6 upstream calls, no more."""
    scripts = {name: Script(*[failure(503)] * 10) for name in ("a", "b", "c")}
    sleeps = Sleeps()
    pipe = Pipeline(
        [
            Fallback(["c/m"]),
            Router({"g": [D("a/m"), D("b/m")]}, strategy="priority", max_wait=60.0),
            Retry(attempts=2, sleep=sleeps, budget=RetryBudget(min_per_second=100)),
            ErrorMapping(),
        ],
        registry=registry(**scripts),
    )
    with pytest.raises(errors.FallbackError) as caught:
        await pipe.acompletion("g", HI)
    assert {n: len(s.requests) for n, s in scripts.items()} == {"a": 2, "b": 2, "c": 2}
    assert [(a.provider, a.deployment) for a in caught.value.attempts] == [
        ("a", "a/m"),
        ("a", "a/m"),
        ("b", "b/m"),
        ("b", "b/m"),
        ("c", None),
        ("c", None),
    ]
    assert len(sleeps.waits) == 3  # one backoff per retried call, none by the router


@pytest.mark.anyio
async def test_a_fallback_alternative_may_name_a_group() -> None:
    a, b = Script(failure(400, "too long", code="context_length_exceeded")), Script(chat_ok())
    router = Router({"small": [D("a/m")], "large": [D("b/m")]})
    pipe = Pipeline(
        [Fallback(["router/large"]), router, ErrorMapping()], registry=registry(a=a, b=b)
    )
    response = await pipe.acompletion("small", HI)
    assert response.provider == "b"
    assert [x.deployment for x in response.attempts] == ["a/m", "b/m"]


def every_endpoint_registry() -> ProviderRegistry:
    return ProviderRegistry([mock_provider("one"), mock_provider("two")])


def default_pipeline(**kw: object) -> Pipeline:
    router = Router(
        {
            "chat": [D("one/chat-model"), D("two/chat-model")],
            "embed": [D("two/embed-model")],
            "images": [D("one/image-model")],
            "speech": [D("two/tts-model")],
            "transcribe": [D("one/whisper-model")],
        },
        clock=FakeClock(),
    )
    return Pipeline.default(router=router, registry=every_endpoint_registry(), **kw)


@pytest.mark.anyio
async def test_all_five_endpoints_route_through_the_default_stack() -> None:
    pipe = default_pipeline()
    chat = await pipe.acompletion("chat", HI)
    assert chat.provider in {"one", "two"} and chat.attempts[-1].deployment is not None
    embedded = await pipe.aembedding("embed", "hello")
    assert (embedded.provider, embedded.attempts[-1].deployment) == ("two", "two/embed-model")
    image = await pipe.aimage_generation("images", "a cat")
    assert image.attempts[-1].deployment == "one/image-model"
    speech = await pipe.aspeech("speech", "hello")
    assert speech.attempts[-1].deployment == "two/tts-model"
    text = await pipe.atranscription("transcribe", ("a.wav", b"RIFF0000"))
    assert text.attempts[-1].deployment == "one/whisper-model"
    stream = await pipe.acompletion("chat", [{"role": "user", "content": "stream me"}], stream=True)
    chunks = [c async for c in stream]
    assert chunks and stream.attempts[-1].deployment in {"one/chat-model", "two/chat-model"}


def test_sync_calls_and_sync_streams_route(sync_backend: str) -> None:
    with default_pipeline(sync_backend=sync_backend) as pipe:
        response = pipe.completion("chat", HI)
        assert response.attempts[-1].deployment in {"one/chat-model", "two/chat-model"}
        with pipe.completion("chat", [{"role": "user", "content": "sync"}], stream=True) as stream:
            assert [c for c in stream]
            assert stream.attempts[-1].deployment is not None
        assert pipe.embedding("embed", "x").provider == "two"


@pytest.mark.anyio
async def test_a_cache_hit_spends_no_capacity() -> None:
    router = Router({"g": [D("one/m", rpm=1)]}, clock=FakeClock())
    pipe = Pipeline.default(router=router, registry=every_endpoint_registry())
    first = await pipe.acompletion("g", HI, temperature=0)  # cached: it does not sample
    again = await pipe.acompletion("g", HI, temperature=0)
    assert again.cache_hit and again.choices[0].message.content == first.choices[0].message.content
    assert router.snapshot().deployments["one/m"].rpm_used == 1


@pytest.mark.anyio
async def test_a_routed_stream_failing_before_its_first_chunk_fails_over() -> None:
    a, b = Script(failure(503)), Script(sse("hel", "lo"))
    router = Router({"g": [D("a/m"), D("b/m")]}, strategy="priority")
    pipe = Pipeline([router, ErrorMapping()], registry=registry(a=a, b=b))
    stream = await pipe.acompletion("g", HI, stream=True)
    assert [c.choices[0].delta.content async for c in stream][:2] == ["hel", "lo"]
    assert [x.deployment for x in stream.attempts] == ["a/m", "b/m"]


@pytest.mark.anyio
async def test_answer_is_used_by_the_scripted_terminal() -> None:
    router = Router({"g": [D("a/m")]})
    response = await router(build(router), Terminal(a__m=answer("yes")))
    assert response.choices[0].message.content == "yes"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_deployment_that_cannot_take_a_parameter_is_skipped() -> None:
    refused = errors.InvalidRequestError("a does not support 'seed'", provider="a")
    router = Router({"g": [D("a/m"), D("b/m")]}, strategy="priority", max_attempts=1)
    terminal = Terminal(a__m=refused)
    assert (await router(build(router), terminal)).provider == "b"  # no attempt spent
    assert router.snapshot().deployments["a/m"].breaker == "closed"
    nobody = Terminal(default=errors.InvalidRequestError("malformed everywhere"))
    with pytest.raises(errors.InvalidRequestError, match="malformed") as caught:
        await router(build(router), nobody)
    assert [a.deployment for a in caught.value.attempts] == ["a/m", "b/m"]
