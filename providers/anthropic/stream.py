"""Anthropic's named SSE events as OpenAI-shaped chunks."""

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
    opt_dict,
    opt_int,
    opt_str,
    req_str,
)
from providers.anthropic.response import finish_reason, stream_error, usage_of
from providers.anthropic.structured import JSON_TOOL, json_mode

# -- streams -----------------------------------------------------------------


def _index(data: dict[str, Any]) -> int:
    value = opt_int(data, "index")
    if value is None:
        raise KeyError("index")
    return value


class AnthropicStreamDecoder(FramedDecoder):
    """Anthropic's named SSE events as OpenAI-shaped chunks.

    ``message_start`` gives a role chunk (id, model, input usage); text and
    thinking deltas give content and reasoning chunks; a ``tool_use`` block
    start gives a tool-call delta with its id, name and empty arguments, and
    its ``input_json_delta`` fragments follow at the same tool index;
    ``message_delta`` gives the last chunk, with the finish reason and the
    usage of the whole stream. An ``error`` event raises the unified error; a
    body that ends before ``message_stop`` raises ProviderResponseError.
    """

    marker = "message_stop"

    __slots__ = ("_json_blocks", "_json_tool", "_tools", "_usage")

    def __init__(self, request: Request) -> None:
        super().__init__(request, SSEParser())
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        # response_format json_object: the forced tool's input is the content
        self._json_tool = JSON_TOOL if json_mode(request) else None
        self._json_blocks: set[int] = set()

    def decode(self, frame: ServerSentEvent) -> ChatChunk | None:
        data = as_dict(json.loads(frame.data), "stream event")
        handle = _EVENTS.get(opt_str(data, "type") or frame.event)
        return handle(self, data) if handle is not None else None

    def _text(self, text: str, reasoning: bool) -> ChatChunk | None:
        if not text:
            return None
        return self.single(Delta(reasoning_content=text) if reasoning else Delta(content=text))

    def _message_start(self, data: dict[str, Any]) -> ChatChunk:
        message = as_dict(data["message"], "message")
        self.id = opt_str(message, "id") or ""
        self.model = opt_str(message, "model") or self.model
        self._usage = dict(opt_dict(message, "usage") or {})
        return self.single(Delta(role="assistant", content=""))

    def _block_start(self, data: dict[str, Any]) -> ChatChunk | None:
        index = _index(data)
        block = as_dict(data["content_block"], "content block")
        kind = opt_str(block, "type")
        if kind == "tool_use" and opt_str(block, "name") == self._json_tool:
            self._json_blocks.add(index)
            return None
        if kind == "tool_use":
            tool = self._tools[index] = len(self._tools)
            call = ToolCallDelta(
                index=tool,
                id=req_str(block, "id"),
                type="function",
                function=FunctionDelta(name=req_str(block, "name"), arguments=""),
            )
            return self.single(Delta(tool_calls=[call]))
        if kind == "text":
            return self._text(opt_str(block, "text") or "", reasoning=False)
        if kind == "thinking":
            return self._text(opt_str(block, "thinking") or "", reasoning=True)
        return None

    def _block_delta(self, data: dict[str, Any]) -> ChatChunk | None:
        index = _index(data)
        delta = as_dict(data["delta"], "delta")
        kind = opt_str(delta, "type")
        if kind == "text_delta":
            return self._text(req_str(delta, "text"), reasoning=False)
        if kind == "thinking_delta":
            return self._text(req_str(delta, "thinking"), reasoning=True)
        if kind == "input_json_delta" and index in self._json_blocks:
            return self._text(req_str(delta, "partial_json"), reasoning=False)
        if kind == "input_json_delta":
            fragment = req_str(delta, "partial_json")
            tool = self._tools[index]
            if not fragment:
                return None
            call = ToolCallDelta(index=tool, function=FunctionDelta(arguments=fragment))
            return self.single(Delta(tool_calls=[call]))
        return None  # signature_delta, citations_delta: no OpenAI field for them

    def _message_delta(self, data: dict[str, Any]) -> ChatChunk:
        delta = as_dict(data["delta"], "delta")
        final = opt_dict(data, "usage") or {}
        self._usage.update((k, v) for k, v in final.items() if v is not None)
        finish = finish_reason(delta.get("stop_reason"))
        if finish == "tool_calls" and not self._tools:  # only the JSON tool was called
            finish = "stop"
        return self.single(Delta(), finish=finish, usage=usage_of(self._usage))

    def _message_stop(self, data: dict[str, Any]) -> None:
        self.ended = True

    def _error(self, data: dict[str, Any]) -> None:
        raise stream_error(self.request, data)


_EVENTS: dict[str, Callable[[AnthropicStreamDecoder, dict[str, Any]], ChatChunk | None]] = {
    "message_start": AnthropicStreamDecoder._message_start,
    "content_block_start": AnthropicStreamDecoder._block_start,
    "content_block_delta": AnthropicStreamDecoder._block_delta,
    "message_delta": AnthropicStreamDecoder._message_delta,
    "message_stop": AnthropicStreamDecoder._message_stop,
    "error": AnthropicStreamDecoder._error,
    # content_block_stop and ping carry nothing to pass on
}
