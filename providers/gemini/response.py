"""Gemini replies (``GenerateContentResponse``, embeddings) in OpenAI's shapes."""

from __future__ import annotations

import json
from typing import Any

import attrs

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
    errors,
    floats,
    opt_dict,
    opt_int,
    opt_list,
    opt_str,
)
from providers.gemini.ids import tool_call_id

_FINISH: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def finish_reason(value: Any, called_functions: bool) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("finishReason should be a string")
    reason = _FINISH.get(value.upper(), "stop")
    return "tool_calls" if reason == "stop" and called_functions else reason


def usage_from(data: dict[str, Any] | None) -> Usage | None:
    """``usageMetadata`` as Usage; thought tokens count as completion tokens."""
    if data is None:
        return None
    prompt = opt_int(data, "promptTokenCount") or 0
    thoughts = opt_int(data, "thoughtsTokenCount")
    completion = (opt_int(data, "candidatesTokenCount") or 0) + (thoughts or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=opt_int(data, "totalTokenCount") or prompt + completion,
        reasoning_tokens=thoughts,
        cached_tokens=opt_int(data, "cachedContentTokenCount"),
    )


def raise_if_blocked(request: Request, data: dict[str, Any]) -> None:
    feedback = opt_dict(data, "promptFeedback")
    reason = opt_str(feedback, "blockReason") if feedback is not None else None
    if reason and not opt_list(data, "candidates"):
        raise errors.ContentPolicyViolationError(
            f"Gemini blocked the prompt ({reason})",
            provider=request.provider,
            model=request.model,
            code=reason,
        )


@attrs.define
class Candidate:
    index: int
    text: str | None
    reasoning: str | None
    calls: list[ToolCall]
    finish: Any


def candidate_index(raw: dict[str, Any], position: int) -> int:
    index = opt_int(raw, "index")
    return position if index is None else index


def read_candidate(raw: Any, position: int, response_id: str, first_call: int) -> Candidate:
    raw = as_dict(raw, "candidate")
    index = candidate_index(raw, position)
    content = opt_dict(raw, "content") or {}
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for part in opt_list(content, "parts"):
        part = as_dict(part, "part")
        call = opt_dict(part, "functionCall")
        if call is not None:
            name = opt_str(call, "name") or ""
            args = as_dict(call.get("args") or {}, "args")
            position_ = first_call + len(calls)
            call_id = tool_call_id(
                response_id, index, position_, name, args, opt_str(part, "thoughtSignature")
            )
            calls.append(
                ToolCall(id=call_id, function=Function(name=name, arguments=json.dumps(args)))
            )
            continue
        piece = opt_str(part, "text")
        if piece is not None:
            (thoughts if part.get("thought") is True else text).append(piece)
    return Candidate(
        index=index,
        text="".join(text) if text else None,
        reasoning="".join(thoughts) if thoughts else None,
        calls=calls,
        finish=raw.get("finishReason"),
    )


def chat_response(request: Request, data: Any) -> ChatResponse:
    data = as_dict(data, "response")
    raise_if_blocked(request, data)
    response_id = opt_str(data, "responseId") or ""
    choices = []
    for position, raw in enumerate(opt_list(data, "candidates")):
        candidate = read_candidate(raw, position, response_id, 0)
        choices.append(
            Choice(
                index=candidate.index,
                message=Message(
                    content=candidate.text,
                    reasoning_content=candidate.reasoning,
                    tool_calls=candidate.calls or None,
                ),
                finish_reason=finish_reason(candidate.finish, bool(candidate.calls)) or "stop",
            )
        )
    return ChatResponse(
        id=response_id,
        model=opt_str(data, "modelVersion") or request.model,
        choices=choices,
        usage=usage_from(opt_dict(data, "usageMetadata")),
    )


def embedding_response(request: Request, data: Any) -> EmbeddingResponse:
    data = as_dict(data, "embedding response")
    if isinstance(request.input, str):
        vectors = [as_dict(data["embedding"], "embedding")]
    else:
        vectors = [as_dict(item, "embedding") for item in as_list(data["embeddings"])]
    usage = opt_dict(data, "usageMetadata")
    prompt = opt_int(usage, "promptTokenCount") if usage is not None else None
    return EmbeddingResponse(
        model=request.model,
        data=[
            Embedding(index=i, embedding=floats(item["values"])) for i, item in enumerate(vectors)
        ],
        usage=Usage(prompt_tokens=prompt, total_tokens=prompt) if prompt is not None else None,
    )
