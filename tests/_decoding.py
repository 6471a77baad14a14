"""Feeding a stream decoder, and folding its chunks, as the provider tests do."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline import ChatChunk, ChatResponse
from pipeline._responses import StreamAccumulator
from pipeline.adapter import StreamDecoder


def feed(decoder: StreamDecoder, raw: bytes, size: int | None = None) -> list[ChatChunk]:
    """Every chunk of ``raw``: fed whole (``size`` None or 0) or ``size`` bytes at a time."""
    pieces = [raw] if not size else [raw[i : i + size] for i in range(0, len(raw), size)]
    chunks = [chunk for piece in pieces for chunk in decoder.feed(piece)]
    return chunks + decoder.close()


def accumulate(chunks: Iterable[ChatChunk]) -> ChatResponse:
    """The response the chunks add up to."""
    accumulator = StreamAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    return accumulator.response()
