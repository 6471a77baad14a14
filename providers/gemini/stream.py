"""Gemini streams: ``alt=sse`` events (or a streamed JSON array) of whole responses."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pipeline.adapter import (
    ChatChunk,
    ChunkChoice,
    Delta,
    FramedDecoder,
    JSONArraySplitter,
    Request,
    SSEParser,
    Usage,
    as_dict,
    call_deltas,
    opt_dict,
    opt_list,
    opt_str,
)
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


class _Framing:
    """SSE or a streamed JSON array, chosen by the body's first byte; frames out as texts."""

    __slots__ = ("_frames",)

    def __init__(self) -> None:
        self._frames: SSEParser | JSONArraySplitter | None = None

    def feed(self, data: bytes) -> list[str]:
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
        return self._texts(self._frames.feed(data))

    def close(self) -> list[str]:
        return [] if self._frames is None else self._texts(self._frames.close())

    @staticmethod
    def _texts(frames: Iterable[Any]) -> list[str]:
        return [frame if isinstance(frame, str) else frame.data for frame in frames]


class GeminiStreamDecoder(FramedDecoder):
    """``alt=sse`` events (or a streamed JSON array) of whole responses, into chunks.

    Gemini has no end event: a stream is whole when every candidate that
    started has its ``finishReason``. Usage, cumulative in Gemini's events, is
    sent once, in a last chunk with no choices."""

    marker = "a finishReason for every candidate"

    __slots__ = ("_calls", "_finished", "_started", "_usage")

    def __init__(self, request: Request) -> None:
        super().__init__(request, _Framing())
        self.model = ""
        self._calls: dict[int, int] = {}  # candidate index -> function calls seen
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._usage: Usage | None = None

    def complete(self) -> bool:
        return bool(self._started) and self._started <= self._finished

    def finish(self) -> list[ChatChunk]:
        if self._usage is None:
            return []
        return [
            ChatChunk(
                id=self.id,
                model=self.model or self.request.model,
                provider=self.request.provider,
                usage=self._usage,
            )
        ]

    def decode(self, frame: str) -> ChatChunk | None:
        request = self.request
        data = as_dict(json.loads(frame), "stream event")
        if "error" in data:
            raise stream_error(request, data)
        raise_if_blocked(request, data)
        self.id = self.id or opt_str(data, "responseId") or ""
        self.model = self.model or opt_str(data, "modelVersion") or ""
        usage = usage_from(opt_dict(data, "usageMetadata"))
        if usage is not None:
            self._usage = usage
        choices = []
        for position, raw in enumerate(opt_list(data, "candidates")):
            first_call = self._calls.get(candidate_index(as_dict(raw, "candidate"), position), 0)
            candidate = read_candidate(raw, position, self.id, first_call)
            index = candidate.index
            self._calls[index] = first_call + len(candidate.calls)
            role = None if index in self._started else "assistant"
            self._started.add(index)
            finish = finish_reason(candidate.finish, self._calls[index] > 0)
            if finish is not None:
                self._finished.add(index)
            deltas = call_deltas(candidate.calls, first_call)
            choices.append(
                ChunkChoice(
                    index=index,
                    delta=Delta(
                        role=role,
                        content=candidate.text,
                        reasoning_content=candidate.reasoning,
                        tool_calls=deltas or None,
                    ),
                    finish_reason=finish,
                )
            )
        if not choices:
            return None
        return ChatChunk(
            id=self.id,
            model=self.model or request.model,
            provider=request.provider,
            choices=choices,
        )
