"""Anthropic replies and error bodies in OpenAI's shapes."""

from __future__ import annotations

import json
from typing import Any

import httpx

from pipeline.adapter import (
    ChatResponse,
    Choice,
    Function,
    Message,
    Request,
    ToolCall,
    Usage,
    as_dict,
    as_list,
    error_body,
    errors,
    event_error,
    opt_dict,
    opt_int,
    opt_str,
    req_str,
    status_error,
)
from providers.anthropic.structured import JSON_TOOL, json_mode

_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_ERROR_TYPES: dict[str, type[errors.DispatchError]] = {
    "invalid_request_error": errors.BadRequestError,
    "request_too_large": errors.BadRequestError,
    "authentication_error": errors.AuthenticationError,
    "permission_error": errors.PermissionDeniedError,
    "not_found_error": errors.NotFoundError,
    "rate_limit_error": errors.RateLimitError,
    "api_error": errors.InternalServerError,
    "overloaded_error": errors.ServiceUnavailableError,
}
# Phrases of an invalid_request_error that mean the context window is too small.
_CONTEXT_MARKERS = ("prompt is too long", "exceed context limit")


def finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("stop_reason should be a string")
    return _FINISH.get(value, "stop")


def usage_of(data: dict[str, Any]) -> Usage:
    """Anthropic's usage: ``input_tokens`` excludes cache writes and reads; OpenAI's
    ``prompt_tokens`` includes them, so they are added back."""
    read = opt_int(data, "cache_read_input_tokens")
    prompt = (
        (opt_int(data, "input_tokens") or 0)
        + (opt_int(data, "cache_creation_input_tokens") or 0)
        + (read or 0)
    )
    completion = opt_int(data, "output_tokens") or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=read,
        cache_write_tokens=opt_int(data, "cache_creation_input_tokens"),
    )


# -- responses ---------------------------------------------------------------


def _tool_call(block: dict[str, Any]) -> ToolCall:
    return ToolCall(
        id=req_str(block, "id"),
        function=Function(
            name=req_str(block, "name"),
            arguments=json.dumps(as_dict(block.get("input", {}), "tool input")),
        ),
    )


def message_response(request: Request, data: Any) -> ChatResponse:
    data = as_dict(data, "message")
    json_tool = JSON_TOOL if json_mode(request) else None
    text: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    for block in as_list(data["content"], "content"):
        block = as_dict(block, "content block")
        kind = opt_str(block, "type")
        if kind == "text":
            text.append(req_str(block, "text"))
        elif kind == "thinking":
            thinking.append(req_str(block, "thinking"))
        elif kind == "tool_use" and opt_str(block, "name") == json_tool:
            text.append(json.dumps(as_dict(block.get("input", {}), "tool input")))
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    finish = finish_reason(data.get("stop_reason")) or "stop"
    usage = opt_dict(data, "usage")
    return ChatResponse(
        id=opt_str(data, "id") or "",
        model=opt_str(data, "model") or request.model,
        choices=[
            Choice(
                message=Message(
                    role=opt_str(data, "role") or "assistant",
                    content="".join(text) if text else None,
                    tool_calls=calls or None,
                    reasoning_content="".join(thinking) if thinking else None,
                ),
                finish_reason="stop" if finish == "tool_calls" and not calls else finish,
            )
        ],
        usage=usage_of(usage) if usage is not None else None,
    )


# -- errors ------------------------------------------------------------------


def _error_parts(body: Any) -> tuple[str, str | None, str | None]:
    """``(message, error type, request id)`` of ``{"type": "error", "error": {...}}``."""
    if not isinstance(body, dict):
        return "", None, None
    inner = body.get("error")
    request_id = body.get("request_id")
    request_id = request_id if isinstance(request_id, str) else None
    if not isinstance(inner, dict):
        return (inner if isinstance(inner, str) else ""), None, request_id
    kind = inner.get("type")
    return str(inner.get("message") or ""), kind if isinstance(kind, str) else None, request_id


def _error_class(kind: str | None, message: str) -> type[errors.DispatchError] | None:
    cls = _ERROR_TYPES.get(kind or "")
    if cls is errors.BadRequestError and any(m in message.lower() for m in _CONTEXT_MARKERS):
        return errors.ContextWindowExceededError
    return cls


def error_from_body(request: Request, response: httpx.Response) -> errors.DispatchError:
    body = error_body(response)
    message, kind, request_id = _error_parts(body)
    if body is None:
        message = response.text[:500]
    error = status_error(request, response, message, cls=_error_class(kind, message), code=kind)
    if request_id is not None:
        error.request_id = request_id
    return error


def stream_error(request: Request, data: dict[str, Any]) -> errors.DispatchError:
    """An ``error`` event sent after the 200 status: no HTTP status of its own."""
    message, kind, request_id = _error_parts(data)
    cls = _error_class(kind, message) or errors.InternalServerError
    return event_error(request, cls, message, code=kind, request_id=request_id)
