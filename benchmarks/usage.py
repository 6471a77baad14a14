"""What the usage layers add per request: Costs, Stats and Telemetry over ``Pipeline.default()``.

Every variant sends the same chat request (a new message each time, so the
cache always misses) to an in-process ``httpx.MockTransport`` provider named
``openai`` answering as ``gpt-4o-mini``, so genai-prices prices every reply:
nothing is remembered between replies, each price is the library's own
calculation. Telemetry runs without an OpenTelemetry SDK (the API's no-op
providers), as in a service that has not configured one.

One request after another, the variants interleaved round by round
(:mod:`benchmarks.interleave`); a variant's cost is its median latency minus
the default stack's. The target: Costs + Stats + Telemetry together within
:data:`TARGET_US` microseconds per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import httpx

from benchmarks.interleave import interleaved
from benchmarks.overhead import Call, Load, Skipped, messages, sequential
from benchmarks.replies import completion_body
from benchmarks.stats import Summary, summarize
from benchmarks.targets import API_KEY, MOCK_BASE_URL
from pipeline import Pipeline
from providers import OpenAICompatible, ProviderRegistry

TARGET_US = 10.0
PROVIDER, MODEL_NAME = "openai", "gpt-4o-mini"
MODEL = f"{PROVIDER}/{MODEL_NAME}"
DEFAULT = "Pipeline.default()"
ALL = "+ Costs + Stats + Telemetry"

_REPLY = completion_body(MODEL_NAME)


def _reply(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/json"}, content=_REPLY)


def _options() -> dict[str, Callable[[], dict[str, Any]]]:
    """Each variant's ``Pipeline.default`` options; Skipped when an extra is missing."""
    try:
        from middlewares import Costs, Stats, Telemetry
        from middlewares.usage import MissingExtraError

        Costs(), Stats(), Telemetry()
    except MissingExtraError as exc:
        raise Skipped(str(exc)) from exc
    return {
        DEFAULT: dict,
        "+ Costs": lambda: {"costs": Costs()},
        "+ Stats": lambda: {"stats": Stats()},
        "+ Telemetry (no SDK)": lambda: {"telemetry": Telemetry()},
        ALL: lambda: {"costs": Costs(), "stats": Stats(), "telemetry": Telemetry()},
    }


@attrs.frozen
class UsageRow:
    variant: str
    latency_us: Summary
    over_default_us: float  # median minus the default stack's median


@asynccontextmanager
async def _calls(options: dict[str, Any]) -> AsyncIterator[Call]:
    registry = ProviderRegistry([OpenAICompatible(name=PROVIDER, base_url=MOCK_BASE_URL)])
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(_reply)) as client,
        Pipeline.default(registry=registry, http_client=client, **options) as pipe,
    ):

        async def call(i: int) -> object:
            response = await pipe.acompletion(MODEL, messages(i), api_key=API_KEY)
            if options.get("costs") and response.cost is None:
                raise RuntimeError(f"{MODEL} was not priced")
            return response

        yield call


async def measure(load: Load) -> tuple[list[UsageRow], list[str]]:
    """Each variant's sequential latency and its cost over the default stack."""
    try:
        variants = _options()
    except Skipped as reason:
        return [], [f"usage layers: {reason}"]
    async with AsyncExitStack() as stack:
        calls = {
            name: await stack.enter_async_context(_calls(make())) for name, make in variants.items()
        }
        for call in calls.values():
            await sequential(call, 50, 0.0)  # warm up: first-use costs, price lookups
        rounds = load.rounds
        alone = await interleaved(
            calls,
            rounds,
            lambda call: sequential(
                call, -(-load.sequential_requests // rounds), load.sequential_seconds / rounds
            ),
        )
    summaries = {
        name: summarize([x for tally in tallies for x in tally.latencies])
        for name, tallies in alone.items()
    }
    base = summaries[DEFAULT].median
    rows = [UsageRow(name, s, s.median - base) for name, s in summaries.items()]
    return rows, []


def verdict(rows: list[UsageRow]) -> str | None:
    """Whether Costs + Stats + Telemetry met the target, in words."""
    together = next((row for row in rows if row.variant == ALL), None)
    if together is None:
        return None
    met = together.over_default_us <= TARGET_US
    said = (
        f"Costs + Stats + Telemetry (no SDK) over Pipeline.default(): "
        f"{together.over_default_us:+.1f} µs per request, median (target: within "
        f"{TARGET_US:.0f}): {'met' if met else 'missed'}."
    )
    alone = [row for row in rows if row.variant not in (DEFAULT, ALL)]
    if met or not alone:
        return said
    largest = max(alone, key=lambda row: row.over_default_us)
    return f"{said} The largest part: {largest.variant[2:]}, {largest.over_default_us:+.1f} µs."
