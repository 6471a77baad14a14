"""``python -m benchmarks soak [--quick] [--record] [--seed N]``: the fault-injection soak.

Drives many requests at high concurrency through the default stack
(``middlewares.default_stack(callbacks=..., fallbacks=[the backup provider],
retry=...)``, exactly what ``Pipeline.default`` builds, plus one measuring layer
next to the terminal) against :mod:`benchmarks.soak_server`, which injects a
fault into about two requests in five. 60% of the requests are plain, 40%
streamed, and one stream in ten is closed by the caller after its first chunk.
A fifth of the requests ask for a reproducible answer (``temperature=0``) from
a small pool of prompts, so the cache hits and single-flight are exercised too.

It runs on asyncio, then a smaller run on trio, and counts, per run:

- outcomes by class (``ok``, ``closed early``, each unified error class);
- **untyped exceptions**: anything that is not a ``DispatchError`` (must be 0);
- **calls that outlived their timeout=**: each attempt at the provider, and
  each wait for a stream chunk, timed next to the terminal against
  ``timeout`` plus :data:`SLACK` for a loaded machine, well short of how long
  the server hangs (must be 0);
- **callback violations**: requests without exactly one of ``on_success`` /
  ``on_failure`` (must be 0);
- **truncated or malformed answers reported as success**: the server marks
  every wrong-but-parseable answer ``TAINTED:<fault>:``; a success carrying
  it counts, by fault (must be 0);
- **open connections and stray tasks** once the pipeline is closed (must be 0);
- **memory**: live Python allocations (tracemalloc), started after a warm-up
  round and read after each later round: growth from the first reading to the
  last must stay under :data:`GROWTH_LIMIT` (must not grow with the number of
  requests); RSS growth is reported;
- throughput.

Any violation makes the exit status 1. ``--quick`` (under a minute) is CI's.
``--record`` (full runs only) writes the figures into ``benchmarks/RESULTS.md``,
in a section of their own that ``python -m benchmarks --record`` keeps.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import anyio
import attrs

from benchmarks.server import LoopbackServer
from benchmarks.soak_report import Run, print_runs, record_runs
from benchmarks.soak_server import TAINT
from middlewares import Callbacks, Retry, default_stack
from pipeline import ChatChunk, Handler, Pipeline, Request, Result, Stream, errors
from providers import OpenAICompatible, ProviderRegistry

MODEL = "primary/soak-model"
BACKUP = "backup/soak-model"
TIMEOUT = 1.0  # the per-call timeout= every request carries
HANG = 5.0  # how long the server hangs when it does: far past TIMEOUT
# A shared 2-core machine under load stalls the loop for up to a second now and
# then (the run reports its longest stall); a call that ignored its deadline
# would last HANG or more.
SLACK = 2.0
GROWTH_LIMIT = 1 << 20  # bytes of live allocations the measured rounds may add
POOL = 20  # distinct prompts asked for a reproducible answer


@attrs.frozen
class Scale:
    name: str
    runs: tuple[tuple[str, int, int], ...]  # (backend, requests, concurrency)
    rounds: int  # the first warms up; memory is read after each later one


FULL = Scale("full", (("asyncio", 10_000, 100), ("trio", 2_000, 50)), rounds=6)
QUICK = Scale("quick", (("asyncio", 1_500, 100), ("trio", 500, 50)), rounds=4)


class AttemptClock:
    """Innermost layer: times each attempt at the provider and each wait for a chunk."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def check(self, seconds: float) -> None:
        self.run.longest_wait = max(self.run.longest_wait, seconds)
        if seconds > TIMEOUT + SLACK:
            self.run.outlived += 1

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        start = time.monotonic()
        try:
            result = await call_next(request)
        finally:
            self.check(time.monotonic() - start)
        return _TimedStream(result, self) if isinstance(result, Stream) else result


class _TimedStream(Stream[ChatChunk]):
    __slots__ = ("_clock", "_inner")

    def __init__(self, inner: Stream[ChatChunk], clock: AttemptClock) -> None:
        super().__init__()
        self._copy_meta(inner)
        self._inner = inner
        self._clock = clock

    async def __anext__(self) -> ChatChunk:
        start = time.monotonic()
        try:
            return await self._inner.__anext__()
        finally:
            self._clock.check(time.monotonic() - start)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._inner.aclose()


class Hooks:
    """The Callbacks hooks: which requests got which final hook, and what succeeded."""

    def __init__(self, run: Run) -> None:
        self.run = run
        # Final hooks per request, counted in place: the tally allocates nothing as
        # requests go by, so it never shows as growth in the memory check.
        self.final = bytearray(run.requests)

    def _count(self, request: Request) -> None:
        n = request.options["metadata"]["soak"]
        self.final[n] = min(self.final[n] + 1, 255)

    def success(self, request: Request, response: Any) -> None:
        self._count(request)
        fault = _taint(_text(response))
        if fault:
            self.run.tainted[f"{fault} (on_success)"] += 1

    def failure(self, request: Request, exc: BaseException) -> None:
        self._count(request)


def _taint(text: str) -> str | None:
    """The fault a tainted answer names, or None for a good one."""
    found = _TAINTED.search(text)
    return found.group(1) if found else None


_TAINTED = re.compile(TAINT + r":([a-z0-9-]+):")


def _text(response: Any) -> str:
    return "".join(choice.message.content or "" for choice in response.choices)


def registry(port: int) -> ProviderRegistry:
    base = f"http://127.0.0.1:{port}"
    names = ("primary", "backup")
    return ProviderRegistry([OpenAICompatible(name=n, base_url=f"{base}/{n}/v1") for n in names])


async def one(pipe: Pipeline, n: int, rng: random.Random, run: Run) -> None:
    streamed = rng.random() < 0.4
    close_early = streamed and rng.random() < 0.1
    if rng.random() < 0.2:  # a reproducible answer: cached, and concurrent twins share a call
        prompt, params = f"pooled prompt {rng.randrange(POOL)}", {"temperature": 0}
    else:
        prompt, params = f"soak request {n}", {}
    kind = "stream" if streamed else "plain"
    text: list[str] = []
    try:
        request = pipe.request(
            "chat",
            MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=streamed,
            timeout=TIMEOUT,
            metadata={"soak": n},
            params=params,
        )
        result = await pipe.send(request)
        if isinstance(result, Stream):
            async with result:
                async for chunk in result:
                    text.extend(choice.delta.content or "" for choice in chunk.choices)
                    if close_early:
                        break
            outcome = "closed early" if close_early else "ok"
        else:
            text.append(_text(result))
            outcome = "ok"
    except errors.DispatchError as exc:
        outcome = type(exc).__name__
    except Exception as exc:
        outcome = "untyped"
        run.untyped[f"{type(exc).__module__}.{type(exc).__name__}: {exc}"[:160]] += 1
    run.outcomes[(kind, outcome)] += 1
    fault = _taint("".join(text))
    if outcome == "ok" and fault:
        run.tainted[f"{fault} ({kind} call)"] += 1


async def _watch_lag(run: Run) -> None:
    """How late the event loop wakes a sleeper: a deadline can be noticed no sooner."""
    while True:
        start = time.monotonic()
        await anyio.sleep(0.05)
        run.longest_lag = max(run.longest_lag, time.monotonic() - start - 0.05)


async def _work(pipe: Pipeline, todo: Iterator[int], rng: random.Random, run: Run) -> None:
    for n in todo:
        await one(pipe, n, rng, run)


def _sockets() -> int:
    """Sockets this process holds open (Linux); -1 where /proc is not there."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return -1
    count = 0
    for name in names:
        with suppress(OSError):  # gone meanwhile
            count += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
    return count


def _rss() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tasks(backend: str) -> int:
    """Tasks alive in this event loop (trio: the whole task tree)."""
    if backend == "trio":
        import trio

        root = trio.lowlevel.current_root_task()
        assert root is not None
        todo, count = [root], 0
        while todo:
            task = todo.pop()
            count += 1
            todo.extend(t for nursery in task.child_nurseries for t in nursery.child_tasks)
        return count
    import asyncio

    return len(asyncio.all_tasks())


def _rounds(total: int, rounds: int) -> Iterator[range]:
    step = -(-total // rounds)
    for start in range(0, total, step):
        yield range(start, min(start + step, total))


async def drive(
    backend: str, requests: int, concurrency: int, port: int, scale: Scale, seed: int
) -> Run:
    run = Run(backend=backend, requests=requests, concurrency=concurrency)
    sockets, tasks, rss = _sockets(), _tasks(backend), _rss()
    hooks = Hooks(run)
    stack = default_stack(
        callbacks=Callbacks(on_success=hooks.success, on_failure=hooks.failure),
        fallbacks=[BACKUP],
        retry=Retry(attempts=3, base_delay=0.01, max_delay=0.2, deadline=10.0),
    )
    rng = random.Random(seed)
    start = time.perf_counter()
    async with (
        Pipeline([*stack, AttemptClock(run)], registry=registry(port)) as pipe,
        anyio.create_task_group() as watching,
    ):
        watching.start_soon(_watch_lag, run)
        for index, numbers in enumerate(_rounds(requests, scale.rounds)):
            todo = iter(numbers)
            async with anyio.create_task_group() as group:
                for _ in range(concurrency):
                    group.start_soon(_work, pipe, todo, rng, run)
            gc.collect()
            if index == 0:
                tracemalloc.start()
            else:
                run.memory.append(tracemalloc.get_traced_memory()[0])
        watching.cancel_scope.cancel()
    run.seconds = time.perf_counter() - start
    tracemalloc.stop()
    await anyio.sleep(0.2)  # closing transports finish on the loop's next turns
    run.open_sockets = max(0, _sockets() - sockets) if sockets >= 0 else -1
    run.stray_tasks = _tasks(backend) - tasks
    run.rss_growth = _rss() - rss
    run.callback_violations = sum(count != 1 for count in hooks.final)
    run.growth_limit = GROWTH_LIMIT
    return run


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks soak", description="The fault-injection soak."
    )
    parser.add_argument("--quick", action="store_true", help="a run under a minute (CI's)")
    parser.add_argument("--record", action="store_true", help="write the figures into RESULTS.md")
    parser.add_argument("--seed", type=int, default=8, help="the server's and the client's seed")
    args = parser.parse_args(argv)
    if args.record and args.quick:
        parser.error("--record keeps full runs only; drop --quick")
    return args


def main(argv: list[str]) -> int:
    from benchmarks.run import quiet_logs

    args = parse(argv)
    scale = QUICK if args.quick else FULL
    runs = []
    server = LoopbackServer("benchmarks.soak_server", [str(args.seed), str(HANG)])
    with quiet_logs(), server:
        for backend, requests, concurrency in scale.runs:
            arguments = (backend, requests, concurrency, server.port, scale, args.seed)
            runs.append(anyio.run(drive, *arguments, backend=backend))
    print_runs(runs, scale.name, args.seed)
    if args.record:
        record_runs(runs, args.seed)
    return 1 if any(run.violations() for run in runs) else 0
