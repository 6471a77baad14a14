"""The part every stream decoder shares: framing, the parse guard, the end marker.

A provider's stream is a sequence of frames (SSE events, NDJSON lines, the
objects of a streamed JSON array) that ends with the provider's own end
marker: OpenAI's ``data: [DONE]``, Anthropic's ``message_stop``, Ollama's
``done: true``, Cohere's ``message-end``, Gemini's ``finishReason``. A body
that ends without it was cut, and a cut stream is never a complete reply:
:meth:`FramedDecoder.close` raises :class:`~pipeline.errors.ProviderResponseError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from pipeline import errors
from pipeline._adapter_helpers import parsing, stream_ended_early
from pipeline._request import Request
from pipeline._responses import (
    ChatChunk,
    ChunkChoice,
    Delta,
    FunctionDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)


def call_deltas(calls: Sequence[ToolCall], first: int = 0) -> list[ToolCallDelta]:
    """Whole tool calls as stream deltas (id, name and all arguments in one),
    numbered from ``first``: for providers that stream each call whole."""
    return [
        ToolCallDelta(
            index=first + k,
            id=call.id,
            type="function",
            function=FunctionDelta(name=call.function.name, arguments=call.function.arguments),
        )
        for k, call in enumerate(calls)
    ]


class Framer(Protocol):
    """Bytes in (any split), whole frames out: ``SSEParser``, ``NDJSONParser``,
    ``JSONArraySplitter``."""

    def feed(self, data: bytes) -> list[Any]: ...

    def close(self) -> list[Any]: ...


class FramedDecoder:
    """A :class:`~pipeline.adapter.StreamDecoder` over a framer.

    A subclass names its ``marker`` (for the error message), turns one frame
    into a chunk or None in :meth:`decode`, and sets ``self.ended`` when the
    frame it reads is the end marker; frames after it are ignored. (A provider
    whose end is a state rather than a frame overrides :meth:`complete`.)
    :meth:`finish` may add chunks once the end was seen (a last usage chunk).

    An error event met after other chunks of the same piece is raised by the
    next call, so the chunks before it reach the caller first.
    """

    marker: ClassVar[str] = "its end marker"

    __slots__ = ("_framer", "_pending", "ended", "id", "model", "request")

    def __init__(self, request: Request, framer: Framer) -> None:
        self.request = request
        self.ended = False
        self.id = ""  # the reply's id and model, once the stream has said them
        self.model = request.model
        self._framer = framer
        self._pending: errors.DispatchError | None = None

    def single(
        self, delta: Delta, finish: str | None = None, usage: Usage | None = None
    ) -> ChatChunk:
        """A chunk of one choice (index 0), with the stream's id and model."""
        return ChatChunk(
            id=self.id,
            model=self.model,
            provider=self.request.provider,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
            usage=usage,
        )

    def decode(self, frame: Any) -> ChatChunk | None:
        raise NotImplementedError

    def complete(self) -> bool:
        """Whether the stream so far is a whole reply (its end marker was seen)."""
        return self.ended

    def finish(self) -> list[ChatChunk]:
        """Chunks to add after the end marker (none by default)."""
        return []

    def feed(self, data: bytes) -> list[ChatChunk]:
        self._raise_pending()
        with parsing(self.request, "stream"):
            frames = self._framer.feed(data)
        return self._chunks(frames)

    def close(self) -> list[ChatChunk]:
        """The body ended: the last frames, then the end-marker check."""
        self._raise_pending()
        with parsing(self.request, "stream"):
            frames = self._framer.close()
        out = self._chunks(frames)
        self._raise_pending()  # nothing is called after close: raise it now
        if not self.complete():
            raise stream_ended_early(self.request, self.marker)
        with parsing(self.request, "stream"):
            out.extend(self.finish())
        return out

    def _raise_pending(self) -> None:
        if self._pending is not None:
            raise self._pending

    def _chunks(self, frames: list[Any]) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        for frame in frames:
            if self.ended:
                break
            try:
                with parsing(self.request, "stream event"):
                    chunk = self.decode(frame)
            except errors.DispatchError as exc:
                if not out:
                    raise
                self._pending = exc
                break
            if chunk is not None:
                out.append(chunk)
        return out
