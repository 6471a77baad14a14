"""The OpenAI wire codec: chat completions, chunks, embeddings, images and error
bodies as OpenAI sends them, read generically so every compatible server's
variations (usage under ``x_groq``, usage without ``stream_options``,
reasoning as ``reasoning`` or ``reasoning_content``, content as a list of
parts) need no branch of their own. Used by ``mock``, ``azure`` and every row
of the compatible table."""

from __future__ import annotations

import base64
import json
import sys
from array import array
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
    FunctionDelta,
    Image,
    ImageResponse,
    Message,
    Request,
    SSEParser,
    ToolCall,
    ToolCallDelta,
    Usage,
    as_dict,
    as_list,
    error_body,
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
    stream_ended_early,
)

# Finish reasons outside OpenAI's set, as some compatible providers send them.
_FINISH: dict[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "function_call",
    "eos": "stop",
    "end_turn": "stop",
    "model_length": "length",
    "max_tokens": "length",
    "tool_call": "tool_calls",
    "error": "stop",
}

# error.code / error.type values that may narrow the class the status names
# (status_error keeps a code that names another family from overriding it).
_ERROR_CODES: dict[str, type[errors.DispatchError]] = {
    "context_length_exceeded": errors.ContextWindowExceededError,
    "string_above_max_length": errors.ContextWindowExceededError,
    "content_filter": errors.ContentPolicyViolationError,
    "content_policy_violation": errors.ContentPolicyViolationError,
    "ResponsibleAIPolicyViolation": errors.ContentPolicyViolationError,
    "invalid_api_key": errors.AuthenticationError,
    "insufficient_quota": errors.RateLimitError,
    "rate_limit_exceeded": errors.RateLimitError,
    "model_not_found": errors.NotFoundError,
    "server_error": errors.InternalServerError,
}
# Codes that no retry can fix even though their class is retryable.
_NOT_RETRYABLE = frozenset({"insufficient_quota"})


def item_index(data: dict[str, Any], position: int) -> int:
    """An item's ``index``, or its position when the server leaves it out (0 is an index)."""
    index = opt_int(data, "index")
    return position if index is None else index


def finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("finish_reason should be a string")
    return _FINISH.get(value.lower(), "stop")


def usage_from(data: dict[str, Any] | None) -> Usage | None:
    if data is None:
        return None
    prompt = opt_int(data, "prompt_tokens") or 0
    completion = opt_int(data, "completion_tokens") or 0
    details = opt_dict(data, "completion_tokens_details") or {}
    prompt_details = opt_dict(data, "prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=opt_int(data, "total_tokens") or prompt + completion,
        reasoning_tokens=opt_int(details, "reasoning_tokens"),
        cached_tokens=opt_int(prompt_details, "cached_tokens"),
    )


def _text_and_reasoning(content: Any) -> tuple[str | None, str | None]:
    """Content as a string, or as a list of parts (Mistral's thinking parts among them)."""
    if content is None or isinstance(content, str):
        return content, None
    text: list[str] = []
    thinking: list[str] = []
    for part in as_list(content, "content"):
        part = as_dict(part, "content part")
        kind = part.get("type")
        if kind == "text":
            text.append(req_str(part, "text"))
        elif kind == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            else:
                thinking.extend(req_str(as_dict(p), "text") for p in as_list(inner, "thinking"))
    return "".join(text) if text else None, "".join(thinking) if thinking else None


def _reasoning(data: dict[str, Any]) -> str | None:
    if "reasoning_content" not in data and "reasoning" not in data:
        return None  # the usual case, without two lookups
    return opt_str(data, "reasoning_content") or opt_str(data, "reasoning")


def _usage(data: dict[str, Any]) -> Usage | None:
    """A reply's or chunk's ``usage``, or Groq's under ``x_groq``."""
    usage = opt_dict(data, "usage")
    if not usage:  # absent or empty: Groq's, if any
        usage = opt_dict(opt_dict(data, "x_groq") or {}, "usage") if "x_groq" in data else None
    return usage_from(usage)


def _tool_call(data: Any) -> ToolCall:
    data = as_dict(data, "tool call")
    function = as_dict(data["function"], "function")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # some servers send an object
        arguments = json.dumps(as_dict(arguments or {}, "arguments"))
    return ToolCall(
        id=opt_str(data, "id") or "",
        type=opt_str(data, "type") or "function",
        function=Function(name=req_str(function, "name"), arguments=arguments),
    )


def chat_response(request: Request, data: Any) -> ChatResponse:
    data = as_dict(data, "chat completion")
    choices = []
    for i, raw in enumerate(as_list(data["choices"], "choices")):
        raw = as_dict(raw, "choice")
        message = as_dict(raw["message"], "message")
        content, thinking = _text_and_reasoning(message.get("content"))
        calls = [_tool_call(call) for call in opt_list(message, "tool_calls")]
        choices.append(
            Choice(
                index=item_index(raw, i),
                message=Message(
                    role=opt_str(message, "role") or "assistant",
                    content=content,
                    tool_calls=calls or None,
                    reasoning_content=_reasoning(message) or thinking,
                    refusal=opt_str(message, "refusal"),
                ),
                finish_reason=finish_reason(raw.get("finish_reason")) or "stop",
                logprobs=opt_dict(raw, "logprobs"),
            )
        )
    return ChatResponse(
        id=opt_str(data, "id") or "",
        created=opt_int(data, "created") or 0,
        model=opt_str(data, "model") or request.model,
        choices=choices,
        usage=_usage(data),
        system_fingerprint=opt_str(data, "system_fingerprint"),
    )


def _tool_call_delta(data: Any) -> ToolCallDelta:
    data = as_dict(data, "tool call delta")
    function = opt_dict(data, "function")
    arguments = function.get("arguments") if function else None
    if arguments is not None and not isinstance(arguments, str):
        arguments = json.dumps(as_dict(arguments, "arguments"))
    return ToolCallDelta(
        index=opt_int(data, "index") or 0,
        id=opt_str(data, "id"),
        type=opt_str(data, "type"),
        function=(
            FunctionDelta(name=opt_str(function, "name"), arguments=arguments)
            if function is not None
            else None
        ),
    )


def chat_chunk(request: Request, data: Any) -> ChatChunk | None:
    """One streamed chunk, or None for an event that carries nothing (Azure's filter-only one)."""
    data = as_dict(data, "chunk")
    choices = []
    for i, raw in enumerate(opt_list(data, "choices")):
        raw = as_dict(raw, "choice")
        delta = opt_dict(raw, "delta") or {}
        content, thinking = _text_and_reasoning(delta.get("content"))
        calls = [_tool_call_delta(call) for call in opt_list(delta, "tool_calls")]
        choices.append(
            ChunkChoice(
                index=item_index(raw, i),
                delta=Delta(
                    role=opt_str(delta, "role"),
                    content=content,
                    tool_calls=calls or None,
                    reasoning_content=_reasoning(delta) or thinking,
                    refusal=opt_str(delta, "refusal"),
                ),
                finish_reason=finish_reason(raw.get("finish_reason")),
                logprobs=opt_dict(raw, "logprobs"),
            )
        )
    usage = _usage(data)
    if not choices and usage is None:
        return None
    return ChatChunk(
        id=opt_str(data, "id") or "",
        created=opt_int(data, "created") or 0,
        model=opt_str(data, "model") or request.model,
        provider=request.provider,
        choices=choices,
        usage=usage,
        system_fingerprint=opt_str(data, "system_fingerprint"),
    )


def _error_names(inner: dict[str, Any], code: str | None) -> list[str]:
    """What an error calls itself: its ``code``, ``type`` and (Azure) ``innererror.code``."""
    nested = inner.get("innererror")
    candidates = (code, inner.get("type"), nested.get("code") if isinstance(nested, dict) else None)
    return [name for name in candidates if isinstance(name, str)]


def error_from_body(request: Request, response: httpx.Response, body: Any) -> errors.DispatchError:
    """OpenAI's ``{"error": {"message", "type", "param", "code"}}``, or the
    looser shapes compatible servers send (``{"error": "..."}``, ``{"message": ...}``)."""
    message = ""
    code: str | None = None
    names: list[str] = []
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = str(inner.get("message") or "")
            raw_code = inner.get("code")
            code = str(raw_code) if raw_code is not None else None
            names = _error_names(inner, code)
        elif isinstance(inner, str):
            message = inner
    elif isinstance(body, str):
        message = body[:500]
    cls = next((_ERROR_CODES[name] for name in names if name in _ERROR_CODES), None)
    if cls is None and "maximum context length" in message:
        cls = errors.ContextWindowExceededError
    error = status_error(request, response, message, cls=cls, code=code)
    if _NOT_RETRYABLE.intersection(names):
        error.retryable = False
    return error


def _decode_base64_floats(value: str) -> list[float]:
    values = array("f")
    values.frombytes(base64.b64decode(value))
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        values.byteswap()
    return values.tolist()


class OpenAIStreamDecoder(FramedDecoder):
    """SSE ``data:`` events of chat-completion chunks, ending in ``[DONE]``.

    The stream is complete only with ``[DONE]`` and a finish reason for every
    choice that started; a body that ends otherwise was cut."""

    marker = "data: [DONE]"

    __slots__ = ("_finished", "_started")

    def __init__(self, request: Request) -> None:
        super().__init__(request, SSEParser())
        self._started: set[int] = set()
        self._finished: set[int] = set()

    def decode(self, frame: Any) -> ChatChunk | None:
        if frame.data == "[DONE]":
            self.ended = True
            return None
        data = json.loads(frame.data)
        if isinstance(data, dict) and "error" in data:
            raise _stream_error(self.request, data)
        chunk = chat_chunk(self.request, data)
        for choice in chunk.choices if chunk is not None else ():
            self._started.add(choice.index)
            if choice.finish_reason is not None:
                self._finished.add(choice.index)
        return chunk

    def finish(self) -> list[ChatChunk]:
        unfinished = sorted(self._started - self._finished)
        if unfinished:
            raise stream_ended_early(
                self.request, f"a finish_reason for choice {', '.join(map(str, unfinished))}"
            )
        return []


def _stream_error(request: Request, data: dict[str, Any]) -> errors.DispatchError:
    inner = data["error"]
    message = str(inner.get("message", inner) if isinstance(inner, dict) else inner)
    code = inner.get("code") if isinstance(inner, dict) else None
    cls = _ERROR_CODES.get(str(code or ""), errors.InternalServerError)
    return event_error(request, cls, message, code=str(code) if code is not None else None)


def embedding_response(request: Request, response: httpx.Response) -> EmbeddingResponse:
    data = as_dict(read_json(request, response))
    items = []
    for i, raw in enumerate(as_list(data["data"], "data")):
        raw = as_dict(raw)
        vector = raw["embedding"]
        items.append(
            Embedding(
                index=item_index(raw, i),
                embedding=(
                    _decode_base64_floats(vector) if isinstance(vector, str) else floats(vector)
                ),
            )
        )
    return EmbeddingResponse(
        model=opt_str(data, "model") or request.model,
        data=items,
        usage=usage_from(opt_dict(data, "usage")),
    )


def image_response(request: Request, response: httpx.Response) -> ImageResponse:
    data = as_dict(read_json(request, response))
    images = [
        Image(
            url=opt_str(item, "url"),
            b64_json=opt_str(item, "b64_json"),
            revised_prompt=opt_str(item, "revised_prompt"),
        )
        for item in map(as_dict, as_list(data["data"], "data"))
    ]
    return ImageResponse(model=request.model, created=opt_int(data, "created") or 0, data=images)


def error_from(request: Request, response: httpx.Response) -> errors.DispatchError:
    body = error_body(response)
    return error_from_body(request, response, response.text if body is None else body)
