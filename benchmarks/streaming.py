"""Streaming: time to the first chunk and to the end of a 100-chunk stream.

``raw httpx`` reads the SSE lines itself and decodes each ``data:`` event
with ``json.loads``; the pipeline variants iterate the stream
``acompletion(..., stream=True)`` returns, whose chunks are response objects.
Each stream's chunk count is checked, so a broken stream cannot pass for a
fast one. The variants of one target run interleaved, as in
:mod:`benchmarks.overhead`.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial

import attrs

from benchmarks.interleave import interleaved
from benchmarks.overhead import Build, bare_pipeline, messages, pipeline_on
from benchmarks.replies import STREAM_CHUNKS
from benchmarks.stats import Summary, summarize
from benchmarks.targets import API_KEY, MODEL, MODEL_NAME, Target
from pipeline import Pipeline

# (seconds to the first chunk, seconds in all, chunks received)
StreamCall = Callable[[int], Awaitable[tuple[float, float, int]]]

_numbers = itertools.count()


@asynccontextmanager
async def raw_streams(target: Target) -> AsyncIterator[StreamCall]:
    headers = {"authorization": f"Bearer {API_KEY}"}
    async with target.client() as client:

        async def call(i: int) -> tuple[float, float, int]:
            body = {"model": MODEL_NAME, "messages": messages(i), "stream": True}
            start = time.perf_counter()
            first = 0.0
            chunks = 0
            async with client.stream("POST", target.chat_url, json=body, headers=headers) as reply:
                reply.raise_for_status()
                async for line in reply.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    if line == "data: [DONE]":
                        break
                    json.loads(line[6:])
                    chunks += 1
                    if chunks == 1:
                        first = time.perf_counter() - start
            return first, time.perf_counter() - start, chunks

        yield call


@asynccontextmanager
async def pipeline_streams(target: Target, build: Build) -> AsyncIterator[StreamCall]:
    async with pipeline_on(target, build) as pipe:

        async def call(i: int) -> tuple[float, float, int]:
            start = time.perf_counter()
            first = 0.0
            chunks = 0
            stream = await pipe.acompletion(MODEL, messages(i), stream=True, api_key=API_KEY)
            async with stream:
                async for _chunk in stream:
                    chunks += 1
                    if chunks == 1:
                        first = time.perf_counter() - start
            return first, time.perf_counter() - start, chunks

        yield call


STREAM_VARIANTS: dict[str, Callable[[Target], AbstractAsyncContextManager[StreamCall]]] = {
    "raw httpx": raw_streams,
    "Pipeline([])": partial(pipeline_streams, build=bare_pipeline),
    "Pipeline.default()": partial(pipeline_streams, build=Pipeline.default),
}


@attrs.frozen
class StreamRow:
    target: str
    variant: str
    first_chunk_us: Summary
    total_us: Summary


async def _timed_streams(call: StreamCall, streams: int) -> list[tuple[float, float]]:
    """(µs to the first chunk, µs in all) for ``streams`` streams, one after another."""
    out = []
    for _ in range(streams):
        first, total, chunks = await call(next(_numbers))
        if chunks != STREAM_CHUNKS:
            raise RuntimeError(f"a stream gave {chunks} chunks, not {STREAM_CHUNKS}")
        out.append((first * 1e6, total * 1e6))
    return out


async def measure_stream_target(target: Target, streams: int, rounds: int) -> list[StreamRow]:
    """Every stream variant on one target, interleaved round by round."""
    async with AsyncExitStack() as stack:
        calls = {
            name: await stack.enter_async_context(variant(target))
            for name, variant in STREAM_VARIANTS.items()
        }
        for call in calls.values():
            await call(next(_numbers))  # warm up: connection and first-use costs
        timed = await interleaved(
            calls, rounds, lambda call: _timed_streams(call, -(-streams // rounds))
        )
    rows = []
    for name, per_round in timed.items():
        pairs = [pair for batch in per_round for pair in batch]
        rows.append(
            StreamRow(
                target.key,
                name,
                summarize([first for first, _ in pairs]),
                summarize([total for _, total in pairs]),
            )
        )
    return rows
