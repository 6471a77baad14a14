"""What each part-one middleware costs per request, alone and in place.

- **alone**: the layer by itself around a terminal that answers at once with
  a fresh reply (no HTTP, no other layer), in batches of :data:`BATCH` calls,
  minus the bare terminal's time. Every request differs, so Cache is timed on
  its miss path (key, single-flight, the copy it stores); ``Cache (hit)`` asks
  one request again and again. Steady on a busy machine: little else runs.
- **in place**: ``Pipeline.default()`` on ``httpx.MockTransport`` against the
  same stack without that layer (for Logging, Cache, Retry, ErrorMapping), or
  with it added where ``default_stack`` puts it (Callbacks with an
  ``on_success`` hook, Fallback with one alternative), one request after
  another, interleaved; the difference of medians. This is what the layer adds
  where it runs, among httpx's work; it is larger than alone (more code
  competing for the CPU's caches) and noisier (a difference of two medians).

Logging runs with structlog configured as :func:`benchmarks.run.quiet_logs`
configures it (JSON, ISO time, level filter): its cost is mostly structlog's
processing of the one event per request.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import attrs

import middlewares
from benchmarks.interleave import interleaved
from benchmarks.overhead import Call, Load, messages, sequential, sequential_rounds
from benchmarks.stats import summarize
from benchmarks.targets import API_KEY, MODEL, MODEL_NAME, PROVIDER, mock_target
from middlewares import Cache, Callbacks, ErrorMapping, Fallback, Logging, Retry
from pipeline import ChatResponse, Handler, Middleware, Pipeline, Request, Result, Usage
from pipeline._chain import bind

BATCH = 50
DEFAULT = "Pipeline.default()"
HIT = "Cache (hit)"
_PARAMS = {"temperature": 0}


def _noop(*_: object) -> None:
    pass


# layer name -> (the layer alone, Pipeline.default()'s stack with or without it)
def _stacks() -> dict[str, tuple[Callable[[], Sequence[Middleware]], list[Middleware]]]:
    default = middlewares.default_stack()

    def without(cls: type) -> list[Middleware]:
        return [layer for layer in default if not isinstance(layer, cls)]

    return {
        "Logging": (lambda: [Logging()], without(Logging)),
        "Cache": (lambda: [Cache()], without(Cache)),
        "Retry": (lambda: [Retry()], without(Retry)),
        "ErrorMapping": (lambda: [ErrorMapping()], without(ErrorMapping)),
        "Callbacks": (
            lambda: [Callbacks(on_success=_noop)],
            middlewares.default_stack(callbacks=Callbacks(on_success=_noop)),
        ),
        "Fallback": (
            lambda: [Fallback([f"{PROVIDER}/other"])],
            middlewares.default_stack(fallbacks=[f"{PROVIDER}/other"]),
        ),
    }


_USAGE = Usage(prompt_tokens=5, completion_tokens=5, total_tokens=10)


async def _answer(request: Request) -> Result:
    return ChatResponse(provider=PROVIDER, model=MODEL_NAME, usage=_USAGE)


@attrs.frozen
class LayerRow:
    layer: str
    alone_us: float
    in_place_us: float | None  # None: not measured in place (the cache hit)
    removed: bool  # in place: measured by leaving the layer out (True) or adding it (False)


async def _timed(handler: Handler, requests: Sequence[Request]) -> float:
    """µs per call over one batch of requests."""
    began = time.perf_counter_ns()
    for request in requests:
        await handler(request)
    return (time.perf_counter_ns() - began) / len(requests) / 1000


async def _alone(
    layers: dict[str, Callable[[], Sequence[Middleware]]], load: Load
) -> dict[str, float]:
    """µs each layer adds to a terminal that answers at once."""
    pipe = Pipeline([], registry=mock_target().registry())
    numbers = itertools.count()

    def fresh() -> list[Request]:
        return [
            pipe.request("chat", MODEL, messages=messages(next(numbers)), params=_PARAMS)
            for _ in range(BATCH)
        ]

    same = [pipe.request("chat", MODEL, messages=messages(-1), params=_PARAMS)] * BATCH
    handlers = {name: bind(make(), _answer) for name, make in layers.items()}
    handlers["bare"] = bind([], _answer)
    handlers[HIT] = bind([Cache()], _answer)
    count = max(10, load.sequential_requests // (BATCH * load.rounds))

    async def run(name: str) -> list[float]:
        return [
            await _timed(handlers[name], same if name == HIT else fresh()) for _ in range(count)
        ]

    for name in handlers:  # warm up: first-use costs
        await _timed(handlers[name], fresh())
    timed = await interleaved({name: name for name in handlers}, load.rounds, run)
    medians = {name: summarize([x for r in runs for x in r]).median for name, runs in timed.items()}
    bare = medians.pop("bare")
    return {name: median - bare for name, median in medians.items()}


@asynccontextmanager
async def _calls(stack: Sequence[Middleware]) -> AsyncIterator[Call]:
    target = mock_target()
    async with (
        target.client() as client,
        Pipeline(stack, registry=target.registry(), http_client=client) as pipe,
    ):

        async def call(i: int) -> object:
            return await pipe.acompletion(MODEL, messages(i), api_key=API_KEY, temperature=0)

        yield call


async def _in_place(stacks: dict[str, list[Middleware]], load: Load) -> dict[str, float]:
    """Median µs per request of Pipeline.default() and of each other stack."""
    async with AsyncExitStack() as exits:
        calls = {
            name: await exits.enter_async_context(_calls(stack)) for name, stack in stacks.items()
        }
        for call in calls.values():
            await sequential(call, 50, 0.0)
        timed = await sequential_rounds(calls, load)
    return {
        name: summarize([x for tally in tallies for x in tally.latencies]).median
        for name, tallies in timed.items()
    }


async def measure(load: Load) -> list[LayerRow]:
    stacks = _stacks()
    alone = await _alone({name: make for name, (make, _) in stacks.items()}, load)
    compared = {name: stack for name, (_, stack) in stacks.items()}
    placed = await _in_place({DEFAULT: middlewares.default_stack(), **compared}, load)
    default = placed[DEFAULT]
    default_names = {type(layer).__name__ for layer in middlewares.default_stack()}
    rows = []
    for name in stacks:
        removed = name in default_names
        change = default - placed[name] if removed else placed[name] - default
        rows.append(LayerRow(name, alone[name], change, removed))
    rows.append(LayerRow(HIT, alone[HIT], None, False))
    return rows
