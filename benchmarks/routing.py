"""The Router's own cost: per request over a plain pipeline, and as groups grow.

- **added cost**: ``acompletion("g", ...)`` through ``Pipeline([Router, ErrorMapping()])``
  against ``acompletion("bench/bench-model", ...)`` through ``Pipeline([ErrorMapping()])``,
  both on the in-process MockTransport, interleaved round by round; the
  median over rounds of each round's difference of medians is what routing
  adds (group lookup, token estimate when needed, selection, the slot taken
  and released, breaker and latency bookkeeping). Target: at most 15 µs.
- **flatness**: the Router alone, called with an already built request and a
  terminal that answers at once, for groups of 2 to 500 deployments (the
  fastest of several repeats, as timeit does); time(500) / time(2), target at
  most 1.3. Weighted (the default) and latency (power of two choices) are
  shown; both pick without scanning the group.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

import attrs

from benchmarks.overhead import Load, Tally, messages, sequential, sequential_rounds
from benchmarks.stats import Summary, summarize
from benchmarks.targets import API_KEY, MODEL, MODEL_NAME, PROVIDER, mock_target
from middlewares import Deployment, ErrorMapping, Router
from pipeline import ChatResponse, Pipeline, Request, Result, Usage
from pipeline.adapter import Choice, Message

SIZES = (2, 10, 100, 500)
STRATEGIES = ("weighted", "latency")
TARGET_ADDED_US = 15.0
TARGET_FLATNESS = 1.3
GROUP = "g"


@attrs.frozen
class RoutingResults:
    plain_us: Summary  # Pipeline([ErrorMapping()]), per request
    routed_us: Summary  # the same with a Router (group of 2) in front
    routed_500_us: Summary  # ... with a group of 500
    alone_us: dict[str, dict[int, float]]  # strategy -> group size -> µs per routed call
    added_us: float  # the median over rounds of (router's median - plain's median) in that round

    def flatness(self, strategy: str = "weighted") -> float:
        alone = self.alone_us[strategy]
        return alone[SIZES[-1]] / alone[SIZES[0]]


def group_of(size: int, **options: Any) -> Router:
    target = f"{PROVIDER}/{MODEL_NAME}"
    members = [Deployment(target, api_key=API_KEY) for _ in range(size)]
    return Router({GROUP: members}, **options)


async def _pipeline_rounds(load: Load) -> dict[str, list[Tally]]:
    target = mock_target()
    registry = target.registry()
    client = target.client()
    variants = {
        "plain": (Pipeline([ErrorMapping()], registry=registry, http_client=client), MODEL),
        "router": (
            Pipeline([group_of(2), ErrorMapping()], registry=registry, http_client=client),
            GROUP,
        ),
        "router 500": (
            Pipeline([group_of(500), ErrorMapping()], registry=registry, http_client=client),
            GROUP,
        ),
    }

    def caller(pipe: Pipeline, model: str) -> Any:
        key = API_KEY if model == MODEL else None  # a group's deployments carry the key

        async def call(i: int) -> object:
            return await pipe.acompletion(model, messages(i), api_key=key)

        return call

    calls = {name: caller(pipe, model) for name, (pipe, model) in variants.items()}
    try:
        for call in calls.values():
            await sequential(call, 50, 0.0)  # warm up
        return await sequential_rounds(calls, load)
    finally:
        await client.aclose()


def _instant() -> Any:
    reply = ChatResponse(
        choices=[Choice(message=Message(content="ok"))],
        usage=Usage(prompt_tokens=5, completion_tokens=1, total_tokens=6),
    )

    async def terminal(request: Request) -> Result:
        return reply

    return terminal


async def _timed_loop(router: Router, request: Request, terminal: Any, iterations: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(iterations):
        await router(request, terminal)
    return (time.perf_counter_ns() - start) / iterations / 1000


async def _alone(iterations: int, repeats: int) -> dict[str, dict[int, float]]:
    """µs per routed call for each strategy and group size: the fastest of
    ``repeats`` timed loops, the cases taken in a new random order each repeat
    so a noisy moment lands on all of them alike."""
    terminal = _instant()
    cases = {}
    for strategy in STRATEGIES:
        for size in SIZES:
            router = group_of(size, strategy=strategy)
            request = Pipeline([router], registry=mock_target().registry()).request(
                "chat", GROUP, messages=messages(0)
            )
            await _timed_loop(router, request, terminal, min(iterations, 200))  # warm up
            cases[strategy, size] = (router, request)
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for case in random.sample(list(cases), len(cases)):
            router, request = cases[case]
            best[case] = min(best[case], await _timed_loop(router, request, terminal, iterations))
    return {s: {n: best[s, n] for n in SIZES} for s in STRATEGIES}


async def measure(load: Load, repeats: int) -> RoutingResults:
    tallies = await _pipeline_rounds(load)
    alone = await _alone(max(50, load.sequential_requests * 2), max(repeats, 3))
    totals = {name: Tally.total(rounds) for name, rounds in tallies.items()}
    added = [
        statistics.median(routed.latencies) - statistics.median(plain.latencies)
        for routed, plain in zip(tallies["router"], tallies["plain"], strict=True)
    ]
    return RoutingResults(
        plain_us=summarize(totals["plain"].latencies),
        routed_us=summarize(totals["router"].latencies),
        routed_500_us=summarize(totals["router 500"].latencies),
        alone_us=alone,
        added_us=statistics.median(added),
    )


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def table(results: RoutingResults) -> tuple[str, Sequence[str], list[list[str]], list[str]]:
    """Title, columns, rows and notes of the report's routing section."""
    rows = [
        [
            strategy,
            *(f"{results.alone_us[strategy][n]:.1f}" for n in SIZES),
            f"{results.flatness(strategy):.2f}x",
        ]
        for strategy in STRATEGIES
    ]
    added = results.added_us
    flat = results.flatness()
    notes = [
        f"Router over a plain pipeline on MockTransport: {added:+.1f} µs per request (median "
        f"of each round's difference; overall medians {results.plain_us.median:.0f} µs plain, "
        f"{results.routed_us.median:.0f} µs routed, {results.routed_500_us.median:.0f} µs with "
        f"500 deployments); target at most {TARGET_ADDED_US:.0f}: "
        f"{_verdict(added <= TARGET_ADDED_US)}.",
        f"Router alone, weighted, time({SIZES[-1]}) / time({SIZES[0]}) = {flat:.2f}; "
        f"target at most {TARGET_FLATNESS}: {_verdict(flat <= TARGET_FLATNESS)}.",
    ]
    return (
        "Routing: the Router alone, µs per call, by deployments in the group",
        ["strategy", *(f"N={n}" for n in SIZES), f"N={SIZES[-1]} / N={SIZES[0]}"],
        rows,
        notes,
    )


def to_json(results: RoutingResults) -> dict[str, Any]:
    return {
        "plain_us": results.plain_us.median,
        "routed_us": results.routed_us.median,
        "routed_500_us": results.routed_500_us.median,
        "added_us": results.added_us,
        "added_target_us": TARGET_ADDED_US,
        "added_met": results.added_us <= TARGET_ADDED_US,
        "alone_us": {s: {str(n): us for n, us in by.items()} for s, by in results.alone_us.items()},
        "flatness": results.flatness(),
        "flatness_target": TARGET_FLATNESS,
        "flatness_met": results.flatness() <= TARGET_FLATNESS,
    }
