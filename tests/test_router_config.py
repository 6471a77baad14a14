"""Router configuration: checked when the Router is built, names, rules, group names
as model names, the snapshot, and the default stack's order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from middlewares import (
    CircuitBreaker,
    Deployment,
    ErrorMapping,
    Fallback,
    Hedge,
    Retry,
    Router,
    RoutingRule,
    default_stack,
)
from middlewares.router import ROUTED
from pipeline import Pipeline, errors
from providers import Script
from tests._routing import HI, FakeClock, Terminal, answer, build
from tests._scripted_replies import chat_ok, registry

D = Deployment


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: Router({"g": [D("a/m")]}, strategy="fastest"), "unknown routing strategy"),
        (lambda: Router({"g": [D("a/m", weight=-1)]}), "weight must be a positive number"),
        (lambda: Router({"g": [D("a/m", weight=0)]}), "weight must be a positive number"),
        (lambda: Router({"g": []}), "group 'g' is empty"),
        (lambda: Router({}), "Router needs groups"),
        (
            lambda: Router({"g": [D("a/m")]}, rules=[RoutingRule(target="nowhere")]),
            "points nowhere",
        ),
        (
            lambda: Router({"g": [D("a/m", name="x"), D("b/m", name="x")]}),
            "two deployments are named 'x'",
        ),
        (
            lambda: Router({"g": [D("a/m", name="x")], "h": [D("b/m", name="x")]}),
            "already used by a different deployment",
        ),
        (lambda: D("no-slash"), "'provider/model'"),
        (lambda: D("a/m", rpm=0), "rpm must be a positive int"),
        (lambda: D("a/m", tpm=-5), "tpm must be a positive int"),
        (
            lambda: D("a/m", max_concurrency=1.5),  # type: ignore[arg-type]
            "max_concurrency must be a positive int",
        ),
        (lambda: D("a/m", input_cost_per_token=-1.0), "input_cost_per_token must be >= 0"),
        (lambda: CircuitBreaker(min_requests=0), "min_requests must be an int >= 1"),
        (lambda: CircuitBreaker(failure_ratio=1.5), "failure_ratio is at most 1"),
        (lambda: CircuitBreaker(cooldown=-1), "cooldown must be a finite number"),
        (lambda: Hedge(after=-1), "after= is a number"),
        (lambda: Hedge(after="p99"), "after= is a number"),  # type: ignore[arg-type]
        (lambda: Hedge(after=1.0, max_extra=0), "max_extra must be an int >= 1"),
        (lambda: Router({"g": [D("a/m")]}, max_wait=-1), "max_wait must be"),
        (lambda: Router({"g": [D("a/m")]}, max_attempts=0), "max_attempts must be"),
        (lambda: Router({"g": [D("a/m")]}, strategy=object()), "order() method"),  # type: ignore[arg-type]
        (lambda: Router({"g": ["a/m"]}), "is not a Deployment"),  # type: ignore[list-item]
        (lambda: RoutingRule(target="g", max_tokens=-1), "max_tokens must be a number >= 0"),
    ],
)
def test_bad_configuration_fails_at_construction(make: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_names_default_to_the_target_suffixed_when_a_group_repeats_it() -> None:
    router = Router(
        {
            "g": [D("a/m"), D("a/m", api_base="https://two"), D("b/m", name="mine"), D("a/m")],
            "h": [D("a/m")],  # configured alike: the same deployment as g's first
        }
    )
    snap = router.snapshot()
    assert list(snap.deployments) == ["a/m", "a/m#2", "mine", "a/m#3"]
    assert snap.deployments["a/m"].groups == ("g", "h")
    assert router.groups == ("g", "h")


def test_a_deployment_key_never_shows() -> None:
    d = D("a/m", api_key="sk-secret-value-1234")
    assert "sk-secret" not in repr(d)
    assert "sk-secret" not in repr(Router({"g": [d]}))
    assert d.key() is not None and d.key().reveal() == "sk-secret-value-1234"  # type: ignore[union-attr]


def test_an_unset_key_variable_is_an_authentication_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTER_TEST_KEY", raising=False)
    d = D("a/m", api_key_env="ROUTER_TEST_KEY", name="d")
    with pytest.raises(errors.AuthenticationError, match="ROUTER_TEST_KEY is not set"):
        d.key()
    monkeypatch.setenv("ROUTER_TEST_KEY", "k-123456")
    assert d.key().reveal() == "k-123456"  # type: ignore[union-attr]


# -- names as models -------------------------------------------------------------


def test_group_names_and_matching_names_are_accepted_unknown_ones_are_not() -> None:
    router = Router(
        {"chat-fast": [D("a/m")]},
        rules=[RoutingRule(target="chat-fast", model="house-*", max_tokens=100)],
    )
    pipe = Pipeline([router], registry=registry(a=Script()))
    assert pipe.request("chat", "chat-fast", messages=HI).target == f"{ROUTED}/chat-fast"
    assert pipe.request("chat", "router/chat-fast", messages=HI).model == "chat-fast"
    claimed = pipe.request("chat", "house-model", messages=HI, params={"max_tokens": 50})
    assert (claimed.provider, claimed.model) == (ROUTED, "house-model")
    # The rule's bound does not hold, and nothing else knows the name: before any I/O.
    with pytest.raises(errors.ProviderNotFoundError):
        pipe.request("chat", "house-model", messages=HI, params={"max_tokens": 500})
    with pytest.raises(errors.ProviderNotFoundError):
        pipe.request("chat", "chat-slow", messages=HI)
    # A name nobody claims resolves as usual.
    assert pipe.request("chat", "a/x", messages=HI).target == "a/x"


@pytest.mark.anyio
async def test_rules_first_match_wins_and_may_point_at_a_provider_model() -> None:
    router = Router(
        {"small": [D("a/s")], "big": [D("a/b")]},
        rules=[
            RoutingRule(target="small", model="gpt-4*", max_tokens=2000, max_temperature=1.0),
            RoutingRule(target="big", model="gpt-4*", tags={"vip"}),
            RoutingRule(target="b/direct", model="claude-*"),
        ],
    )
    terminal = Terminal()
    seen: list[str] = []

    async def direct(request: Any) -> Any:
        seen.append(request.target)
        return answer()

    await router(build(router, "gpt-4o", max_tokens=100, temperature=0.2), terminal)
    await router(build(router, "gpt-4o", max_tokens=100, metadata={"tags": ["vip"]}), terminal)
    assert terminal.calls == ["a/s", "a/b"]  # no temperature given: the first rule's bound fails
    with pytest.raises(errors.ProviderNotFoundError):  # max_tokens over the bound, no tag
        build(router, "house", max_tokens=5000)
    await router(build(router, "claude-3-5-haiku"), direct)
    assert seen == ["b/direct"]


@pytest.mark.anyio
async def test_per_call_credentials_are_refused_for_a_group() -> None:
    router = Router({"g": [D("a/m")]})
    pipe = Pipeline([router], registry=registry(a=Script()))
    with pytest.raises(errors.InvalidRequestError, match="carry their own"):
        await pipe.acompletion("g", HI, api_key="sk-mine-0000000")


@pytest.mark.anyio
async def test_the_deployment_credentials_travel_with_the_routed_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROUTER_DEPLOY_KEY", "env-key-0001")
    a = Script(chat_ok(), chat_ok())
    router = Router(
        {
            "g": [D("a/m", api_key="given-key-0001", api_base="https://a.example/v1")],
            "h": [D("a/m2", api_key_env="ROUTER_DEPLOY_KEY")],
        }
    )
    pipe = Pipeline([router, ErrorMapping()], registry=registry(a=a))
    await pipe.acompletion("g", HI)
    await pipe.acompletion("h", HI)
    first, second = a.requests
    assert str(first.url) == "https://a.example/v1/chat/completions"
    assert first.headers["authorization"] == "Bearer given-key-0001"
    assert second.headers["authorization"] == "Bearer env-key-0001"


# -- snapshot and stack ------------------------------------------------------------


@pytest.mark.anyio
async def test_snapshot_shows_each_deployment_and_is_json() -> None:
    router = Router(
        {"g": [D("a/m", weight=2, rpm=10, tpm=1000), D("b/m", priority=1)]}, clock=FakeClock()
    )
    await router(build(router), Terminal())
    snap = router.snapshot()
    a = snap.deployments["a/m"]
    assert (a.in_flight, a.breaker, a.reopens_at, a.rpm_used, a.weight, a.rpm) == (
        0,
        "closed",
        None,
        1,
        2,
        10,
    )
    assert a.tpm_used == 10  # the estimate, replaced by the answer's usage
    assert a.latency is not None and snap.deployments["b/m"].latency is None
    data = json.loads(json.dumps(snap.to_dict()))
    assert set(data["deployments"]["b/m"]) >= {
        "in_flight",
        "breaker",
        "reopens_at",
        "rpm_used",
        "tpm_used",
        "latency",
        "weight",
    }
    assert (await router.asnapshot()) == snap


def test_default_stack_puts_the_router_between_fallback_and_retry() -> None:
    router = Router({"g": [D("a/m")]})
    stack = default_stack(router=router, fallbacks=["b/m"])
    kinds = [type(layer).__name__ for layer in stack]
    assert kinds == ["Logging", "Cache", "Fallback", "Router", "Retry", "ErrorMapping"]
    pipe = Pipeline.default(router=router, registry=registry(a=Script()))
    assert router in pipe.middlewares
    assert isinstance(stack[2], Fallback) and isinstance(stack[4], Retry)
