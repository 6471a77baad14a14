"""Feeding a stream decoder, and folding its chunks, as the provider tests do."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pipeline import ChatChunk, ChatResponse, StreamAccumulator
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


# What every provider's stream ends with; a stream decoded as a success must carry it.
END_MARKERS: dict[str, bytes] = {
    "openai": rb"data: \[DONE\]",
    "anthropic": rb"message_stop",
    "gemini": rb'"finishReason"',
    "ollama": rb'"done"\s*:\s*true',
    "cohere": rb"message-end",
}


def assert_whole(raw: bytes, provider: str) -> None:
    """The oracle for a damaged stream that decoded without an error: it still
    carries its end marker (a cut stream must raise, never pass as a reply)."""
    assert re.search(END_MARKERS[provider], raw), f"a {provider} stream without its end marker"
