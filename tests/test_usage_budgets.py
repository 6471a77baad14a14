"""Budget: refuses before I/O once spent, resets with its period, bounded overshoot under load."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest

from middlewares import Budget, Costs, ErrorMapping, Fallback
from pipeline import Handler, Request, Result, errors
from providers.mock import echo_handler
from tests._usage import FakeClock, FakeDeployment, mock_pipeline, route_to

pytestmark = pytest.mark.anyio

# A fixed price per token through the call's metadata, so the arithmetic is exact:
# the mock echo provider counts one prompt token per word and replies "echo: <text>".
PRICE = {"input_cost_per_token": 0.01, "output_cost_per_token": 0.0}
ONE_WORD = [{"role": "user", "content": "go"}]  # 1 prompt token: costs 0.01
START = datetime(2026, 3, 10, 14, 30, tzinfo=UTC).timestamp()


class Counting:
    """The mock provider, counting the requests that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return echo_handler(request)


async def spend(
    pipe: Any, n: int = 1, model: str = "openai/gpt-4o-mini", metadata: Any = None
) -> None:
    for _ in range(n):
        await pipe.acompletion(model, ONE_WORD, metadata={**PRICE, **(metadata or {})})


async def test_refuses_before_io_once_the_limit_is_spent() -> None:
    clock, upstream = FakeClock(START), Counting()
    budget = Budget(0.03, period="day", clock=clock)
    async with mock_pipeline([budget, Costs(), ErrorMapping()], upstream) as pipe:
        await spend(pipe, 3)
        assert budget.spent("provider:openai") == pytest.approx(0.03)
        with pytest.raises(errors.BudgetExceededError) as caught:
            await spend(pipe)
    assert upstream.calls == 3
    error = caught.value
    assert error.scope == "provider:openai"
    assert error.spent == pytest.approx(0.03) and error.limit == 0.03
    next_day = datetime(2026, 3, 11, tzinfo=UTC).timestamp()
    assert error.resets_at == next_day
    assert error.retry_after == pytest.approx(next_day - START)
    assert not error.retryable


@pytest.mark.parametrize(
    ("period", "boundary"),
    [
        ("hour", datetime(2026, 3, 10, 15, tzinfo=UTC)),
        ("day", datetime(2026, 3, 11, tzinfo=UTC)),
        ("month", datetime(2026, 4, 1, tzinfo=UTC)),
    ],
)
async def test_calendar_periods_reset_at_the_next_utc_boundary(
    period: str, boundary: datetime
) -> None:
    clock, upstream = FakeClock(START), Counting()
    budget = Budget(0.01, period=period, clock=clock)  # type: ignore[arg-type]
    async with mock_pipeline([budget, Costs()], upstream) as pipe:
        await spend(pipe)
        clock.now = boundary.timestamp() - 0.001
        with pytest.raises(errors.BudgetExceededError) as caught:
            await spend(pipe)
        assert caught.value.resets_at == boundary.timestamp()
        clock.now = boundary.timestamp()
        await spend(pipe)  # a new window: allowed, and it spends from zero
        assert budget.spent("provider:openai") == pytest.approx(0.01)
    assert upstream.calls == 2


async def test_december_rolls_over_into_january() -> None:
    clock = FakeClock(datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp())
    budget = Budget(0.01, period="month", clock=clock)
    async with mock_pipeline([budget, Costs()]) as pipe:
        await spend(pipe)
        with pytest.raises(errors.BudgetExceededError) as caught:
            await spend(pipe)
    assert caught.value.resets_at == datetime(2027, 1, 1, tzinfo=UTC).timestamp()


async def test_a_rolling_window_forgets_spend_after_its_seconds() -> None:
    clock = FakeClock(1000.0)
    budget = Budget(0.02, period=60, clock=clock)
    async with mock_pipeline([budget, Costs()]) as pipe:
        await spend(pipe)  # at 1000
        clock.advance(30)
        await spend(pipe)  # at 1030: 0.02 spent in the last minute
        clock.advance(29)
        with pytest.raises(errors.BudgetExceededError) as caught:
            await spend(pipe)
        # The first spend leaves the window a minute after its one-second slot ends.
        assert caught.value.resets_at == pytest.approx(1061.0)
        clock.now = 1061.0
        await spend(pipe)  # only the spend at 1030 is left
        assert budget.spent("provider:openai") == pytest.approx(0.02)


async def test_scopes_keep_separate_accounts() -> None:
    clock = FakeClock(START)
    by_model = Budget(0.01, scope="model", clock=clock)
    async with mock_pipeline([by_model, Costs()], names=("openai", "other")) as pipe:
        await spend(pipe, model="openai/gpt-4o-mini")
        await spend(pipe, model="openai/gpt-4o")  # another model: its own account
        await spend(pipe, model="other/gpt-4o-mini")
        with pytest.raises(errors.BudgetExceededError) as caught:
            await spend(pipe, model="openai/gpt-4o-mini")
    assert caught.value.scope == "model:openai/gpt-4o-mini"
    assert set(by_model.snapshot()) == {
        "model:openai/gpt-4o-mini",
        "model:openai/gpt-4o",
        "model:other/gpt-4o-mini",
    }


async def test_tag_scope_counts_each_tag_and_any_spent_tag_refuses() -> None:
    clock = FakeClock(START)
    budget = Budget(0.02, scope="tag", clock=clock)
    async with mock_pipeline([budget, Costs()]) as pipe:
        await spend(pipe, metadata={"tags": ["team-a", "batch"]})
        await spend(pipe, metadata={"tags": ["team-b", "batch"]})
        await spend(pipe)  # untagged: outside this budget
        await spend(pipe, metadata={"tags": ["team-a"]})
        with pytest.raises(errors.BudgetExceededError) as caught:
            await spend(pipe, metadata={"tags": ["team-c", "batch"]})
    assert caught.value.scope == "tag:batch"
    assert budget.spent("tag:team-a") == pytest.approx(0.02)
    assert budget.spent("tag:team-b") == pytest.approx(0.01)
    assert budget.spent("tag:team-c") == 0.0


async def test_deployment_scope_reads_the_routed_deployment_and_its_tags() -> None:
    clock = FakeClock(START)
    east = FakeDeployment("east", tags=frozenset({"eu"}))
    by_deployment = Budget(0.01, scope="deployment", clock=clock)
    by_tag = Budget(0.05, scope="tag", clock=clock)
    layers = [route_to(east), by_deployment, by_tag, Costs()]
    async with mock_pipeline(layers) as pipe:
        await spend(pipe)
        with pytest.raises(errors.BudgetExceededError) as caught:
            await spend(pipe)
    assert caught.value.scope == "deployment:east"
    assert by_tag.spent("tag:eu") == pytest.approx(0.01)


async def test_a_callable_scope_chooses_the_key_or_leaves_the_request_out() -> None:
    clock = FakeClock(START)

    def team(request: Request) -> str | None:
        metadata = request.options.get("metadata") or {}
        return metadata.get("team")

    budget = Budget(0.01, scope=team, clock=clock)
    async with mock_pipeline([budget, Costs()]) as pipe:
        await spend(pipe, metadata={"team": "red"})
        await spend(pipe, 3)  # no team: never limited
        with pytest.raises(errors.BudgetExceededError) as caught:
            await spend(pipe, metadata={"team": "red"})
    assert caught.value.scope == "red"


async def test_a_stream_spends_when_it_ends() -> None:
    clock = FakeClock(START)
    budget = Budget(1.0, clock=clock)
    async with mock_pipeline([budget, Costs()]) as pipe:
        stream = await pipe.acompletion("openai/gpt-4o-mini", ONE_WORD, stream=True, metadata=PRICE)
        first = await stream.__anext__()
        assert first is not None
        assert budget.spent("provider:openai") == 0.0
        async for _ in stream:
            pass
    assert stream.cost == pytest.approx(0.01)
    assert budget.spent("provider:openai") == pytest.approx(0.01)


async def test_failures_spend_nothing() -> None:
    clock = FakeClock(START)
    budget = Budget(0.01, clock=clock)

    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "no"}})

    async with mock_pipeline([budget, Costs(), ErrorMapping()], failing) as pipe:
        for _ in range(3):
            with pytest.raises(errors.BadRequestError):
                await spend(pipe)
    assert budget.spent("provider:openai") == 0.0


async def test_fallback_moves_on_when_a_budget_is_spent() -> None:
    clock = FakeClock(START)
    budget = Budget(0.01, clock=clock)
    layers = [Fallback(["other/gpt-4o-mini"]), budget, Costs(), ErrorMapping()]
    async with mock_pipeline(layers, names=("openai", "other")) as pipe:
        await spend(pipe)
        response = await pipe.acompletion("openai/gpt-4o-mini", ONE_WORD, metadata=PRICE)
    assert response.provider == "other"
    assert [(a.provider, a.error) for a in response.attempts] == [
        ("openai", "BudgetExceededError"),
        ("other", None),
    ]


async def test_concurrent_requests_overshoot_by_at_most_those_in_flight() -> None:
    """100 requests, at most 10 at a time: once the limit is crossed, the overshoot
    is bounded by the requests that were already in flight, and the rest are
    refused without reaching the provider."""
    clock, upstream, rng = FakeClock(START), Counting(), random.Random(7)
    limit, cost, workers = 0.255, 0.01, 10
    budget = Budget(limit, clock=clock)
    state: dict[str, Any] = {"in_flight": 0, "at_crossing": None, "spent_at_crossing": 0.0}

    async def provider(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(rng.uniform(0, 0.003))
        return upstream(request)

    async def watch(request: Request, call_next: Handler) -> Result:
        state["in_flight"] += 1
        try:
            return await call_next(request)
        finally:
            state["in_flight"] -= 1

    async def outside(request: Request, call_next: Handler) -> Result:
        result = await call_next(request)
        spent = budget.spent("provider:openai")
        if state["at_crossing"] is None and spent >= limit:
            state["at_crossing"] = state["in_flight"]
            state["spent_at_crossing"] = spent
        return result

    refused = 0
    slots = anyio.Semaphore(workers)
    async with mock_pipeline([outside, budget, watch, Costs()], provider) as pipe:

        async def one() -> None:
            nonlocal refused
            async with slots:
                try:
                    await pipe.acompletion("openai/gpt-4o-mini", ONE_WORD, metadata=PRICE)
                except errors.BudgetExceededError:
                    refused += 1

        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(one)
    spent = budget.spent("provider:openai")
    assert state["at_crossing"] is not None
    in_flight = state["at_crossing"]
    assert 0 <= in_flight < workers
    assert upstream.calls + refused == 100
    assert refused > 0
    assert spent == pytest.approx(upstream.calls * cost)
    assert state["spent_at_crossing"] < limit + cost + 1e-9  # crossed by one reply
    assert spent <= state["spent_at_crossing"] + in_flight * cost + 1e-9
    assert spent - limit <= (in_flight + 1) * cost + 1e-9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0,), "limit_usd"),
        ((-1.0,), "limit_usd"),
        ((float("inf"),), "limit_usd"),
        ((1.0, "week"), "period"),
        ((1.0, 0), "period"),
        ((1.0, "day", "user"), "scope"),
    ],
)
def test_bad_configuration_is_refused_at_construction(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Budget(*args)
