"""Responses shaped like OpenAI's JSON, from every provider.

Each class mirrors the OpenAI object of the same role; ``to_dict()`` gives
JSON that the official ``openai`` SDK's types accept. Beside OpenAI's fields
every response carries where it came from: ``provider``, ``model``,
``latency`` (seconds, end to end through the pipeline), ``cache_hit``,
``attempts`` (the path retries and fallbacks took), the provider's
``request_id`` and ``cost`` (USD, set by the ``Costs`` middleware; None when
unpriced).

Reasoning ("thinking") text, from any provider that returns it, is in
``message.reasoning_content`` (and ``delta.reasoning_content`` in streams).
"""

from __future__ import annotations

from typing import Any

import attrs


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


@attrs.frozen
class Attempt:
    """One try at one provider: what Retry, Fallback and Router record."""

    provider: str
    model: str
    error: str | None = None  # the error's class name, or None for the success
    deployment: str | None = None  # the router's deployment name, when one was chosen


@attrs.define(kw_only=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    # Prompt tokens written to the provider's prompt cache (Anthropic's
    # cache_creation_input_tokens): priced apart, not part of OpenAI's JSON.
    cache_write_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens is not None:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        if self.cached_tokens is not None:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out


@attrs.define(kw_only=True)
class Function:
    name: str
    arguments: str  # always a JSON string, as OpenAI sends it


@attrs.define(kw_only=True)
class ToolCall:
    id: str
    function: Function
    type: str = "function"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.function.name, "arguments": self.function.arguments},
        }


@attrs.define(kw_only=True)
class Message:
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.reasoning_content is not None:
            out["reasoning_content"] = self.reasoning_content
        if self.refusal is not None:
            out["refusal"] = self.refusal
        return out


@attrs.define(kw_only=True)
class Choice:
    index: int = 0
    message: Message
    finish_reason: str | None = "stop"
    logprobs: dict[str, Any] | None = None  # OpenAI's choice logprobs, as the provider sent them

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "message": self.message.to_dict(),
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
        }


@attrs.define(kw_only=True)
class Response:
    """What every response carries beside the provider's own fields."""

    provider: str = ""
    model: str = ""
    latency: float = 0.0
    cache_hit: bool = False
    attempts: tuple[Attempt, ...] = ()
    request_id: str | None = None
    cost: float | None = None  # USD; set by middlewares.Costs, None when the price is unknown


@attrs.define(kw_only=True)
class ChatResponse(Response):
    id: str = ""
    created: int = 0
    choices: list[Choice] = attrs.Factory(list)
    usage: Usage | None = None
    system_fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [choice.to_dict() for choice in self.choices],
                "usage": self.usage.to_dict() if self.usage is not None else None,
                "system_fingerprint": self.system_fingerprint,
            }
        )


@attrs.define(kw_only=True)
class FunctionDelta:
    name: str | None = None
    arguments: str | None = None


@attrs.define(kw_only=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _drop_none({"index": self.index, "id": self.id, "type": self.type})
        if self.function is not None:
            out["function"] = _drop_none(
                {"name": self.function.name, "arguments": self.function.arguments}
            )
        return out


@attrs.define(kw_only=True)
class Delta:
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = _drop_none(
            {
                "role": self.role,
                "content": self.content,
                "reasoning_content": self.reasoning_content,
                "refusal": self.refusal,
            }
        )
        if self.tool_calls:
            out["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        return out


@attrs.define(kw_only=True)
class ChunkChoice:
    index: int = 0
    delta: Delta = attrs.Factory(Delta)
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "delta": self.delta.to_dict(),
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
        }


@attrs.define(kw_only=True)
class ChatChunk:
    """One streamed piece, shaped like OpenAI's ``chat.completion.chunk``."""

    id: str = ""
    created: int = 0
    model: str = ""
    provider: str = ""
    choices: list[ChunkChoice] = attrs.Factory(list)
    usage: Usage | None = None
    system_fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [choice.to_dict() for choice in self.choices],
                "usage": self.usage.to_dict() if self.usage is not None else None,
                "system_fingerprint": self.system_fingerprint,
            }
        )


@attrs.define(kw_only=True)
class Embedding:
    index: int
    embedding: list[float]


@attrs.define(kw_only=True)
class EmbeddingResponse(Response):
    data: list[Embedding] = attrs.Factory(list)
    usage: Usage | None = None

    def to_dict(self) -> dict[str, Any]:
        usage = self.usage or Usage()
        return {
            "object": "list",
            "model": self.model,
            "data": [
                {"object": "embedding", "index": item.index, "embedding": item.embedding}
                for item in self.data
            ],
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
        }


@attrs.define(kw_only=True)
class Image:
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


@attrs.define(kw_only=True)
class ImageResponse(Response):
    created: int = 0
    data: list[Image] = attrs.Factory(list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "data": [
                _drop_none(
                    {"url": i.url, "b64_json": i.b64_json, "revised_prompt": i.revised_prompt}
                )
                for i in self.data
            ],
        }


@attrs.define(kw_only=True)
class TranscriptionResponse(Response):
    text: str = ""
    language: str | None = None
    duration: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({"text": self.text, "language": self.language, "duration": self.duration})


@attrs.define(kw_only=True)
class SpeechResponse(Response):
    """Audio bytes; OpenAI returns speech as a binary body, not JSON."""

    content: bytes = b""
    content_type: str = "audio/mpeg"

    def to_dict(self) -> dict[str, Any]:
        return {"content_type": self.content_type, "bytes": len(self.content)}


AnyResponse = (
    ChatResponse | EmbeddingResponse | ImageResponse | TranscriptionResponse | SpeechResponse
)


class StreamAccumulator:
    """Folds chunks into the :class:`ChatResponse` they add up to.

    Callbacks, logging and tests use it to see a stream's whole result at its
    end without holding the chunks.
    """

    def __init__(self) -> None:
        self._id = ""
        self._created = 0
        self._model = ""
        self._provider = ""
        self._content: dict[int, list[str]] = {}
        self._reasoning: dict[int, list[str]] = {}
        self._finish: dict[int, str | None] = {}
        self._calls: dict[int, dict[int, ToolCall]] = {}
        self._logprobs: dict[int, dict[str, Any]] = {}
        self.usage: Usage | None = None
        self.chunks = 0

    def add(self, chunk: ChatChunk) -> None:
        self.chunks += 1
        self._id = self._id or chunk.id
        self._created = self._created or chunk.created
        self._model = self._model or chunk.model
        self._provider = self._provider or chunk.provider
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            i = choice.index
            self._finish.setdefault(i, None)
            delta = choice.delta
            if delta.content:
                self._content.setdefault(i, []).append(delta.content)
            if delta.reasoning_content:
                self._reasoning.setdefault(i, []).append(delta.reasoning_content)
            if choice.finish_reason is not None:
                self._finish[i] = choice.finish_reason
            if choice.logprobs is not None:
                _fold_logprobs(self._logprobs.setdefault(i, {}), choice.logprobs)
            for part in delta.tool_calls or ():
                calls = self._calls.setdefault(i, {})
                call = calls.get(part.index)
                if call is None:
                    call = calls[part.index] = ToolCall(
                        id=part.id or "", function=Function(name="", arguments="")
                    )
                if part.id:
                    call.id = part.id
                if part.function is not None:
                    if part.function.name:
                        call.function.name += part.function.name
                    if part.function.arguments:
                        call.function.arguments += part.function.arguments

    def response(self) -> ChatResponse:
        choices = []
        for i in sorted(self._finish):
            calls = self._calls.get(i)
            choices.append(
                Choice(
                    index=i,
                    message=Message(
                        content="".join(self._content[i]) if i in self._content else None,
                        reasoning_content=(
                            "".join(self._reasoning[i]) if i in self._reasoning else None
                        ),
                        tool_calls=[calls[k] for k in sorted(calls)] if calls else None,
                    ),
                    finish_reason=self._finish[i],
                    logprobs=self._logprobs.get(i),
                )
            )
        return ChatResponse(
            id=self._id,
            created=self._created,
            model=self._model,
            provider=self._provider,
            choices=choices,
            usage=self.usage,
        )


def _fold_logprobs(folded: dict[str, Any], part: dict[str, Any]) -> None:
    """Add a chunk's logprobs to its choice's: token lists grow (the chunk's stay as sent)."""
    for key, value in part.items():
        have = folded.get(key)
        if isinstance(have, list) and isinstance(value, list):
            have.extend(value)
        elif have is None:
            folded[key] = list(value) if isinstance(value, list) else value
