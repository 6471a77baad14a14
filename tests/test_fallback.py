"""Fallback: order, which errors move on, the ExceptionGroup when all fail, streams,
credentials that stay with their provider, and the default composition."""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import pytest

from middlewares.error_mapping import ErrorMapping
from middlewares.fallback import Fallback
from middlewares.retry import Retry
from pipeline import Attempt, Pipeline, Request, Secret, errors
from providers import ProviderRegistry, Script, mock_provider
from tests._scripted_replies import HI, Sleeps, chat_ok, drain, failure, registry, sse, sse_cut

pytestmark = pytest.mark.anyio


def falling_back(alternatives: list[Any], **scripts: Script) -> Pipeline:
    return Pipeline([Fallback(alternatives), ErrorMapping()], registry=registry(**scripts))


def sent_model(script: Script, index: int = 0) -> str:
    return str(json.loads(script.requests[index].content)["model"])


async def test_alternatives_are_tried_in_order_and_the_path_recorded() -> None:
    p, q, r = Script(failure(503)), Script(failure(429)), Script(chat_ok("from r"))
    pipe = falling_back(["q/m2", "r/m3"], p=p, q=q, r=r)
    resp = await pipe.acompletion("p/m1", HI)
    assert resp.choices[0].message.content == "from r"
    assert resp.provider == "r"
    assert [sent_model(p), sent_model(q), sent_model(r)] == ["m1", "m2", "m3"]
    assert resp.attempts == (
        Attempt("p", "m1", "ServiceUnavailableError"),
        Attempt("q", "m2", "RateLimitError"),
        Attempt("r", "m3", None),
    )


async def test_a_primary_success_never_touches_the_alternatives() -> None:
    p, q = Script(chat_ok()), Script()
    resp = await falling_back(["q/m"], p=p, q=q).acompletion("p/m", HI)
    assert resp.attempts == (Attempt("p", "m", None),)
    assert q.requests == []


@pytest.mark.parametrize(
    "reply",
    [
        failure(400, "too long", code="context_length_exceeded"),
        failure(503, "down", headers={"x-should-retry": "false"}),
        failure(529, "Overloaded"),
        failure(429, "slow down"),
        failure(
            429, "pay up", code="insufficient_quota"
        ),  # not retryable, but another provider helps
        failure(500, "oops"),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
    ],
)
async def test_default_predicate_falls_back_on(reply: Any) -> None:
    p, q = Script(reply), Script(chat_ok("rescued"))
    resp = await falling_back(["q/m"], p=p, q=q).acompletion("p/m", HI)
    assert resp.choices[0].message.content == "rescued"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (failure(401, code="invalid_api_key"), errors.AuthenticationError),
        (failure(403), errors.PermissionDeniedError),
        (failure(400, "bad temperature"), errors.BadRequestError),
        (
            failure(400, "flagged", code="content_policy_violation"),
            errors.ContentPolicyViolationError,
        ),
        (failure(404, code="model_not_found"), errors.NotFoundError),
    ],
)
async def test_default_predicate_does_not_fall_back_on(
    reply: httpx.Response, expected: type[errors.DispatchError]
) -> None:
    p, q = Script(reply), Script(chat_ok())
    with pytest.raises(expected) as caught:
        await falling_back(["q/m"], p=p, q=q).acompletion("p/m", HI)
    assert type(caught.value) is expected  # the primary's own error, not a group
    assert q.requests == []
    assert caught.value.attempts == (Attempt("p", "m", expected.__name__),)


async def test_should_fallback_predicate_overrides_the_default() -> None:
    p, q = Script(failure(401)), Script(chat_ok("any error moves on"))
    pipe = Pipeline(
        [Fallback(["q/m"], should_fallback=lambda exc: True), ErrorMapping()],
        registry=registry(p=p, q=q),
    )
    resp = await pipe.acompletion("p/m", HI)
    assert resp.choices[0].message.content == "any error moves on"


# -- when everything fails ---------------------------------------------------------------------


async def test_every_failure_is_kept_in_order_in_one_exception_group() -> None:
    p, q, r = Script(failure(503)), Script(failure(429)), Script(httpx.ReadTimeout("slow"))
    pipe = falling_back(["q/m2", "r/m3"], p=p, q=q, r=r)
    with pytest.raises(errors.FallbackError) as caught:
        await pipe.acompletion("p/m1", HI)
    group = caught.value
    assert isinstance(group, ExceptionGroup)
    assert isinstance(group, errors.DispatchError)
    assert [type(e) for e in group.exceptions] == [
        errors.ServiceUnavailableError,
        errors.RateLimitError,
        errors.TimeoutError,
    ]
    causes = [e for e in group.exceptions if isinstance(e, errors.DispatchError)]
    assert [(e.provider, e.model) for e in causes] == [
        ("p", "m1"),
        ("q", "m2"),
        ("r", "m3"),
    ]
    assert (group.provider, group.model) == ("p", "m1")
    assert group.attempts == (
        Attempt("p", "m1", "ServiceUnavailableError"),
        Attempt("q", "m2", "RateLimitError"),
        Attempt("r", "m3", "TimeoutError"),
    )
    assert "every alternative failed" in str(group)
    assert "q/m2: RateLimitError" in str(group)
    assert isinstance(group.exceptions[2].__cause__, httpx.ReadTimeout)


async def test_except_star_reaches_each_cause() -> None:
    pipe = falling_back(["q/m"], p=Script(failure(503)), q=Script(failure(429)))
    caught: list[BaseException] = []
    try:
        await pipe.acompletion("p/m", HI)
    except* errors.RateLimitError as limited:
        caught.extend(limited.exceptions)
    except* errors.ServiceUnavailableError as down:
        caught.extend(down.exceptions)
    assert sorted(type(e).__name__ for e in caught) == ["RateLimitError", "ServiceUnavailableError"]


async def test_an_alternative_that_stops_the_chain_raises_the_group_so_far() -> None:
    p, q, r = Script(failure(503)), Script(failure(401)), Script(chat_ok())
    with pytest.raises(errors.FallbackError) as caught:
        await falling_back(["q/m", "r/m"], p=p, q=q, r=r).acompletion("p/m", HI)
    assert [type(e) for e in caught.value.exceptions] == [
        errors.ServiceUnavailableError,
        errors.AuthenticationError,
    ]
    assert "fallback stopped" in str(caught.value)
    assert r.requests == []


async def test_unroutable_alternatives_are_skipped_and_kept_in_the_group() -> None:
    p, q = Script(failure(503), failure(503)), Script(chat_ok("q answers"), failure(503))
    reg = ProviderRegistry(
        [
            mock_provider("p", p),
            mock_provider("q", q),
            mock_provider("emb", Script(), endpoints=frozenset({"embedding"})),
        ]
    )
    pipe = Pipeline([Fallback(["nope/x", "emb/e", "q/m"]), ErrorMapping()], registry=reg)
    resp = await pipe.acompletion("p/m", HI)
    assert resp.choices[0].message.content == "q answers"
    assert resp.attempts == (
        Attempt("p", "m", "ServiceUnavailableError"),
        Attempt("nope", "x", "ProviderNotFoundError"),
        Attempt("emb", "e", "UnsupportedEndpointError"),
        Attempt("q", "m", None),
    )
    with pytest.raises(errors.FallbackError) as caught:
        await pipe.acompletion("p/m", HI)
    assert [type(e) for e in caught.value.exceptions] == [
        errors.ServiceUnavailableError,
        errors.ProviderNotFoundError,
        errors.UnsupportedEndpointError,
        errors.ServiceUnavailableError,
    ]


# -- streams ---------------------------------------------------------------------------------


async def test_no_fallback_once_the_first_chunk_has_arrived() -> None:
    p, q = Script(sse_cut("a", "b")), Script(sse("never"))
    stream = await falling_back(["q/m"], p=p, q=q).acompletion("p/m", HI, stream=True)
    seen: list[str | None] = []
    with pytest.raises(errors.APIConnectionError):
        await drain(stream, seen)
    assert seen == ["a", "b"]
    assert q.requests == []
    assert stream.attempts == (Attempt("p", "m", None),)


async def test_a_stream_failing_before_its_first_chunk_falls_back() -> None:
    p, q = Script(sse_cut()), Script(sse("from", " q"))
    stream = await falling_back(["q/m"], p=p, q=q).acompletion("p/m", HI, stream=True)
    assert [c.choices[0].delta.content async for c in stream] == ["from", " q", ""]
    assert stream.provider == "q"
    assert stream.attempts == (Attempt("p", "m", "APIConnectionError"), Attempt("q", "m", None))


# -- credentials -----------------------------------------------------------------------------

KEY = "sk-primary-0123456789abcdef"
BASE = "http://primary-gateway.invalid/v1"


def leaked(script: Script) -> bool:
    sent = script.requests[-1]
    return (
        KEY in str(sent.headers.raw)
        or KEY in sent.content.decode()
        or "primary-gateway" in str(sent.url)
    )


async def test_per_call_credentials_never_reach_another_provider() -> None:
    p = Script(failure(503))
    q = Script(failure(503))  # has its own configured key
    r = Script(chat_ok())  # has none
    reg = ProviderRegistry(
        [
            mock_provider("p", p),
            mock_provider("q", q, api_key=Secret("q-own-key-0123")),
            mock_provider("r", r),
        ]
    )
    pipe = Pipeline([Fallback(["q/m", "r/m"]), ErrorMapping()], registry=reg)
    await pipe.acompletion("p/m", HI, api_key=KEY, api_base=BASE, api_version="2024-01-01")
    assert p.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert str(p.requests[0].url).startswith(BASE)
    assert q.requests[0].headers["authorization"] == "Bearer q-own-key-0123"
    assert "authorization" not in r.requests[0].headers
    assert not leaked(q)
    assert not leaked(r)


async def test_an_alternative_at_the_same_provider_keeps_the_credentials() -> None:
    p = Script(failure(503), chat_ok("bigger model"))
    pipe = falling_back(["p/m-big"], p=p)
    await pipe.acompletion("p/m", HI, api_key=KEY, api_base=BASE)
    assert sent_model(p, 1) == "m-big"
    assert p.requests[1].headers["authorization"] == f"Bearer {KEY}"
    assert str(p.requests[1].url).startswith(BASE)


async def test_callable_alternatives_may_set_their_own_credentials() -> None:
    seen: list[str] = []

    def to_q_with_key(request: Request) -> Request:
        seen.append(request.target)
        return attrs.evolve(request, provider="q", model="qm", api_key=Secret("q-callable-key-01"))

    def to_r_carrying_everything(request: Request) -> Request:
        seen.append(request.target)
        return attrs.evolve(request, provider="r", model="rm")

    p, q, r = Script(failure(503)), Script(failure(503)), Script(chat_ok())
    pipe = falling_back([to_q_with_key, to_r_carrying_everything], p=p, q=q, r=r)
    resp = await pipe.acompletion("p/m", HI, api_key=KEY, api_base=BASE)
    assert seen == ["p/m", "p/m"]  # each alternative starts from the original request
    assert q.requests[0].headers["authorization"] == "Bearer q-callable-key-01"
    assert not leaked(q)
    assert "authorization" not in r.requests[0].headers
    assert not leaked(r)
    assert [a.provider for a in resp.attempts] == ["p", "q", "r"]


async def test_a_callable_must_return_a_request() -> None:
    pipe = falling_back([lambda request: "q/m"], p=Script(failure(503)))
    with pytest.raises(TypeError, match="not a Request"):
        await pipe.acompletion("p/m", HI)


# -- composition ------------------------------------------------------------------------------


async def test_default_order_fallback_retry_error_mapping() -> None:
    p = Script(failure(429, headers={"retry-after": "2"}), httpx.ConnectError("refused"))
    q = Script(failure(503, headers={"retry-after": "1"}), chat_ok("q, second try"))
    sleeps = Sleeps()
    pipe = Pipeline(
        [Fallback(["q/m"]), Retry(attempts=2, sleep=sleeps, max_delay=10.0), ErrorMapping()],
        registry=registry(p=p, q=q),
    )
    resp = await pipe.acompletion("p/m", HI)
    assert resp.choices[0].message.content == "q, second try"
    assert resp.attempts == (
        Attempt("p", "m", "RateLimitError"),
        Attempt("p", "m", "APIConnectionError"),
        Attempt("q", "m", "ServiceUnavailableError"),
        Attempt("q", "m", None),
    )
    assert sleeps.waits[0] >= 2.0
    assert sleeps.waits[1] >= 1.0


async def test_default_order_when_everything_fails() -> None:
    p = Script(failure(500), failure(500))
    q = Script(failure(503), failure(401))
    pipe = Pipeline(
        [Fallback(["q/m"]), Retry(attempts=2, sleep=Sleeps()), ErrorMapping()],
        registry=registry(p=p, q=q),
    )
    with pytest.raises(errors.FallbackError) as caught:
        await pipe.acompletion("p/m", HI)
    first, second = caught.value.exceptions
    assert isinstance(first, errors.InternalServerError)
    assert isinstance(second, errors.AuthenticationError)
    assert [a.error for a in first.attempts] == ["InternalServerError", "InternalServerError"]
    assert [a.error for a in second.attempts] == ["ServiceUnavailableError", "AuthenticationError"]
    assert caught.value.attempts == (*first.attempts, *second.attempts)


# -- options ---------------------------------------------------------------------------------


def test_repr_lists_the_alternatives() -> None:
    def to_azure(request: Request) -> Request:
        return request

    assert repr(Fallback(["q/m", to_azure])) == (
        "Fallback(['q/m', test_repr_lists_the_alternatives.<locals>.to_azure])"
    )


@pytest.mark.parametrize(
    ("alternatives", "error"),
    [
        ("q/m", TypeError),
        ([], ValueError),
        (["no-model"], ValueError),
        (["/m"], ValueError),
        (["q/"], ValueError),
        ([42], TypeError),
    ],
)
def test_bad_alternatives_are_rejected(alternatives: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        Fallback(alternatives)


async def test_model_names_may_contain_slashes() -> None:
    # "provider/model" splits on the first "/": the model keeps the rest.
    p, q = Script(failure(503)), Script(chat_ok())
    await falling_back(["q/meta-llama/llama-3-8b"], p=p, q=q).acompletion("p/m", HI)
    assert sent_model(q) == "meta-llama/llama-3-8b"
