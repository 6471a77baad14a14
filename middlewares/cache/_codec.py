"""Cache entries as bytes for a shared backend: JSON, never pickle.

An entry is the response's own ``to_dict()`` (OpenAI's JSON) plus what a hit
needs that OpenAI's JSON leaves out: where the answer came from (``provider``,
``model``, ``attempts``, ``request_id``), its ``latency``, Anthropic's
prompt-cache writes, a speech reply's audio (base64). A stream is its chunks,
each as its ``to_dict()``. Only the library's own response types are stored;
decoding anything else (another format, a damaged entry) raises ``ValueError``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from middlewares.cache._memory import CachedStream
from pipeline import (
    Attempt,
    ChatChunk,
    ChatResponse,
    EmbeddingResponse,
    ImageResponse,
    Response,
    SpeechResponse,
    TranscriptionResponse,
    Usage,
)
from pipeline.adapter import (
    Choice,
    ChunkChoice,
    Delta,
    Embedding,
    Function,
    FunctionDelta,
    Image,
    Message,
    ToolCall,
    ToolCallDelta,
)

__all__ = ["FORMAT", "decode", "encode"]

FORMAT = 1  # bump when the layout changes: older entries then read as misses

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


# -- encoding ------------------------------------------------------------------------


def _origin(value: Response | CachedStream) -> dict[str, Any]:
    return {
        "provider": value.provider,
        "model": value.model,
        "request_id": value.request_id,
        "attempts": [[a.provider, a.model, a.error, a.deployment] for a in value.attempts],
    }


def _chunk(chunk: ChatChunk) -> dict[str, Any]:
    out: dict[str, Any] = {"body": chunk.to_dict(), "provider": chunk.provider}
    if chunk.usage is not None and chunk.usage.cache_write_tokens is not None:
        out["cache_write_tokens"] = chunk.usage.cache_write_tokens
    return out


def _extras(value: Response) -> dict[str, Any]:
    usage = getattr(value, "usage", None)
    out: dict[str, Any] = {}
    if isinstance(value, EmbeddingResponse) and usage is None:
        out["no_usage"] = True  # to_dict() shows zeros
    if usage is not None and usage.cache_write_tokens is not None:
        out["cache_write_tokens"] = usage.cache_write_tokens
    if isinstance(value, SpeechResponse):
        out["audio"] = base64.b64encode(value.content).decode("ascii")
    return out


_KINDS: dict[type, str] = {
    ChatResponse: "chat",
    EmbeddingResponse: "embedding",
    ImageResponse: "image",
    TranscriptionResponse: "transcription",
    SpeechResponse: "speech",
}


def encode(value: Any) -> bytes:
    """``value`` (a response of the library's own types, or a :class:`CachedStream`)
    as JSON bytes; ``TypeError`` for anything else."""
    if isinstance(value, CachedStream):
        doc = {"format": FORMAT, "kind": "stream", **_origin(value)}
        doc["chunks"] = [_chunk(chunk) for chunk in value.chunks]
    else:
        kind = _KINDS.get(type(value))
        if kind is None:
            raise TypeError(f"a {type(value).__name__} cannot be stored in a shared cache")
        doc = {"format": FORMAT, "kind": kind, **_origin(value), "latency": value.latency}
        doc["body"] = value.to_dict()
        doc.update(_extras(value))
    return _dumps(doc).encode()


# -- decoding ------------------------------------------------------------------------


def _usage(data: Any, cache_write: Any = None) -> Usage | None:
    if data is None:
        return None
    completion = data.get("completion_tokens_details") or {}
    prompt = data.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=data["prompt_tokens"],
        completion_tokens=data.get("completion_tokens", 0),
        total_tokens=data["total_tokens"],
        reasoning_tokens=completion.get("reasoning_tokens"),
        cached_tokens=prompt.get("cached_tokens"),
        cache_write_tokens=cache_write,
    )


def _message(data: Any) -> Message:
    calls = data.get("tool_calls")
    return Message(
        role=data["role"],
        content=data["content"],
        tool_calls=None
        if calls is None
        else [
            ToolCall(
                id=call["id"],
                type=call["type"],
                function=Function(
                    name=call["function"]["name"], arguments=call["function"]["arguments"]
                ),
            )
            for call in calls
        ],
        reasoning_content=data.get("reasoning_content"),
        refusal=data.get("refusal"),
    )


def _chat(body: Any, doc: Any) -> ChatResponse:
    return ChatResponse(
        id=body["id"],
        created=body["created"],
        choices=[
            Choice(
                index=c["index"],
                message=_message(c["message"]),
                finish_reason=c["finish_reason"],
                logprobs=c.get("logprobs"),
            )
            for c in body["choices"]
        ],
        usage=_usage(body.get("usage"), doc.get("cache_write_tokens")),
        system_fingerprint=body.get("system_fingerprint"),
    )


def _delta(data: Any) -> Delta:
    calls = data.get("tool_calls")
    return Delta(
        role=data.get("role"),
        content=data.get("content"),
        tool_calls=None
        if calls is None
        else [
            ToolCallDelta(
                index=call["index"],
                id=call.get("id"),
                type=call.get("type"),
                function=None
                if "function" not in call
                else FunctionDelta(
                    name=call["function"].get("name"),
                    arguments=call["function"].get("arguments"),
                ),
            )
            for call in calls
        ],
        reasoning_content=data.get("reasoning_content"),
        refusal=data.get("refusal"),
    )


def _chunk_from(data: Any) -> ChatChunk:
    body = data["body"]
    return ChatChunk(
        id=body["id"],
        created=body["created"],
        model=body["model"],
        provider=data["provider"],
        choices=[
            ChunkChoice(
                index=c["index"],
                delta=_delta(c["delta"]),
                finish_reason=c["finish_reason"],
                logprobs=c.get("logprobs"),
            )
            for c in body["choices"]
        ],
        usage=_usage(body.get("usage"), data.get("cache_write_tokens")),
        system_fingerprint=body.get("system_fingerprint"),
    )


def _embedding(body: Any, doc: Any) -> EmbeddingResponse:
    return EmbeddingResponse(
        data=[Embedding(index=e["index"], embedding=e["embedding"]) for e in body["data"]],
        usage=None if doc.get("no_usage") else _usage(body["usage"], doc.get("cache_write_tokens")),
    )


def _image(body: Any, doc: Any) -> ImageResponse:
    return ImageResponse(
        created=body["created"],
        data=[
            Image(
                url=i.get("url"), b64_json=i.get("b64_json"), revised_prompt=i.get("revised_prompt")
            )
            for i in body["data"]
        ],
    )


def _transcription(body: Any, doc: Any) -> TranscriptionResponse:
    return TranscriptionResponse(
        text=body["text"], language=body.get("language"), duration=body.get("duration")
    )


def _speech(body: Any, doc: Any) -> SpeechResponse:
    return SpeechResponse(
        content=base64.b64decode(doc["audio"], validate=True), content_type=body["content_type"]
    )


_DECODERS: dict[str, Callable[[Any, Any], Response]] = {
    "chat": _chat,
    "embedding": _embedding,
    "image": _image,
    "transcription": _transcription,
    "speech": _speech,
}


def _attempts(doc: Any) -> tuple[Attempt, ...]:
    return tuple(Attempt(p, m, e, d) for p, m, e, d in doc["attempts"])


def decode(data: bytes) -> Response | CachedStream:
    """The entry ``data`` holds; ``ValueError`` if it is not one this version wrote."""
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, not {FORMAT}")
        kind = doc["kind"]
        if kind == "stream":
            return CachedStream(
                tuple(_chunk_from(chunk) for chunk in doc["chunks"]),
                provider=doc["provider"],
                model=doc["model"],
                request_id=doc["request_id"],
                attempts=_attempts(doc),
            )
        value = _DECODERS[kind](doc["body"], doc)
        value.provider = doc["provider"]
        value.model = doc["model"]
        value.request_id = doc["request_id"]
        value.latency = doc["latency"]
        value.attempts = _attempts(doc)
        return value
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"unreadable cache entry: {type(exc).__name__}: {exc}") from None
