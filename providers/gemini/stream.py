"""Gemini streams: ``alt=sse`` events (or a streamed JSON array) of whole responses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pipeline.adapter import (
    ChatChunk,
    ChunkChoice,
    Delta,
    FunctionDelta,
    Request,
    ToolCallDelta,
    Usage,
    parsing,
)
from providers._json import as_dict, opt_dict, opt_list, opt_str
from providers._lines import JSONArraySplitter, SSEParser
from providers.gemini.errors import stream_error
from providers.gemini.response import (
    candidate_index,
    finish_reason,
    raise_if_blocked,
    read_candidate,
    usage_from,
)

# How a body's first byte tells its framing: a JSON array (or bare objects), or SSE
# (a "data:", "event:", "id:" or "retry:" field, or a ":" comment).
_JSON_FIRST = b"[{"
_SSE_FIRST = b"dei:r"


class GeminiStreamDecoder:
    """``alt=sse`` events (or a streamed JSON array) of whole responses, into chunks."""

    __slots__ = ("_calls", "_frames", "_id", "_model", "_request", "_started", "_usage")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._frames: SSEParser | JSONArraySplitter | None = None
        self._calls: dict[int, int] = {}  # candidate index -> function calls seen
        self._started: set[int] = set()
        self._usage: Usage | None = None
        self._id = ""
        self._model = ""

    def feed(self, data: bytes) -> list[ChatChunk]:
        with parsing(self._request, "stream event"):
            if self._frames is None:
                start = data.lstrip()
                if not start:
                    return []
                first = start[:1]
                if first in _JSON_FIRST:
                    self._frames = JSONArraySplitter()
                elif first in _SSE_FIRST:
                    self._frames = SSEParser()
                else:
                    raise ValueError(f"the body is neither SSE nor a JSON array ({first!r}...)")
            return self._chunks(self._texts(self._frames.feed(data)))

    def close(self) -> list[ChatChunk]:
        with parsing(self._request, "stream event"):
            if self._frames is None:
                return []
            chunks = self._chunks(self._texts(self._frames.close()))
        if self._usage is not None:
            chunks.append(
                ChatChunk(
                    id=self._id,
                    model=self._model or self._request.model,
                    provider=self._request.provider,
                    usage=self._usage,
                )
            )
        return chunks

    @staticmethod
    def _texts(frames: Iterable[Any]) -> list[str]:
        return [frame if isinstance(frame, str) else frame.data for frame in frames]

    def _chunks(self, texts: Sequence[str]) -> list[ChatChunk]:
        out = []
        for text in texts:
            chunk = self._chunk(as_dict(json.loads(text), "stream event"))
            if chunk is not None:
                out.append(chunk)
        return out

    def _chunk(self, data: dict[str, Any]) -> ChatChunk | None:
        request = self._request
        if "error" in data:
            raise stream_error(request, data)
        raise_if_blocked(request, data)
        self._id = self._id or opt_str(data, "responseId") or ""
        self._model = self._model or opt_str(data, "modelVersion") or ""
        usage = usage_from(opt_dict(data, "usageMetadata"))
        if usage is not None:
            self._usage = usage
        choices = []
        for position, raw in enumerate(opt_list(data, "candidates")):
            first_call = self._calls.get(candidate_index(as_dict(raw, "candidate"), position), 0)
            candidate = read_candidate(raw, position, self._id, first_call)
            index = candidate.index
            self._calls[index] = first_call + len(candidate.calls)
            role = None if index in self._started else "assistant"
            self._started.add(index)
            deltas = [
                ToolCallDelta(
                    index=first_call + k,
                    id=call.id,
                    type="function",
                    function=FunctionDelta(
                        name=call.function.name, arguments=call.function.arguments
                    ),
                )
                for k, call in enumerate(candidate.calls)
            ]
            choices.append(
                ChunkChoice(
                    index=index,
                    delta=Delta(
                        role=role,
                        content=candidate.text,
                        reasoning_content=candidate.reasoning,
                        tool_calls=deltas or None,
                    ),
                    finish_reason=finish_reason(candidate.finish, self._calls[index] > 0),
                )
            )
        if not choices:
            return None
        return ChatChunk(
            id=self._id,
            model=self._model or request.model,
            provider=request.provider,
            choices=choices,
        )
