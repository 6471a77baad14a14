"""Retry: which errors, how often, how long it waits (the LATEST Retry-After), the deadline,
the budget, streams, and the attempts it records."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from middlewares.error_mapping import ErrorMapping
from middlewares.fallback import Fallback
from middlewares.retry import Retry, RetryBudget
from pipeline import Attempt, Pipeline, errors
from providers import Script
from tests._scripted_replies import (
    HI,
    FakeClock,
    Sleeps,
    chat_ok,
    drain,
    failure,
    registry,
    sse,
    sse_cut,
)

pytestmark = pytest.mark.anyio


def retrying(script: Script, **options: Any) -> tuple[Pipeline, Sleeps]:
    sleeps = options.pop("sleep", None) or Sleeps()
    retry = Retry(sleep=sleeps, **options)
    return Pipeline([retry, ErrorMapping()], registry=registry(p=script)), sleeps


def tried(*errors_or_none: str | None) -> tuple[Attempt, ...]:
    return tuple(Attempt("p", "m", e) for e in errors_or_none)


async def test_retryable_errors_are_retried_and_every_attempt_recorded() -> None:
    script = Script(failure(500), httpx.ReadTimeout("slow"), failure(503), chat_ok("finally"))
    pipe, sleeps = retrying(script, attempts=4)
    resp = await pipe.acompletion("p/m", HI)
    assert resp.choices[0].message.content == "finally"
    assert len(script.requests) == 4
    assert len(sleeps.waits) == 3
    assert resp.attempts == tried(
        "InternalServerError", "TimeoutError", "ServiceUnavailableError", None
    )


async def test_a_first_success_records_one_attempt() -> None:
    pipe, sleeps = retrying(Script(chat_ok()))
    resp = await pipe.acompletion("p/m", HI)
    assert resp.attempts == tried(None)
    assert sleeps.waits == []


async def test_retry_honours_the_latest_retry_after() -> None:
    script = Script(
        failure(429, headers={"retry-after": "1"}),
        failure(429, headers={"retry-after": "7"}),
        failure(503, headers={"retry-after-ms": "2500"}),
        chat_ok(),
    )
    pipe, sleeps = retrying(script, attempts=4, base_delay=0.001, max_delay=30.0)
    await pipe.acompletion("p/m", HI)
    assert sleeps.waits == [1.0, 7.0, 2.5]


async def test_retry_after_is_capped_by_max_delay() -> None:
    script = Script(failure(429, headers={"retry-after": "100"}), chat_ok())
    pipe, sleeps = retrying(script, max_delay=5.0, deadline=1000.0)
    await pipe.acompletion("p/m", HI)
    assert sleeps.waits == [5.0]


async def test_gives_up_after_attempts_and_raises_the_latest_error() -> None:
    script = Script(failure(500), failure(502), failure(503), chat_ok("never reached"))
    pipe, sleeps = retrying(script, attempts=3)
    with pytest.raises(errors.ServiceUnavailableError) as caught:
        await pipe.acompletion("p/m", HI)
    assert len(script.requests) == 3
    assert script.remaining == 1
    assert len(sleeps.waits) == 2
    assert caught.value.attempts == tried(
        "InternalServerError", "InternalServerError", "ServiceUnavailableError"
    )


async def test_gives_up_when_retry_after_does_not_fit_in_the_deadline() -> None:
    clock = FakeClock()
    hint = {"retry-after": "6"}
    script = Script(failure(503, headers=hint), failure(503, headers=hint), chat_ok())
    pipe, sleeps = retrying(
        script, attempts=10, deadline=10.0, max_delay=30.0, clock=clock, sleep=Sleeps(clock)
    )
    with pytest.raises(errors.ServiceUnavailableError) as caught:
        await pipe.acompletion("p/m", HI)
    assert sleeps.waits == [6.0]  # at t=6 only 4 s are left: a 6 s Retry-After cannot fit
    assert len(script.requests) == 2
    assert len(caught.value.attempts) == 2


async def test_backoff_never_runs_past_the_deadline() -> None:
    clock = FakeClock()
    script = Script(*[failure(500) for _ in range(50)])
    pipe, sleeps = retrying(
        script, attempts=50, deadline=5.0, base_delay=1.0, max_delay=2.0,
        clock=clock, sleep=Sleeps(clock),
    )  # fmt: skip
    with pytest.raises(errors.InternalServerError):
        await pipe.acompletion("p/m", HI)
    assert sum(sleeps.waits) <= 5.0 + 1e-9
    assert 2 <= len(script.requests) < 50


async def test_non_retryable_errors_are_raised_at_once() -> None:
    script = Script(failure(401, code="invalid_api_key"), chat_ok())
    pipe, sleeps = retrying(script)
    with pytest.raises(errors.AuthenticationError) as caught:
        await pipe.acompletion("p/m", HI)
    assert len(script.requests) == 1
    assert sleeps.waits == []
    assert caught.value.attempts == tried("AuthenticationError")


async def test_x_should_retry_false_is_not_retried() -> None:
    script = Script(failure(500, headers={"x-should-retry": "false"}), chat_ok())
    pipe, _ = retrying(script)
    with pytest.raises(errors.InternalServerError):
        await pipe.acompletion("p/m", HI)
    assert script.remaining == 1


async def test_raw_httpx_errors_are_not_retried_without_error_mapping_inside() -> None:
    script = Script(httpx.ReadTimeout("slow"), chat_ok())
    sleeps = Sleeps()
    pipe = Pipeline([Retry(sleep=sleeps)], registry=registry(p=script))
    with pytest.raises(httpx.ReadTimeout):
        await pipe.acompletion("p/m", HI)
    assert script.remaining == 1


async def test_retry_on_predicate_chooses_what_is_retried() -> None:
    script = Script(failure(400, "flaky validator"), chat_ok())
    pipe, _ = retrying(script, retry_on=lambda exc: isinstance(exc, errors.BadRequestError))
    resp = await pipe.acompletion("p/m", HI)
    assert resp.attempts == tried("BadRequestError", None)


# -- backoff ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("draw", "expected"), [("top", [1, 2, 4, 4, 4]), ("bottom", [0] * 5)])
async def test_backoff_is_exponential_full_jitter_capped(
    monkeypatch: pytest.MonkeyPatch, draw: str, expected: list[float]
) -> None:
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high if draw == "top" else low

    monkeypatch.setattr(random, "uniform", uniform)
    script = Script(*[failure(500) for _ in range(6)])
    pipe, sleeps = retrying(script, attempts=6, base_delay=1.0, max_delay=4.0, deadline=1000.0)
    with pytest.raises(errors.InternalServerError):
        await pipe.acompletion("p/m", HI)
    assert sleeps.waits == expected
    assert bounds == [(0.0, 1.0), (0.0, 2.0), (0.0, 4.0), (0.0, 4.0), (0.0, 4.0)]


async def test_real_jitter_stays_within_each_ceiling_and_varies() -> None:
    waits: list[float] = []
    for _ in range(10):
        script = Script(*[failure(500) for _ in range(5)])
        pipe, sleeps = retrying(script, attempts=5, base_delay=1.0, max_delay=3.0, budget=None)
        with pytest.raises(errors.InternalServerError):
            await pipe.acompletion("p/m", HI)
        for tries, wait in enumerate(sleeps.waits, start=1):
            assert 0.0 <= wait <= min(3.0, 2.0 ** (tries - 1))
        waits.extend(sleeps.waits)
    assert len(set(waits)) > 1


async def test_default_sleep_goes_through_anyio() -> None:
    script = Script(failure(503), chat_ok())
    retry = Retry(base_delay=0.0, max_delay=0.0)  # anyio.sleep(0): no waiting, both backends
    pipe = Pipeline([retry, ErrorMapping()], registry=registry(p=script))
    resp = await pipe.acompletion("p/m", HI)
    assert resp.attempts == tried("ServiceUnavailableError", None)


# -- budget ----------------------------------------------------------------------------------


def always_failing() -> tuple[list[int], Any]:
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        return failure(500)

    return calls, handler


async def storm(
    budget: RetryBudget | None, requests: int = 100
) -> tuple[int, list[errors.DispatchError]]:
    calls, handler = always_failing()
    retry = Retry(attempts=3, budget=budget, sleep=Sleeps())
    pipe = Pipeline([retry, ErrorMapping()], registry=registry(p=handler))
    raised: list[errors.DispatchError] = []
    for _ in range(requests):
        with pytest.raises(errors.InternalServerError) as caught:
            await pipe.acompletion("p/m", HI)
        raised.append(caught.value)
    return calls[0], raised


async def test_without_a_budget_a_failing_provider_gets_every_retry() -> None:
    calls, _ = await storm(None)
    assert calls == 300


async def test_budget_stops_a_retry_storm() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0, clock=FakeClock())
    calls, raised = await storm(budget)
    # 100 first tries, plus at most 20 % of them plus 1/s over the 10 s window.
    assert calls == 100 + 20 + 10
    # Once spent, a request fails on its first try with that try's error (except the
    # one retry that every 5 new requests earn back at 20 %).
    first_try_only = [e for e in raised if len(e.attempts) == 1]
    assert len(first_try_only) >= 70
    assert first_try_only[-1].attempts == (Attempt("p", "m", "InternalServerError"),)


async def test_budget_refills_as_the_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.2, window=10.0, clock=clock)
    calls, _ = await storm(budget, requests=5)
    assert calls == 5 + 2  # the floor: 0.2/s over 10 s
    clock.now += 10.0
    calls, raised = await storm(budget, requests=1)
    assert calls == 3
    assert len(raised[0].attempts) == 3


async def test_each_retry_has_its_own_budget_by_default() -> None:
    first, second = Retry(), Retry()
    assert isinstance(first.budget, RetryBudget)
    assert first.budget is not second.budget
    assert Retry(budget=None).budget is None


# -- streams ---------------------------------------------------------------------------------


async def test_no_retry_once_the_first_chunk_has_arrived() -> None:
    script = Script(sse_cut("a", "b"), sse("never"))
    pipe, sleeps = retrying(script)
    stream = await pipe.acompletion("p/m", HI, stream=True)
    seen: list[str | None] = []
    with pytest.raises(errors.APIConnectionError):
        await drain(stream, seen)
    assert seen == ["a", "b"]
    assert script.remaining == 1
    assert sleeps.waits == []
    assert stream.attempts == tried(None)


async def test_a_stream_failing_before_its_first_chunk_is_retried() -> None:
    script = Script(sse_cut(), httpx.ReadTimeout("slow"), failure(503), sse("ok"))
    pipe, sleeps = retrying(script, attempts=4)
    stream = await pipe.acompletion("p/m", HI, stream=True)
    contents = [chunk.choices[0].delta.content async for chunk in stream]
    assert contents == ["ok", ""]
    assert stream.attempts == tried(
        "APIConnectionError", "TimeoutError", "ServiceUnavailableError", None
    )
    assert len(sleeps.waits) == 3


# -- composition, repr, options -----------------------------------------------------------------


async def test_attempts_recorded_inside_are_kept_in_order() -> None:
    primary = Script(failure(503), failure(503))
    backup = Script(failure(503), chat_ok("from q"))
    retry = Retry(
        attempts=2, sleep=Sleeps(), retry_on=lambda exc: isinstance(exc, errors.FallbackError)
    )
    pipe = Pipeline(
        [retry, Fallback(["q/m"]), ErrorMapping()], registry=registry(p=primary, q=backup)
    )
    resp = await pipe.acompletion("p/m", HI)
    assert resp.choices[0].message.content == "from q"
    assert resp.attempts == (
        Attempt("p", "m", "ServiceUnavailableError"),
        Attempt("q", "m", "ServiceUnavailableError"),
        Attempt("p", "m", "ServiceUnavailableError"),
        Attempt("q", "m", None),
    )


def test_repr_shows_the_options() -> None:
    text = repr(Retry(attempts=5, deadline=30.0, base_delay=0.25, max_delay=8.0))
    assert text == (
        "Retry(attempts=5, deadline=30.0, base_delay=0.25, max_delay=8.0, "
        "budget=RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0))"
    )
    assert "budget=None" in repr(Retry(budget=None))


@pytest.mark.parametrize(
    "options",
    [
        {"attempts": 0},
        {"attempts": 2.5},
        {"attempts": True},
        {"deadline": 0},
        {"base_delay": -1.0},
        {"base_delay": 5.0, "max_delay": 1.0},
        {"max_delay": float("inf")},
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"attempts|deadline|delay"):
        Retry(**options)


@pytest.mark.parametrize("options", [{"ratio": -0.1}, {"min_per_second": -1.0}, {"window": 0.0}])
def test_bad_budget_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"ratio|min_per_second|window"):
        RetryBudget(**options)
