"""What the usage layers add per request: Costs, Stats and Telemetry over ``Pipeline.default()``.

Every variant sends the same chat request (a new message each time, so the
cache always misses) to an in-process ``httpx.MockTransport`` provider named
``openai`` answering as ``gpt-4o-mini``, so every reply is priced from
genai-prices' data: Costs' price book remembers the library's model lookup
and its resolution of the model's prices into units, never a price by token
count, and takes the prices valid at each reply's time. Telemetry runs
without an OpenTelemetry SDK (the API's no-op providers), as in a service
that has not configured one.

One request after another, the variants interleaved round by round
(:mod:`benchmarks.interleave`); a variant's cost is its median latency minus
the default stack's. The target: Costs + Stats + Telemetry together within
:data:`TARGET_US` microseconds per request.

The same layers are also timed alone, chained around a handler that answers
at once with a priced reply (batches of :data:`BATCH` calls, minus the bare
handler's time): no HTTP client, cache or logging around them, so on a
busy machine their own cost shows more steadily than as a difference of
two end-to-end medians.
"""

from __future__ import annotations

import time
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
from pipeline import ChatResponse, Handler, Pipeline, Request, Usage
from pipeline._chain import bind
from providers import OpenAICompatible, ProviderRegistry

TARGET_US = 10.0
PROVIDER, MODEL_NAME = "openai", "gpt-4o-mini"
MODEL = f"{PROVIDER}/{MODEL_NAME}"
DEFAULT = "Pipeline.default()"
ALL = "+ Costs + Stats + Telemetry"
BATCH = 20
# Outermost first, as default_stack places them.
ORDER = ("telemetry", "stats", "costs")

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
    alone_us: float | None = None  # the layers timed alone, minus the bare handler


_REQUEST = Request(endpoint="chat", provider=PROVIDER, model=MODEL_NAME, messages=messages(0))
_USAGE = Usage(prompt_tokens=5, completion_tokens=5, total_tokens=10)


async def _answer(request: Request) -> ChatResponse:
    return ChatResponse(provider=PROVIDER, model=MODEL_NAME, usage=_USAGE)


def _alone(options: dict[str, Any]) -> Handler:
    return bind([options[key] for key in ORDER if key in options], _answer)


async def _batches(handler: Handler, count: int) -> list[float]:
    """µs per call, one sample per batch of :data:`BATCH` calls."""
    samples = []
    for _ in range(count):
        began = time.perf_counter_ns()
        for _ in range(BATCH):
            await handler(_REQUEST)
        samples.append((time.perf_counter_ns() - began) / BATCH / 1000)
    return samples


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
    options = {name: make() for name, make in variants.items()}
    async with AsyncExitStack() as stack:
        calls = {
            name: await stack.enter_async_context(_calls(made)) for name, made in options.items()
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
    handlers = {name: _alone(made) for name, made in options.items()}
    for handler in handlers.values():
        await _batches(handler, 5)
    count = max(10, load.sequential_requests // (BATCH * rounds))
    batches = await interleaved(handlers, rounds, lambda handler: _batches(handler, count))
    summaries = {
        name: summarize([x for tally in tallies for x in tally.latencies])
        for name, tallies in alone.items()
    }
    direct = {
        name: summarize([x for b in runs for x in b]).median for name, runs in batches.items()
    }
    base, bare = summaries[DEFAULT].median, direct[DEFAULT]
    rows = [
        UsageRow(name, s, s.median - base, None if name == DEFAULT else direct[name] - bare)
        for name, s in summaries.items()
    ]
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
    parts = [row for row in rows if row.variant not in (DEFAULT, ALL)]
    if not met and parts:
        largest = max(parts, key=lambda row: row.over_default_us)
        said += f" The largest part: {largest.variant[2:]}, {largest.over_default_us:+.1f} µs."
    timed = [row for row in parts if row.alone_us is not None]
    if timed:
        each = ", ".join(f"{row.variant[2:]} {row.alone_us:.1f}" for row in timed)
        said += f" Timed alone (µs per request): {each}."
    return said
