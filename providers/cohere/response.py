"""Cohere v2 replies and error bodies in OpenAI's shapes."""

from __future__ import annotations

import json
from typing import Any

import httpx

from pipeline.adapter import (
    ChatResponse,
    Choice,
    Embedding,
    EmbeddingResponse,
    Function,
    Message,
    Request,
    ToolCall,
    Usage,
    as_dict,
    as_list,
    error_message,
    errors,
    floats,
    opt_dict,
    opt_list,
    opt_str,
    read_json,
    req_str,
    status_error,
)
from providers.openai_wire import finish_reason

# -- errors -----------------------------------------------------------------

# Statuses Cohere uses beyond the common ones.
_STATUS_CLASSES: dict[int, type[errors.DispatchError]] = {498: errors.AuthenticationError}
# Phrases in Cohere's error messages that name a precise error.
_MESSAGE_CLASSES: tuple[tuple[str, type[errors.DispatchError]], ...] = (
    ("too many tokens", errors.ContextWindowExceededError),
    ("context length", errors.ContextWindowExceededError),
    ("context window", errors.ContextWindowExceededError),
)


def error_from(request: Request, response: httpx.Response) -> errors.DispatchError:
    """Cohere's ``{"id", "message"}`` body (or any other) as a unified error."""
    message = error_message(response, "message")
    lowered = message.lower()
    named = _STATUS_CLASSES.get(response.status_code) or next(
        (cls for phrase, cls in _MESSAGE_CLASSES if phrase in lowered), None
    )
    return status_error(request, response, message, cls=named)


# -- reading replies ----------------------------------------------------------


def _count(data: dict[str, Any], key: str) -> int | None:
    """Cohere types its counts as numbers: ``12`` or ``12.0``."""
    value = data.get(key)
    if value is None:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise TypeError(f"{key} should be a whole number")
    return int(value)


def usage_from(data: dict[str, Any] | None) -> Usage | None:
    """``tokens`` (what the model saw), else ``billed_units``."""
    if data is None:
        return None
    tokens = opt_dict(data, "tokens") or {}
    billed = opt_dict(data, "billed_units") or {}
    prompt = _count(tokens, "input_tokens")
    completion = _count(tokens, "output_tokens")
    prompt = _count(billed, "input_tokens") if prompt is None else prompt
    completion = _count(billed, "output_tokens") if completion is None else completion
    return Usage(
        prompt_tokens=prompt or 0,
        completion_tokens=completion or 0,
        total_tokens=(prompt or 0) + (completion or 0),
        cached_tokens=_count(data, "cached_tokens"),
    )


def _joined(*texts: str | None) -> str | None:
    return "\n\n".join(t for t in texts if t) or None


def _message_content(content: Any) -> tuple[str | None, str | None]:
    """``message.content``: text parts, and the thinking parts of reasoning models."""
    if content is None or isinstance(content, str):
        return content, None
    text: list[str] = []
    thinking: list[str] = []
    for part in map(as_dict, as_list(content, "content")):
        kind = part.get("type")
        if kind == "text":
            text.append(req_str(part, "text"))
        elif kind == "thinking":
            thinking.append(req_str(part, "thinking"))
    return "".join(text) if text else None, "".join(thinking) if thinking else None


def tool_call(data: Any) -> ToolCall:
    data = as_dict(data, "tool call")
    function = as_dict(data["function"], "function")
    raw = function.get("arguments")
    return ToolCall(
        id=opt_str(data, "id") or "",
        function=Function(
            name=req_str(function, "name"),
            arguments=raw if isinstance(raw, str) else json.dumps(as_dict(raw or {}, "arguments")),
        ),
    )


def parse_chat(request: Request, response: httpx.Response) -> ChatResponse:
    data = as_dict(read_json(request, response), "chat response")
    message = as_dict(data["message"], "message")
    text, thinking = _message_content(message.get("content"))
    calls = [tool_call(raw) for raw in opt_list(message, "tool_calls")]
    return ChatResponse(
        id=opt_str(data, "id") or "",
        model=request.model,
        choices=[
            Choice(
                message=Message(
                    content=text,
                    tool_calls=calls or None,
                    reasoning_content=_joined(thinking, opt_str(message, "tool_plan")),
                ),
                finish_reason=finish_reason(data.get("finish_reason")) or "stop",
            )
        ],
        usage=usage_from(opt_dict(data, "usage")),
    )


def parse_embedding(request: Request, response: httpx.Response) -> EmbeddingResponse:
    data = as_dict(read_json(request, response), "embedding response")
    embeddings = data["embeddings"]
    if isinstance(embeddings, dict):  # by type, as asked with embedding_types
        embeddings = embeddings["float"]
    meta = opt_dict(data, "meta") or {}
    counts = opt_dict(meta, "tokens") or opt_dict(meta, "billed_units") or {}
    prompt = _count(counts, "input_tokens") or 0
    return EmbeddingResponse(
        model=request.model,
        data=[
            Embedding(index=i, embedding=floats(v))
            for i, v in enumerate(as_list(embeddings, "embeddings"))
        ],
        usage=Usage(prompt_tokens=prompt, total_tokens=prompt),
    )
