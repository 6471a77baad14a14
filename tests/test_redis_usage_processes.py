"""Four worker processes sharing one real redis-server, with Stats and a Budget in
their pipelines (tests/_redis_worker.py, scenario ``usage``): one budget holds
across them, and the shared statistics are the sum of what each counted."""

from __future__ import annotations

from typing import Any

import pytest

from middlewares import Budget, Stats
from tests._redis import stored
from tests._redis_worker import SECRET, run_workers

PRICE = 0.001  # USD per prompt token of up/a: each call's prompt is one token


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the workers run on both
async def test_a_budget_holds_and_statistics_add_up_across_four_processes(
    redis_url: str, redis_prefix: str
) -> None:
    limit, width = 0.03, 3
    results = run_workers(
        4,
        "usage",
        redis_url,
        redis_prefix,
        price=PRICE,
        budget=limit,
        requests=30,
        concurrency=width,
        fail=["x"],
        delay=0.01,
    )
    budget = Budget(limit, redis=redis_url, prefix=redis_prefix)
    spent = await budget.aspent("provider:up")
    await budget.aclose()
    assert spent == pytest.approx(sum(r["spent"] for r in results))  # every process's spend
    assert spent == pytest.approx(sum(r["upstream"].get("a", 0) for r in results) * PRICE)
    assert sum(r["refused"] for r in results) > 0
    # Crossed, by at most the calls in flight everywhere when it was (4 x 3 at a time).
    assert limit <= spent <= limit + 4 * width * PRICE + 1e-9

    stats = Stats(redis=redis_url, prefix=redis_prefix)
    shared = (await stats.asnapshot()).to_dict()
    await stats.aclose()
    assert set(shared["targets"]) == {"up/a", "up/x"} and set(shared["deployments"]) == {"up/a"}
    for kind, name in (("targets", "up/a"), ("targets", "up/x"), ("deployments", "up/a")):
        own = [r["stats"][kind].get(name, {}) for r in results]
        got = shared[kind][name]
        for field in ("requests", "successes", "cancelled", "prompt_tokens", "completion_tokens"):
            assert got[field] == sum(o.get(field, 0) for o in own), (kind, name, field)
        assert got["failures"] == _summed(o.get("failures", {}) for o in own)
        if name == "up/a":
            assert got["cost"] == pytest.approx(sum(o["cost"] or 0.0 for o in own))
            # The merged median lies between the processes' own (1% sketch error aside).
            medians = [o["latency_ms"]["p50"] for o in own if o["latency_ms"]["p50"]]
            assert 0.99 * min(medians) <= got["latency_ms"]["p50"] <= 1.01 * max(medians)
            assert got["first_chunk_ms"]["p50"] is not None  # streams were counted
    failures = _summed(shared["targets"][name]["failures"] for name in ("up/a", "up/x"))
    assert failures == {
        "InternalServerError": sum(r["upstream"].get("x", 0) for r in results),
        "BudgetExceededError": sum(r["refused"] for r in results),
    }
    for key, value in (await stored(redis_url, redis_prefix)).items():
        assert SECRET.encode() not in key + value
        assert not value.startswith(b"\x80")  # no pickle


def _summed(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in counts:
        for name, n in each.items():
            total[name] = total.get(name, 0) + n
    return total
