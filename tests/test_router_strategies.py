"""Strategies: weighted shares whatever the order, priority tiers, least busy, latency
(peak-EWMA with two random choices), cost, and a strategy of one's own."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from middlewares import CircuitBreaker, Deployment, Router
from middlewares.router import Context, CostStrategy
from pipeline import errors
from tests._routing import FakeClock, Terminal, answer, build, held, timed

pytestmark = pytest.mark.anyio

D = Deployment


async def shares(router: Router, terminal: Terminal, n: int, model: str = "g") -> dict[str, float]:
    for _ in range(n):
        await router(build(router, model), terminal)
    counts = terminal.counts
    return {name: counts[name] / n for name in counts}


@pytest.mark.parametrize(
    "members",
    [
        [D("a/m", weight=3), D("b/m", weight=1)],
        [D("b/m", weight=1), D("a/m", weight=3)],
        [D("b/m", weight=1), D("c/m", weight=6), D("a/m", weight=3)],
    ],
)
async def test_weights_hold_whatever_the_list_order(members: list[Deployment]) -> None:
    router = Router({"g": members}, rng=random.Random(20240601))
    got = await shares(router, Terminal(), 4000)
    total = sum(d.weight for d in members)
    for d in members:
        assert got[d.target] == pytest.approx(d.weight / total, abs=0.025)


async def test_a_lower_tier_is_used_only_when_the_tier_above_is_unavailable() -> None:
    clock = FakeClock()
    router = Router(
        {"g": [D("backup/m", priority=1), D("a/m", rpm=30), D("b/m", rpm=30)]},
        clock=clock,
    )
    terminal = Terminal()
    got = await shares(router, terminal, 60)
    assert "backup/m" not in got  # 60 requests fit the two priority-0 deployments exactly
    await router(build(router), terminal)  # both at their rpm now
    assert terminal.calls[-1] == "backup/m"
    clock.now += 61  # the window has moved on
    await router(build(router), terminal)
    assert terminal.calls[-1] in {"a/m", "b/m"}


async def test_priority_strategy_is_strict_list_order_with_deterministic_failover() -> None:
    router = Router({"g": [D("a/m"), D("b/m"), D("c/m")]}, strategy="priority")
    terminal = Terminal(a__m=[errors.ServiceUnavailableError("down"), answer()])
    await router(build(router), terminal)
    await router(build(router), terminal)
    assert terminal.calls == ["a/m", "b/m", "a/m"]


async def test_least_busy_picks_the_idle_one() -> None:
    router = Router({"g": [D("a/m"), D("b/m"), D("c/m")]}, strategy="least_busy")
    gate = anyio.Event()

    terminal = Terminal(default=held(gate))
    async with anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(router, build(router), terminal)
            await anyio.wait_all_tasks_blocked()
        busy = set(terminal.calls)
        assert len(busy) == 2  # the second went to one of the idle ones, not the busy one
        terminal.default = lambda request: answer()
        await router(build(router), terminal)
        assert terminal.calls[-1] not in busy
        gate.set()


async def test_latency_moves_traffic_away_from_a_slowed_deployment_and_back() -> None:
    clock = FakeClock()
    router = Router(
        {"g": [D("a/m"), D("b/m")]}, strategy="latency", clock=clock, rng=random.Random(5)
    )
    speed = {"a/m": 0.2, "b/m": 0.2}

    def reply(request: Any) -> Any:
        clock.now += speed[request.options["deployment"].name]
        return answer()

    terminal = Terminal(default=reply)

    async def run(n: int) -> dict[str, int]:
        before = len(terminal.calls)
        for _ in range(n):
            await router(build(router), terminal)
        tail = terminal.calls[before:]
        return {name: tail.count(name) for name in speed}

    assert min((await run(100)).values()) > 20  # both serve while both are fast
    speed["b/m"] = 3.0
    await run(20)  # learning
    slowed = await run(100)
    assert slowed["b/m"] <= 10
    speed["b/m"] = 0.2
    await run(150)  # b's idle estimate decays; once tried again it proves fast
    recovered = await run(100)
    assert recovered["b/m"] >= 25


async def test_latency_does_not_reward_failing_fast() -> None:
    clock = FakeClock()
    router = Router(
        {"g": [D("fails/m"), D("slow/m")]},
        strategy="latency",
        breaker=None,
        clock=clock,
        rng=random.Random(9),
    )
    terminal = Terminal(
        fails__m=errors.ServiceUnavailableError("overloaded"),  # answers at once, always fails
        slow__m=timed(clock, 0.5, answer()),
    )
    for _ in range(100):
        response = await router(build(router), terminal)
        assert response.provider == "slow"
    assert terminal.counts["fails/m"] <= 8


async def test_cost_prefers_the_cheapest_known_price_and_puts_unknown_last() -> None:
    library = {("lib", "m"): (2e-6, 8e-6)}

    def prices(provider: str, model: str, prompt: int, completion: int) -> float | None:
        found = library.get((provider, model))
        return None if found is None else prompt * found[0] + completion * found[1]

    group = [
        D("unknown/m"),
        D("pricey/m", input_cost_per_token=1e-5, output_cost_per_token=3e-5),
        D("lib/m"),
        D("cheap/m", input_cost_per_token=1e-7, output_cost_per_token=4e-7, rpm=2),
    ]
    router = Router({"g": group}, strategy=CostStrategy(prices), clock=FakeClock())
    terminal = Terminal(default=lambda request: answer())
    for _ in range(4):
        await router(build(router, max_tokens=100), terminal)
    assert terminal.calls == ["cheap/m", "cheap/m", "lib/m", "lib/m"]
    ordered = CostStrategy(prices).order(group, _context(router))
    assert [d.target for d in ordered] == ["cheap/m", "lib/m", "pricey/m", "unknown/m"]


def _context(router: Router) -> Context:
    request = build(router, max_tokens=100)
    return Context(request, lambda r: 1000, 0.0, random.Random(), router.state, {})


async def test_cost_by_name_uses_the_deployment_prices() -> None:
    router = Router(
        {
            "g": [
                D("a/m", input_cost_per_token=3e-6, output_cost_per_token=3e-6),
                D("b/m", input_cost_per_token=1e-6, output_cost_per_token=1e-6),
            ]
        },
        strategy="cost",
    )
    terminal = Terminal()
    await router(build(router), terminal)
    assert terminal.calls == ["b/m"]


async def test_a_custom_strategy_is_any_object_with_order() -> None:
    class LastFirst:
        def order(self, deployments: Sequence[Deployment], context: Context) -> list[Deployment]:
            return list(reversed(deployments))

    router = Router({"g": [D("a/m"), D("b/m"), D("c/m")]}, strategy=LastFirst())
    terminal = Terminal(c__m=errors.InternalServerError("boom"))
    await router(build(router), terminal)
    assert terminal.calls == ["c/m", "b/m"]


async def test_breaker_open_deployments_are_skipped_by_every_strategy() -> None:
    for strategy in ("weighted", "priority", "least_busy", "latency", "cost"):
        clock = FakeClock()
        router = Router(
            {"g": [D("a/m"), D("b/m")]},
            strategy=strategy,
            breaker=CircuitBreaker(min_requests=2, failure_ratio=0.5, cooldown=30),
            clock=clock,
        )
        terminal = Terminal(
            a__m=errors.InternalServerError("down"), b__m=timed(clock, 0.1, answer())
        )
        for _ in range(200):
            await router(build(router), terminal)
            clock.now += 1.0  # so the latency strategy's penalty decays and a is tried again
            if router.snapshot().deployments["a/m"].breaker == "open":
                break
        assert terminal.counts["a/m"] == 2, strategy
        for _ in range(20):
            await router(build(router), terminal)
        assert terminal.counts["a/m"] == 2, strategy


async def test_cost_reads_the_usage_price_library_when_installed() -> None:
    pytest.importorskip("genai_prices")
    router = Router(
        {"g": [D("openai/gpt-4o"), D("openai/gpt-4o-mini"), D("nobody/knows-this")]},
        strategy="cost",
    )
    terminal = Terminal()
    await router(build(router), terminal)
    assert terminal.calls == ["openai/gpt-4o-mini"]
