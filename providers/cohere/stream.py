"""Cohere v2's named SSE events as OpenAI-shaped chunks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pipeline.adapter import (
    ChatChunk,
    ChunkChoice,
    Delta,
    FunctionDelta,
    Request,
    ToolCallDelta,
    Usage,
    errors,
    event_error,
    parsing,
)
from providers._json import as_dict, opt_dict, opt_str
from providers._lines import ServerSentEvent, SSEParser
from providers.cohere.response import tool_call, usage_from
from providers.openai_wire import finish_reason

# -- streams ------------------------------------------------------------------


def _delta_message(data: dict[str, Any]) -> dict[str, Any]:
    return opt_dict(opt_dict(data, "delta") or {}, "message") or {}


class CohereStreamDecoder:
    """v2's named events: message-start, content-*, tool-plan-delta, tool-call-*,
    citation-*, message-end (with the finish reason and usage)."""

    __slots__ = ("_calls", "_done", "_events", "_id", "_request")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._events = SSEParser()
        self._id = ""
        self._calls = 0  # tool calls started so far
        self._done = False

    def feed(self, data: bytes) -> list[ChatChunk]:
        with parsing(self._request, "stream event"):
            return self._chunks(self._events.feed(data))

    def close(self) -> list[ChatChunk]:
        with parsing(self._request, "stream event"):
            chunks = self._chunks(self._events.close())
        if not self._done:
            raise errors.ProviderResponseError(
                f"{self._request.provider}'s stream ended before message-end",
                provider=self._request.provider,
                model=self._request.model,
            )
        return chunks

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        for event in events:
            if self._done:
                break
            data = as_dict(json.loads(event.data), "stream event")
            kind = opt_str(data, "type") or event.event
            handler = _EVENTS.get(kind)
            if handler is None and isinstance(data.get("message"), str):
                raise self._error(data["message"])  # an error body ({"id", "message"})
            chunk = handler(self, data) if handler is not None else None
            if chunk is not None:
                out.append(chunk)
        return out

    def _error(self, message: str) -> errors.DispatchError:
        return event_error(self._request, errors.InternalServerError, message)

    def _chunk(
        self, delta: Delta, finish: str | None = None, usage: Usage | None = None
    ) -> ChatChunk:
        return ChatChunk(
            id=self._id,
            model=self._request.model,
            provider=self._request.provider,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
            usage=usage,
        )

    def _message_start(self, data: dict[str, Any]) -> ChatChunk:
        self._id = opt_str(data, "id") or ""
        return self._chunk(Delta(role="assistant"))

    def _content_event(self, data: dict[str, Any]) -> ChatChunk | None:
        content = opt_dict(_delta_message(data), "content") or {}
        text = opt_str(content, "text")
        thinking = opt_str(content, "thinking")
        if not text and not thinking:
            return None
        return self._chunk(Delta(content=text or None, reasoning_content=thinking or None))

    def _tool_plan(self, data: dict[str, Any]) -> ChatChunk | None:
        plan = opt_str(_delta_message(data), "tool_plan")
        return self._chunk(Delta(reasoning_content=plan)) if plan else None

    def _tool_call_start(self, data: dict[str, Any]) -> ChatChunk:
        call = tool_call(_delta_message(data)["tool_calls"])
        self._calls += 1
        part = ToolCallDelta(
            index=self._calls - 1,
            id=call.id or None,
            type="function",
            function=FunctionDelta(name=call.function.name, arguments=call.function.arguments),
        )
        return self._chunk(Delta(tool_calls=[part]))

    def _tool_call_delta(self, data: dict[str, Any]) -> ChatChunk | None:
        if not self._calls:
            raise ValueError("tool-call-delta before any tool-call-start")
        calls = as_dict(_delta_message(data)["tool_calls"], "tool_calls")
        arguments = opt_str(opt_dict(calls, "function") or {}, "arguments")
        if not arguments:
            return None
        part = ToolCallDelta(index=self._calls - 1, function=FunctionDelta(arguments=arguments))
        return self._chunk(Delta(tool_calls=[part]))

    def _message_end(self, data: dict[str, Any]) -> ChatChunk:
        delta = opt_dict(data, "delta") or {}
        failure = opt_str(delta, "error")
        if failure:
            raise self._error(failure)
        self._done = True
        return self._chunk(
            Delta(),
            finish=finish_reason(delta.get("finish_reason")) or "stop",
            usage=usage_from(opt_dict(delta, "usage")),
        )


def _nothing(decoder: CohereStreamDecoder, data: dict[str, Any]) -> None:
    """An event that carries nothing for a chat completion (citations among them)."""


_EVENTS: dict[str, Callable[[CohereStreamDecoder, dict[str, Any]], ChatChunk | None]] = {
    "message-start": CohereStreamDecoder._message_start,
    "content-start": CohereStreamDecoder._content_event,
    "content-delta": CohereStreamDecoder._content_event,
    "content-end": _nothing,
    "tool-call-end": _nothing,
    "citation-start": _nothing,
    "citation-end": _nothing,
    "debug": _nothing,
    "tool-plan-delta": CohereStreamDecoder._tool_plan,
    "tool-call-start": CohereStreamDecoder._tool_call_start,
    "tool-call-delta": CohereStreamDecoder._tool_call_delta,
    "message-end": CohereStreamDecoder._message_end,
}
