"""One worker process of the multi-process Redis tests (and the benchmark's accuracy run).

``python -m tests._redis_worker '<json>'`` builds a pipeline over one Redis
(Cache(RedisCache) -> Router(RedisState) -> ErrorMapping -> a mock upstream
that counts its calls) on the event loop the JSON names, connects, prints
``ready``, waits for ``go`` on stdin (so the parent starts every worker at
once), runs one scenario and prints one JSON line: what it saw. Logs are captured, never
printed; their warnings are counted in the result.

The JSON: ``scenario``, ``url``, ``prefix``, ``backend`` and the scenario's
own numbers (see each function below).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
from structlog.testing import capture_logs

from middlewares import (
    Budget,
    Cache,
    CircuitBreaker,
    Costs,
    Deployment,
    ErrorMapping,
    Router,
    Stats,
)
from middlewares.cache import RedisCache
from middlewares.shared import SharedRedis
from middlewares.state import RedisState
from pipeline import Pipeline, Stream, errors
from providers import ProviderRegistry, echo_handler, mock_provider

SECRET = "sk-worker-secret-0123456789abcdef"
HI = [{"role": "user", "content": "hi"}]


class Upstream:
    """The provider ``up``: each model's calls counted; ``fail`` models answer 500,
    ``delay`` seconds before each answer, ``usage`` tokens reported when set."""

    def __init__(self, fail: tuple[str, ...] = (), delay: float = 0.0, usage: int = 0) -> None:
        self.calls: Counter[str] = Counter()
        self.fail = fail
        self.delay = delay
        self.usage = usage

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        self.calls[model] += 1
        if self.delay:
            await anyio.sleep(self.delay)
        if model in self.fail:
            return httpx.Response(500, json={"error": {"message": "down", "type": "server"}})
        response = echo_handler(request)
        if self.usage and not json.loads(request.content).get("stream"):
            body = response.json()
            body["usage"] = {"prompt_tokens": 1, "completion_tokens": self.usage - 1}
            body["usage"]["total_tokens"] = self.usage
            return httpx.Response(200, json=body)
        return response


def pipeline(args: dict[str, Any], upstream: Upstream, redis: SharedRedis) -> Pipeline:
    price = args.get("price")  # USD per prompt token of up/a; with it, Stats and a Budget
    deployments = [
        Deployment(
            "up/a",
            rpm=args.get("rpm"),
            tpm=args.get("tpm"),
            api_key=SECRET,
            input_cost_per_token=price,
            output_cost_per_token=None if price is None else 0.0,
        ),
        *([Deployment("up/b", api_key=SECRET)] if args.get("backup") else []),
    ]
    router = Router(
        {"g": deployments},
        strategy="priority",
        breaker=CircuitBreaker(
            min_requests=5, failure_ratio=0.5, cooldown=float(args.get("cooldown", 30.0))
        ),
        state=RedisState(redis, prefix=args["prefix"]),
    )
    cache = Cache(RedisCache(redis, prefix=args["prefix"]))
    registry = ProviderRegistry([mock_provider("up", upstream)])
    if price is None:
        return Pipeline([cache, router, ErrorMapping()], registry=registry)
    stats = Stats(redis=redis, prefix=args["prefix"])
    budget = Budget(args["budget"], redis=redis, prefix=args["prefix"])
    return Pipeline([stats, cache, router, budget, Costs(), ErrorMapping()], registry=registry)


async def concurrently(n: int, width: int, one: Callable[[int], Awaitable[None]]) -> None:
    """``one(i)`` for i in range(n), ``width`` at a time."""
    limiter = anyio.CapacityLimiter(width)

    async def run(i: int) -> None:
        async with limiter:
            await one(i)

    async with anyio.create_task_group() as group:
        for i in range(n):
            group.start_soon(run, i)


# -- the parent's side --------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("asyncio", "trio")


class Workers:
    """``n`` worker processes for one scenario; ``go()`` starts them together."""

    def __init__(self, n: int, scenario: str, url: str, prefix: str, **args: Any) -> None:
        self.processes = []
        for worker in range(n):
            spec = {"scenario": scenario, "url": url, "prefix": prefix, **args}
            spec |= {"worker": worker, "backend": BACKENDS[worker % 2]}
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests._redis_worker", json.dumps(spec)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        for process in self.processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line == b"ready\n", line + process.communicate(timeout=30)[1]

    def go(self) -> Workers:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.flush()
        return self

    def results(self) -> list[dict[str, Any]]:
        out = []
        for process in self.processes:
            stdout, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr.decode()
            out.append(json.loads(stdout))
        return out


def run(n: int, scenario: str, url: str, prefix: str, **args: Any) -> list[dict[str, Any]]:
    return Workers(n, scenario, url, prefix, **args).go().results()


def run_workers(n: int, scenario: str, url: str, prefix: str, **args: Any) -> list[dict[str, Any]]:
    """``n`` workers running ``scenario`` together; what each saw."""
    return Workers(n, scenario, url, prefix, **args).go().results()


# -- scenarios: each returns what the parent checks ---------------------------------


async def limits(pipe: Pipeline, upstream: Upstream, args: dict[str, Any]) -> dict[str, Any]:
    """``requests`` calls to the group, ``concurrency`` at a time (unique prompts:
    no cache); how many were admitted, refused, and the tokens they used."""
    seen = {"ok": 0, "refused": 0, "tokens": 0}

    async def one(i: int) -> None:
        messages = [{"role": "user", "content": f"{args['worker']}-{i}"}]
        try:
            reply = await pipe.acompletion(
                "g", messages, max_tokens=args.get("max_tokens", 16), cache=False
            )
        except errors.RateLimitError:
            seen["refused"] += 1
        else:
            seen["ok"] += 1
            seen["tokens"] += reply.usage.total_tokens if reply.usage else 0

    await concurrently(args["requests"], args.get("concurrency", 4), one)
    return seen


async def breaker(pipe: Pipeline, upstream: Upstream, args: dict[str, Any]) -> dict[str, Any]:
    """``requests`` calls one after another; which deployment served each."""
    served = []
    for i in range(args["requests"]):
        reply = await pipe.acompletion("g", [{"role": "user", "content": f"b{i}"}], cache=False)
        served.append(reply.attempts[-1].deployment)
    return {"served": served}


async def cache(pipe: Pipeline, upstream: Upstream, args: dict[str, Any]) -> dict[str, Any]:
    """One answer and one stream (a per-call key: its own namespace)."""
    reply = await pipe.acompletion("up/a", HI, api_key=SECRET, temperature=0)
    stream = await pipe.acompletion("up/a", HI, api_key=SECRET, temperature=0, stream=True)
    assert isinstance(stream, Stream)
    chunks = [chunk.to_dict() async for chunk in stream]
    return {
        "hits": [reply.cache_hit, stream.cache_hit],
        "content": reply.choices[0].message.content,
        "chunks": chunks,
    }


async def flight(pipe: Pipeline, upstream: Upstream, args: dict[str, Any]) -> dict[str, Any]:
    """``requests`` identical calls at once; how many were answered."""
    answered = []

    async def one(i: int) -> None:
        reply = await pipe.acompletion("up/a", HI, temperature=0)
        answered.append(reply.choices[0].message.content)

    await concurrently(args["requests"], args["requests"], one)
    return {"answered": answered}


async def outage(pipe: Pipeline, upstream: Upstream, args: dict[str, Any]) -> dict[str, Any]:
    """Calls every ``interval`` seconds for ``duration``: each one's outcome and time."""
    ok = failed = 0
    slowest = 0.0
    deadline = time.monotonic() + args["duration"]
    i = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            await pipe.acompletion(
                "g", [{"role": "user", "content": f"o{args['worker']}-{i}"}], temperature=0
            )
            ok += 1
        except errors.DispatchError:
            failed += 1
        slowest = max(slowest, time.monotonic() - started)
        i += 1
        await anyio.sleep(args["interval"])
    return {"ok": ok, "failed": failed, "slowest": slowest}


async def usage(pipe: Pipeline, upstream: Upstream, args: dict[str, Any]) -> dict[str, Any]:
    """``requests`` calls to the group (every third one streamed, every fifth to the
    failing ``up/x``), ``concurrency`` at a time; this process's own statistics,
    sent to Redis at the end, and its admitted and refused calls."""
    seen = {"ok": 0, "refused": 0}

    async def one(i: int) -> None:
        messages = [{"role": "user", "content": f"{args['worker']}-{i}"}]
        try:
            if i % 5 == 4:
                await pipe.acompletion("up/x", messages, cache=False)
            elif i % 3 == 0:
                async for _ in await pipe.acompletion("g", messages, cache=False, stream=True):
                    pass
            else:
                await pipe.acompletion("g", messages, cache=False)
            seen["ok"] += 1
        except errors.BudgetExceededError:
            seen["refused"] += 1
        except errors.InternalServerError:
            pass

    await concurrently(args["requests"], args.get("concurrency", 4), one)
    stats, budget = pipe.middlewares[0], pipe.middlewares[3]
    assert isinstance(stats, Stats) and isinstance(budget, Budget)
    await anyio.sleep(0.1)  # a stream's spend reaches Redis in the background
    await stats.aflush()
    return {**seen, "stats": stats.snapshot().to_dict(), "spent": budget.spent("provider:up")}


SCENARIOS = {"limits": limits, "breaker": breaker, "cache": cache, "flight": flight}
SCENARIOS["outage"] = outage
SCENARIOS["usage"] = usage


async def main(args: dict[str, Any]) -> dict[str, Any]:
    upstream = Upstream(
        fail=tuple(args.get("fail", ())),
        delay=args.get("delay", 0.0),
        usage=args.get("usage", 0),
    )
    # A generous timeout: four workers on two busy cores must not fall back to
    # local state by accident (connection refused, when Redis is down, is at once).
    redis = SharedRedis(
        args["url"],
        timeout=args.get("timeout", 2.0),
        retry_interval=args.get("retry_interval", 1.0),
    )
    pipe = pipeline(args, upstream, redis)
    await redis.user("worker", fallback="none").run(lambda client: client.ping())  # connected
    print("ready", flush=True)
    if (await anyio.to_thread.run_sync(sys.stdin.readline)).strip() != "go":
        raise SystemExit("no go")
    try:
        with capture_logs() as logs:
            result = await SCENARIOS[args["scenario"]](pipe, upstream, args)
    finally:
        await pipe.aclose()
        await redis.aclose()
    warnings = Counter(e.get("layer", e["event"]) for e in logs if e["log_level"] == "warning")
    result["warnings"] = dict(warnings)
    result["recovered"] = sum(1 for e in logs if e["event"] == "redis.recovered")
    result["upstream"] = dict(upstream.calls)
    return result


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    print(json.dumps(anyio.run(main, arguments, backend=arguments["backend"])), flush=True)
