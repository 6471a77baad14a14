"""Ollama replies, NDJSON streams and error strings in OpenAI's shapes."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import httpx

from pipeline.adapter import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    Embedding,
    EmbeddingResponse,
    FramedDecoder,
    Function,
    Message,
    NDJSONParser,
    Request,
    ToolCall,
    Usage,
    as_dict,
    as_list,
    call_deltas,
    error_message,
    errors,
    event_error,
    floats,
    opt_dict,
    opt_int,
    opt_list,
    opt_str,
    read_json,
    req_str,
    status_error,
)
from providers.openai_wire import finish_reason

# -- errors -----------------------------------------------------------------

# Phrases in Ollama's ``{"error": "..."}`` strings that name a precise error.
_MESSAGE_CLASSES: tuple[tuple[str, type[errors.DispatchError]], ...] = (
    ("context length", errors.ContextWindowExceededError),
    ("context window", errors.ContextWindowExceededError),
    ("does not support", errors.BadRequestError),  # "... does not support tools"
    ("not found", errors.NotFoundError),  # 'model "x" not found, try pulling it first'
)


def error_class(message: str) -> type[errors.DispatchError] | None:
    """The class an error string names, if any (a status narrows it: status_error)."""
    lowered = message.lower()
    return next((cls for phrase, cls in _MESSAGE_CLASSES if phrase in lowered), None)


def stream_error(request: Request, message: Any) -> errors.DispatchError:
    """An ``{"error": ...}`` line inside a stream (the status was already 200)."""
    text = message if isinstance(message, str) else json.dumps(message)
    return event_error(request, error_class(text) or errors.InternalServerError, text)


def error_from(request: Request, response: httpx.Response) -> errors.DispatchError:
    """Ollama's ``{"error": "..."}`` body (or any other) as a unified error."""
    message = error_message(response, "error")
    return status_error(request, response, message, cls=error_class(message))


# -- reading replies ----------------------------------------------------------


def usage_from(data: dict[str, Any]) -> Usage:
    """Token counts from a final chat line, a ``/api/generate`` or ``/api/embed`` reply.
    Ollama leaves a zero count out."""
    prompt = opt_int(data, "prompt_eval_count") or 0
    completion = opt_int(data, "eval_count") or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=opt_int(data, "prompt_eval_cached_count"),
    )


def finish_from(data: dict[str, Any], tool_calls: bool) -> str:
    """``done_reason`` as OpenAI's finish_reason; Ollama says ``stop`` even after tool calls."""
    reason = finish_reason(data.get("done_reason")) or "stop"
    return "tool_calls" if tool_calls and reason == "stop" else reason


def created_from(data: dict[str, Any]) -> int:
    """``created_at`` (RFC 3339, nanoseconds) as epoch seconds; 0 when absent or unreadable."""
    stamp = opt_str(data, "created_at")
    try:
        return int(datetime.fromisoformat(stamp).timestamp()) if stamp else 0
    except ValueError:
        return 0


def _stable_id(index: int, name: str, arguments: str) -> str:
    digest = hashlib.sha256(f"{index}\n{name}\n{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def tool_call(data: Any, index: int) -> ToolCall:
    data = as_dict(data, "tool call")
    function = as_dict(data["function"], "function")
    name = req_str(function, "name")
    raw = function.get("arguments")
    arguments = raw if isinstance(raw, str) else json.dumps(as_dict(raw or {}, "arguments"))
    return ToolCall(
        id=opt_str(data, "id") or _stable_id(index, name, arguments),
        function=Function(name=name, arguments=arguments),
    )


def _done(data: dict[str, Any]) -> bool:
    done = data.get("done", False)
    if not isinstance(done, bool):
        raise TypeError("done should be a boolean")
    return done


class OllamaStreamDecoder(FramedDecoder):
    """NDJSON lines of chat objects; the last has ``done: true``, the reason and the counts."""

    marker = "its last line (done: true)"

    __slots__ = ("_calls", "_started")

    def __init__(self, request: Request) -> None:
        super().__init__(request, NDJSONParser())
        self._calls = 0  # tool calls so far: each gets the next index
        self._started = False

    def decode(self, frame: Any) -> ChatChunk:
        data = as_dict(frame, "stream line")
        if "error" in data:
            raise stream_error(self.request, data["error"])
        message = opt_dict(data, "message") or {}
        raw_calls = opt_list(message, "tool_calls")
        calls = [tool_call(raw, self._calls + k) for k, raw in enumerate(raw_calls)]
        deltas = call_deltas(calls, self._calls)
        self._calls += len(calls)
        done = self.ended = _done(data)
        delta = Delta(
            role=None if self._started else "assistant",
            content=opt_str(message, "content") or None,
            reasoning_content=opt_str(message, "thinking") or None,
            tool_calls=deltas or None,
        )
        self._started = True
        return ChatChunk(
            created=created_from(data),
            model=opt_str(data, "model") or self.request.model,
            provider=self.request.provider,
            choices=[
                ChunkChoice(
                    delta=delta,
                    finish_reason=finish_from(data, self._calls > 0) if done else None,
                )
            ],
            usage=usage_from(data) if done else None,
        )


def parse_chat(request: Request, response: httpx.Response) -> ChatResponse:
    data = as_dict(read_json(request, response), "chat response")
    message = as_dict(data["message"], "message")
    calls = [tool_call(raw, i) for i, raw in enumerate(opt_list(message, "tool_calls"))]
    content = opt_str(message, "content")
    return ChatResponse(
        created=created_from(data),
        model=opt_str(data, "model") or request.model,
        choices=[
            Choice(
                message=Message(
                    content=(content or None) if calls else content,
                    tool_calls=calls or None,
                    reasoning_content=opt_str(message, "thinking") or None,
                ),
                finish_reason=finish_from(data, bool(calls)),
            )
        ],
        usage=usage_from(data),
    )


def parse_embedding(request: Request, response: httpx.Response) -> EmbeddingResponse:
    data = as_dict(read_json(request, response), "embedding response")
    vectors = as_list(data["embeddings"], "embeddings")
    prompt = opt_int(data, "prompt_eval_count") or 0
    return EmbeddingResponse(
        model=opt_str(data, "model") or request.model,
        data=[Embedding(index=i, embedding=floats(v)) for i, v in enumerate(vectors)],
        usage=Usage(prompt_tokens=prompt, total_tokens=prompt),
    )
