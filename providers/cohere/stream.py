"""Cohere v2's named SSE events as OpenAI-shaped chunks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pipeline.adapter import (
    ChatChunk,
    Delta,
    FramedDecoder,
    FunctionDelta,
    Request,
    ServerSentEvent,
    SSEParser,
    ToolCallDelta,
    as_dict,
    errors,
    event_error,
    opt_dict,
    opt_str,
)
from providers.cohere.response import tool_call, usage_from
from providers.openai_wire import finish_reason

# -- streams ------------------------------------------------------------------


def _delta_message(data: dict[str, Any]) -> dict[str, Any]:
    return opt_dict(opt_dict(data, "delta") or {}, "message") or {}


class CohereStreamDecoder(FramedDecoder):
    """v2's named events: message-start, content-*, tool-plan-delta, tool-call-*,
    citation-*, message-end (with the finish reason and usage)."""

    marker = "message-end"

    __slots__ = ("_calls",)

    def __init__(self, request: Request) -> None:
        super().__init__(request, SSEParser())
        self._calls = 0  # tool calls started so far

    def decode(self, frame: ServerSentEvent) -> ChatChunk | None:
        data = as_dict(json.loads(frame.data), "stream event")
        handler = _EVENTS.get(opt_str(data, "type") or frame.event)
        if handler is None and isinstance(data.get("message"), str):
            raise self._error(data["message"])  # an error body ({"id", "message"})
        return handler(self, data) if handler is not None else None

    def _error(self, message: str) -> errors.DispatchError:
        return event_error(self.request, errors.InternalServerError, message)

    def _message_start(self, data: dict[str, Any]) -> ChatChunk:
        self.id = opt_str(data, "id") or ""
        return self.single(Delta(role="assistant"))

    def _content_event(self, data: dict[str, Any]) -> ChatChunk | None:
        content = opt_dict(_delta_message(data), "content") or {}
        text = opt_str(content, "text")
        thinking = opt_str(content, "thinking")
        if not text and not thinking:
            return None
        return self.single(Delta(content=text or None, reasoning_content=thinking or None))

    def _tool_plan(self, data: dict[str, Any]) -> ChatChunk | None:
        plan = opt_str(_delta_message(data), "tool_plan")
        return self.single(Delta(reasoning_content=plan)) if plan else None

    def _tool_call_start(self, data: dict[str, Any]) -> ChatChunk:
        call = tool_call(_delta_message(data)["tool_calls"])
        self._calls += 1
        part = ToolCallDelta(
            index=self._calls - 1,
            id=call.id or None,
            type="function",
            function=FunctionDelta(name=call.function.name, arguments=call.function.arguments),
        )
        return self.single(Delta(tool_calls=[part]))

    def _tool_call_delta(self, data: dict[str, Any]) -> ChatChunk | None:
        if not self._calls:
            raise ValueError("tool-call-delta before any tool-call-start")
        calls = as_dict(_delta_message(data)["tool_calls"], "tool_calls")
        arguments = opt_str(opt_dict(calls, "function") or {}, "arguments")
        if not arguments:
            return None
        part = ToolCallDelta(index=self._calls - 1, function=FunctionDelta(arguments=arguments))
        return self.single(Delta(tool_calls=[part]))

    def _message_end(self, data: dict[str, Any]) -> ChatChunk:
        delta = opt_dict(data, "delta") or {}
        failure = opt_str(delta, "error")
        if failure:
            raise self._error(failure)
        self.ended = True
        return self.single(
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
