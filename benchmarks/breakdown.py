"""Where the time goes: one request profiled, by component, next to raw aiohttp's.

``cProfile`` over sequential requests to the loopback server, grouped by
where each function lives: aiohttp, httpx, the event loop (asyncio), anyio,
structlog, json, dispatchline's own packages, the rest of the standard
library, and C calls (socket syscalls apart). Time spent waiting in epoll is
left out: it is the server's time, not the client's.

Two numbers per component: profiled microseconds per request (cProfile adds
a fixed cost to every Python call, so call-heavy code looks heavier than it
is: read them as shares, not as timings) and Python-level calls per request
(exact, and the same on any machine). The variants are ``aiohttp.ClientSession``
and ``Pipeline.default()`` on the client a pipeline makes itself, for a whole
response and for a short stream, so what the pipeline adds on top of aiohttp
is read component by component.
"""

from __future__ import annotations

import cProfile
import pstats
from collections import Counter
from contextlib import AsyncExitStack

import attrs

from benchmarks.overhead import DEFAULT, SESSION, Call, sequential
from benchmarks.overhead import pipeline_calls as pipeline_plain
from benchmarks.overhead import session_calls as session_plain
from benchmarks.short_streams import pipeline_streams, session_streams
from benchmarks.targets import Target
from pipeline import Pipeline
from pipeline._clients import default_client

WAITING = "(waiting in epoll)"
NOTE = (
    "cProfile over sequential requests to the loopback server; waiting in epoll (the "
    "server's time) left out. cProfile adds a fixed cost to every Python call, so read the "
    "microseconds as shares, not timings; the calls per request are exact. aiohttp's row is "
    "the floor any client on aiohttp pays; what Pipeline.default() adds is read row by row."
)
# Top-level packages of the repository, shown by name.
OURS = ("pipeline", "middlewares", "providers", "benchmarks")


@attrs.frozen
class BreakdownRow:
    variant: str  # "<client>, <whole|stream>"
    component: str
    us_per_request: float  # profiled (inflated by cProfile)
    calls_per_request: float


def component(path: str, name: str) -> str:
    """The component a profiled function belongs to."""
    if path == "~":
        if "epoll" in name and "poll" in name:
            return WAITING
        if "socket" in name:
            return "socket syscalls"
        return "C calls (builtins)"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    parts = path.replace("\\", "/").split("/")
    for top in OURS:
        if top in parts[:-1]:
            return f"dispatchline {top}/" if top != "benchmarks" else "benchmark harness"
    if "asyncio" in parts or parts[-1] in ("selectors.py",):
        return "asyncio (event loop)"
    if "json" in parts:
        return "json"
    return "stdlib, other"


def group(stats: pstats.Stats, requests: int) -> dict[str, tuple[float, float]]:
    """component -> (profiled µs per request, calls per request)."""
    seconds: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for (path, _line, name), (_cc, ncalls, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = component(path, name)
        seconds[where] += tottime
        calls[where] += ncalls
    return {
        where: (seconds[where] * 1e6 / requests, calls[where] / requests)
        for where in seconds
        if where != WAITING
    }


async def _profile(call: Call, requests: int) -> dict[str, tuple[float, float]]:
    await sequential(call, 20, 0.0)  # warm up outside the profile
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await sequential(call, requests, float("inf"))
    finally:
        profiler.disable()
    return group(pstats.Stats(profiler), requests)


async def measure(base_url: str, requests: int) -> list[BreakdownRow]:
    target = Target("own", "loopback, own client", base_url, default_client, inject=False)
    variants = {
        f"{SESSION}, whole": session_plain(target),
        f"{DEFAULT}, whole": pipeline_plain(target, Pipeline.default),
        f"{SESSION}, stream": session_streams(target),
        f"{DEFAULT}, stream": pipeline_streams(target, Pipeline.default),
    }
    rows: list[BreakdownRow] = []
    async with AsyncExitStack() as stack:
        for variant, made in variants.items():
            call = await stack.enter_async_context(made)
            for where, (us, calls) in sorted(
                (await _profile(call, requests)).items(), key=lambda item: -item[1][0]
            ):
                rows.append(BreakdownRow(variant, where, us, calls))
    return rows
