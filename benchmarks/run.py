"""Runs every section at a given scale and gathers the results."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import attrs
import structlog

from benchmarks import (
    breakdown,
    compare,
    importtime,
    layers,
    lookup,
    machine,
    resolve,
    routing,
    shared_state,
    short_streams,
    usage,
)
from benchmarks import gateway as gateway_bench
from benchmarks.fresh import run_rounds
from benchmarks.lookup import LookupRow
from benchmarks.overhead import (
    DEFAULT,
    HIT,
    RAW,
    SESSION,
    UNLOGGED,
    UNLOGGED_HIT,
    VARIANTS,
    Load,
    OverheadRow,
    Variant,
    measure_target,
)
from benchmarks.resolve import ResolveRow
from benchmarks.server import LoopbackServer
from benchmarks.stats import Summary
from benchmarks.streaming import StreamRow, measure_stream_target
from benchmarks.targets import Target, loopback_targets, mock_target
from middlewares import _log
from pipeline import Pipeline

Advance = Callable[[str], None]
Variants = dict[str, Variant]


@attrs.frozen
class Scale:
    """How long each section runs."""

    name: str
    sizes: tuple[int, ...]
    rounds: int  # fresh processes per micro benchmark
    repeats: int  # timeit repeats per case per process (the fastest counts)
    min_seconds: float  # per repeat
    load: Load
    streams: int
    import_runs: int
    profiled: int = 200  # requests per variant behind the profile by component


QUICK = Scale("quick", lookup.SIZES, 3, 3, 0.001, Load(200, 0.2, 0.4, rounds=2), 10, 5)
FULL = Scale(
    "full", lookup.SIZES, 15, 10, 0.005, Load(3000, 3.0, 5.0, rounds=6), 120, 20, profiled=1000
)


@attrs.frozen
class Results:
    scale: str
    rounds: int  # fresh processes behind each lookup and real-path number
    machine: dict[str, str]
    lookup: list[LookupRow]
    resolve: list[ResolveRow]
    overhead: list[OverheadRow]
    streaming: list[StreamRow]
    import_ms: dict[str, Summary]
    skipped: list[str]
    seconds: float
    default_stack: str  # repr(Pipeline.default()): which middlewares were measured
    usage: list[usage.UsageRow] = attrs.Factory(list)  # Costs, Stats, Telemetry over it
    gateway: list[gateway_bench.GatewayRow] = attrs.field(factory=list)
    gateway_skipped: list[str] = attrs.field(factory=list)
    routing: routing.RoutingResults | None = None
    shared_state: shared_state.SharedStateResults | None = None
    short_streams: list[OverheadRow] = attrs.Factory(list)  # 5-chunk streams vs raw aiohttp
    layers: list[layers.LayerRow] = attrs.Factory(list)  # each middleware, alone and in place
    breakdown: list[breakdown.BreakdownRow] = attrs.Factory(list)  # the profile by component


# Where each variant runs. The cache hit never reaches a transport, so once is
# enough, and the stack without Logging once beside the stack with it;
# aiohttp's own client and litellm bring their own HTTP clients, so each runs
# over loopback once, beside the client a pipeline makes itself (the targets
# compare Pipeline.default() there with aiohttp's).
EVERYWHERE = ("mock", "httpx", "own", "aiohttp")
WHERE: dict[str, tuple[str, ...]] = {
    RAW: EVERYWHERE,
    "Pipeline([])": EVERYWHERE,
    DEFAULT: EVERYWHERE,
    UNLOGGED: ("mock",),
    HIT: ("mock",),
    UNLOGGED_HIT: ("mock",),
    SESSION: ("own",),
    compare.LITELLM: ("own",),
}


def overhead_plan(targets: list[Target], variants: Variants) -> list[tuple[Target, Variants]]:
    """Each target with the variants that run on it."""
    return [(t, {name: v for name, v in variants.items() if t.key in WHERE[name]}) for t in targets]


def stream_targets(targets: list[Target]) -> list[Target]:
    return [t for t in targets if t.key != "own"]


def all_targets(base_url: str) -> list[Target]:
    return [mock_target(), *loopback_targets(base_url)]


def all_variants() -> Variants:
    return {**VARIANTS, **compare.variants()}


def steps(scale: Scale) -> int:
    targets = all_targets("http://127.0.0.1:1/v1")
    # usage layers, gateway, routing, shared state, short streams, each middleware, the profile
    sections = 7
    targets_run = len(targets) + len(stream_targets(targets))
    return 2 * scale.rounds + targets_run + scale.import_runs + sections


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Configure structlog as a production service would (level, ISO time, JSON,
    filtered at INFO, loggers assembled once: structlog's performance guide) and
    drop the rendered lines instead of writing them between progress bars.
    structlog's out-of-the-box console renderer is a development tool and costs
    several times more per event."""
    configured, saved = structlog.is_configured(), structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    try:
        yield
    finally:
        if configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()
        _log.forget()  # the shared logger cached this configuration: drop it


@attrs.frozen
class Measured:
    """What the in-process sections measured (one event loop, one loopback server)."""

    overhead: list[OverheadRow]
    streaming: list[StreamRow]
    skipped: list[str]
    usage: list[usage.UsageRow]
    short_streams: list[OverheadRow]
    layers: list[layers.LayerRow]
    breakdown: list[breakdown.BreakdownRow]


async def _requests(base_url: str, scale: Scale, advance: Advance) -> Measured:
    targets = all_targets(base_url)
    rows: list[OverheadRow] = []
    skipped: list[str] = []
    for target, variants in overhead_plan(targets, all_variants()):
        measured, skips = await measure_target(target, variants, scale.load)
        rows += measured
        skipped += skips
        advance(f"overhead: {target.key}")
    streams: list[StreamRow] = []
    for target in stream_targets(targets):
        streams += await measure_stream_target(target, scale.streams, scale.load.rounds)
        advance(f"streaming: {target.key}")
    if not compare.available():
        skipped.append("litellm.acompletion: litellm is not installed")
    usage_rows, usage_skips = await usage.measure(scale.load)
    advance("usage layers")
    short, short_skips = await short_streams.measure(base_url, scale.load)
    advance("short streams")
    layer_rows = await layers.measure(scale.load)
    advance("each middleware")
    profile = await breakdown.measure(base_url, scale.profiled)
    advance("profile by component")
    return Measured(
        rows, streams, skipped + usage_skips + short_skips, usage_rows, short, layer_rows, profile
    )


async def _routing(scale: Scale, advance: Advance) -> routing.RoutingResults:
    measured = await routing.measure(scale.load, scale.repeats)
    advance("routing")
    return measured


def run(scale: Scale, advance: Advance = lambda _: None) -> Results:
    start = time.perf_counter()
    config = {
        "sizes": list(scale.sizes),
        "repeats": scale.repeats,
        "min_seconds": scale.min_seconds,
    }
    lookup_samples = run_rounds("lookup", config, scale.rounds, lambda: advance("lookup round"))
    resolve_samples = run_rounds("resolve", config, scale.rounds, lambda: advance("resolve round"))
    with quiet_logs(), LoopbackServer() as server:
        measured = anyio.run(_requests, server.base_url, scale, advance, backend="asyncio")
        load = gateway_bench.QUICK if scale is QUICK else gateway_bench.FULL
        gateway_rows, gateway_skipped = gateway_bench.measure(server.base_url, load)
        advance("gateway overhead")
        routed = anyio.run(_routing, scale, advance, backend="asyncio")
    shared, shared_skipped = shared_state.measure(scale.load)
    advance("shared state")
    imports = importtime.measure(scale.import_runs, lambda: advance("import time run"))
    return Results(
        scale=scale.name,
        rounds=scale.rounds,
        machine=machine.describe(),
        lookup=lookup.rows(lookup_samples, scale.sizes),
        resolve=resolve.rows(resolve_samples, scale.sizes),
        overhead=measured.overhead,
        streaming=measured.streaming,
        import_ms=imports,
        routing=routed,
        shared_state=shared,
        skipped=measured.skipped + ([shared_skipped] if shared_skipped else []),
        seconds=time.perf_counter() - start,
        default_stack=repr(Pipeline.default(registry=mock_target().registry())),
        usage=measured.usage,
        gateway=gateway_rows,
        gateway_skipped=gateway_skipped,
        short_streams=measured.short_streams,
        layers=measured.layers,
        breakdown=measured.breakdown,
    )
