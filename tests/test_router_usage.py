"""The Router with the usage layers in the default stack: a deployment's spent budget
skips it, its own price is what Costs charges, and Stats files each try under it."""

from __future__ import annotations

import pytest

from middlewares import Budget, Deployment, Router, Stats
from pipeline import Pipeline
from providers import Script
from tests._routing import HI, FakeClock
from tests._scripted_replies import chat_ok, registry

pytestmark = pytest.mark.anyio


async def test_a_spent_deployment_budget_moves_the_router_on_and_stats_see_deployments() -> None:
    router = Router(
        {
            "g": [
                Deployment(
                    "a/m", name="east", input_cost_per_token=0.01, output_cost_per_token=0.01
                ),
                Deployment(
                    "b/m", name="west", input_cost_per_token=0.01, output_cost_per_token=0.01
                ),
            ]
        },
        strategy="priority",
        clock=FakeClock(),
    )
    stats = Stats()
    a, b = Script(chat_ok("from a"), chat_ok("again a")), Script(chat_ok("from b"))
    pipe = Pipeline.default(
        router=router,
        stats=stats,
        budgets=[Budget(0.01, period="day", scope="deployment")],
        cache=False,
        registry=registry(a=a, b=b),
    )
    first = await pipe.acompletion("g", HI)
    assert first.provider == "a"
    assert first.cost == pytest.approx(0.02)  # 1 + 1 tokens at 0.01
    second = await pipe.acompletion("g", [{"role": "user", "content": "and again"}])
    assert second.provider == "b"  # east spent its 0.01: skipped, not failed
    assert [x.deployment for x in second.attempts] == ["east", "west"]
    assert router.snapshot().deployments["east"].breaker == "closed"
    deployments = stats.snapshot().to_dict()["deployments"]
    assert set(deployments) >= {"east", "west"}
