"""Gateway overhead: the openai SDK through ``dispatchline serve`` vs straight to the upstream.

Both arms use the official openai SDK (``AsyncOpenAI``) and the same loopback
upstream (:mod:`benchmarks.server`); one arm goes through the gateway, started
as ``dispatchline serve`` with one uvicorn worker and its default middlewares
(each request differs, so the cache always misses). Sequential requests give
the per-request latency, p50 and p99; 50 concurrent tasks for a fixed time give
the throughput. The two arms alternate round by round, so they share the
machine's noise. The difference of the p50s is what the gateway adds.

LiteLLM's proxy would run beside them here only if installed with its proxy
extras and able to start offline; the run says why it did not.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import attrs
import httpx

from benchmarks.fresh import ROOT
from benchmarks.targets import API_KEY, MODEL_NAME

DIRECT = "openai SDK -> upstream"
GATEWAY = "openai SDK -> gateway -> upstream"
Call = Callable[[], Awaitable[object]]


@attrs.frozen
class GatewayRow:
    variant: str
    p50_us: float
    p99_us: float
    req_per_s: float  # at concurrency 50
    concurrent_p50_us: float


@attrs.frozen
class GatewayLoad:
    sequential: int  # requests per round
    concurrent_seconds: float  # per round
    rounds: int
    concurrency: int = 50


QUICK = GatewayLoad(sequential=60, concurrent_seconds=0.5, rounds=1)
FULL = GatewayLoad(sequential=600, concurrent_seconds=4.0, rounds=3)


def why_not() -> str | None:
    """Why the section cannot run in this environment, or None."""
    for module, extra in (
        ("openai", "[dev]"),
        ("uvicorn", "[gateway]"),
        ("starlette", "[gateway]"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"gateway overhead: {module} is not installed (the {extra} extra)"
    return None


class _Gateway:
    """``dispatchline serve`` on a free port, pointed at ``upstream``."""

    def __init__(self, upstream: str) -> None:
        self._folder = tempfile.TemporaryDirectory()
        config = Path(self._folder.name) / "bench.toml"
        config.write_text(f'[providers.openai]\napi_base = "{upstream}"\napi_key = "{API_KEY}"\n')
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        script = Path(sys.executable).parent / "dispatchline"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]
        self._process = subprocess.Popen(
            [*command, "serve", "--config", str(config), "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("dispatchline serve exited before it was ready")
            try:
                url = f"http://127.0.0.1:{self.port}/health/readiness"
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("dispatchline serve was not ready in 30 s")

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._folder.cleanup()


def _calls(client: Any, model: str) -> Call:
    counter = iter(range(10**9))

    async def call() -> object:
        content = f"benchmark request {next(counter)}"
        return await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}]
        )

    return call


async def _sequential(call: Call, count: int, into: list[float]) -> None:
    for _ in range(count):
        start = time.perf_counter()
        await call()
        into.append(time.perf_counter() - start)


async def _concurrent(call: Call, load: GatewayLoad, into: list[float]) -> int:
    deadline = time.perf_counter() + load.concurrent_seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await call()
            into.append(time.perf_counter() - start)
            done += 1

    async with anyio.create_task_group() as group:
        for _ in range(load.concurrency):
            group.start_soon(worker)
    return done


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


async def _measure(upstream: str, gateway: str, load: GatewayLoad) -> list[GatewayRow]:
    import openai

    arms = {DIRECT: (upstream, MODEL_NAME), GATEWAY: (gateway, f"openai/{MODEL_NAME}")}
    seq: dict[str, list[float]] = {name: [] for name in arms}
    conc: dict[str, list[float]] = {name: [] for name in arms}
    rates: dict[str, list[float]] = {name: [] for name in arms}
    clients = {
        name: openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0)
        for name, (url, _) in arms.items()
    }
    calls = {name: _calls(clients[name], model) for name, (_, model) in arms.items()}
    try:
        for name in arms:  # warm up connections and caches
            await _sequential(calls[name], 20, [])
        for _ in range(load.rounds):
            for name in arms:
                await _sequential(calls[name], load.sequential, seq[name])
                done = await _concurrent(calls[name], load, conc[name])
                rates[name].append(done / load.concurrent_seconds)
    finally:
        for client in clients.values():
            await client.close()
    return [
        GatewayRow(
            name,
            _p(seq[name], 0.5),
            _p(seq[name], 0.99),
            statistics.median(rates[name]),
            _p(conc[name], 0.5),
        )
        for name in arms
    ]


def measure(upstream: str, load: GatewayLoad) -> tuple[list[GatewayRow], list[str]]:
    """Rows for both arms, and what was skipped (with why)."""
    reason = why_not()
    if reason is not None:
        return [], [reason]
    gateway = _Gateway(upstream)
    try:
        gateway.wait_ready()
        rows = anyio.run(_measure, upstream, gateway.base_url, load, backend="asyncio")
    finally:
        gateway.stop()
    return rows, [
        "LiteLLM's proxy: not run here (the compare extra brings the litellm library, not "
        "its proxy server and the extras that needs)"
    ]


def added_p50_us(rows: list[GatewayRow]) -> float | None:
    found = {row.variant: row for row in rows}
    if DIRECT in found and GATEWAY in found:
        return found[GATEWAY].p50_us - found[DIRECT].p50_us
    return None


def section(rows: list[GatewayRow], skipped: list[str]) -> Any:
    from benchmarks.report import Section

    table = [
        [
            r.variant,
            f"{r.p50_us:,.0f}",
            f"{r.p99_us:,.0f}",
            f"{r.req_per_s:,.0f}",
            f"{r.concurrent_p50_us:,.0f}",
        ]
        for r in rows
    ]
    notes = []
    added = added_p50_us(rows)
    if added is not None:
        notes.append(
            f"The gateway adds {added / 1000:+.2f} ms per request at p50 (target: at most "
            "1 ms; LiteLLM's proxy documents 2-12 ms)."
        )
    notes += [s for s in skipped if s.startswith(("gateway", "LiteLLM"))]
    return Section(
        "Gateway overhead: openai SDK, sequential p50/p99 (µs) and concurrency 50 (req/s)",
        ["variant", "p50 µs", "p99 µs", "req/s @50", "p50 @50 µs"],
        table,
        notes,
    )
