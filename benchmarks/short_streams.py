"""Short streams over loopback: the client a pipeline makes itself against raw aiohttp.

Most streamed answers are short, so here each stream carries
:data:`~benchmarks.replies.SHORT_STREAM_CHUNKS` chunks and the fixed cost per
stream (request, headers, first chunk, end) is most of what is measured.
Variants, against the loopback server, interleaved round by round:

- ``aiohttp.ClientSession``: no httpx, no pipeline: reads the SSE lines and
  decodes each ``data:`` event with ``json.loads`` (the ceiling);
- ``raw httpx``: ``client.stream`` on the client a pipeline makes itself
  (:func:`pipeline._clients.default_client`), the same line reading;
- ``Pipeline([])`` and ``Pipeline.default()`` built without ``http_client=``,
  iterating the stream ``acompletion(..., stream=True)`` returns.

Sequential: microseconds from the call to the stream's end, one after
another. Concurrent: 50 tasks streaming as fast as they can; streams per
second. Every stream's chunk count is checked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import aiohttp

from benchmarks.overhead import (
    DEFAULT,
    RAW,
    SESSION,
    Build,
    Call,
    Load,
    OverheadRow,
    Variant,
    bare_pipeline,
    measure_target,
    messages,
    pipeline_on,
)
from benchmarks.replies import SHORT_MODEL, SHORT_STREAM_CHUNKS
from benchmarks.targets import API_KEY, SHORT, Target
from pipeline import Pipeline
from pipeline._clients import default_client

TARGET = "own"  # the rows' target: the client a pipeline makes itself

_HEADERS = {"authorization": f"Bearer {API_KEY}"}


def _body(i: int) -> dict[str, object]:
    return {"model": SHORT_MODEL, "messages": messages(i), "stream": True}


def _check(chunks: int) -> int:
    if chunks != SHORT_STREAM_CHUNKS:
        raise RuntimeError(f"a stream gave {chunks} chunks, not {SHORT_STREAM_CHUNKS}")
    return chunks


@asynccontextmanager
async def session_streams(target: Target) -> AsyncIterator[Call]:
    async with aiohttp.ClientSession() as session:

        async def call(i: int) -> object:
            chunks = 0
            async with session.post(target.chat_url, json=_body(i), headers=_HEADERS) as reply:
                reply.raise_for_status()
                async for line in reply.content:
                    if line.startswith(b"data: ") and line.rstrip() != b"data: [DONE]":
                        json.loads(line[6:])
                        chunks += 1
            return _check(chunks)

        yield call


@asynccontextmanager
async def raw_streams(target: Target) -> AsyncIterator[Call]:
    async with default_client() as client:

        async def call(i: int) -> object:
            chunks = 0
            async with client.stream(
                "POST", target.chat_url, json=_body(i), headers=_HEADERS
            ) as reply:
                reply.raise_for_status()
                async for line in reply.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        json.loads(line[6:])
                        chunks += 1
            return _check(chunks)

        yield call


@asynccontextmanager
async def pipeline_streams(target: Target, build: Build) -> AsyncIterator[Call]:
    async with pipeline_on(target, build) as pipe:

        async def call(i: int) -> object:
            chunks = 0
            stream = await pipe.acompletion(SHORT, messages(i), stream=True, api_key=API_KEY)
            async with stream:
                async for _chunk in stream:
                    chunks += 1
            return _check(chunks)

        yield call


VARIANTS: dict[str, Variant] = {
    SESSION: session_streams,
    RAW: raw_streams,
    "Pipeline([])": partial(pipeline_streams, build=bare_pipeline),
    DEFAULT: partial(pipeline_streams, build=Pipeline.default),
}


async def measure(base_url: str, load: Load) -> tuple[list[OverheadRow], list[str]]:
    """Every variant against the loopback server, sequential then at concurrency 50
    (:func:`benchmarks.overhead.measure_target`); rows' latencies are whole streams."""
    target = Target(TARGET, "loopback, own client", base_url, default_client, inject=False)
    return await measure_target(target, VARIANTS, load)
