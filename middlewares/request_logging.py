"""One structured log event per request, through structlog.

>>> from middlewares.request_logging import Logging
>>> layer = Logging()              # message contents are never logged unless asked
>>> layer = Logging(log_content=True)

Each request logs one event, ``llm.request``, on the ``"dispatchline"``
logger when it ends; for a stream, when the stream ends, fails or is closed.
Its fields:

- ``request_id``: ours, 32 fresh random hex characters per request (like a
  uuid4 hex). It is also bound with ``structlog.contextvars`` while the rest
  of the chain runs, so log lines of inner middlewares carry it (with
  ``merge_contextvars`` configured);
- ``endpoint``, ``provider``, ``model`` (as requested), ``stream``;
- ``outcome``: ``"ok"``, ``"error"``, or ``"cancelled"`` (the call was
  cancelled, or the caller closed its stream before the end);
- ``latency_ms``; for streams also ``first_chunk_ms`` and ``chunks``;
- ``error``, ``error_message`` (scrubbed of keys), ``status_code``;
- ``prompt_tokens``, ``completion_tokens``, ``total_tokens`` (when the
  provider reported usage; streams report it in their last chunk);
- ``cache_hit``, ``attempts`` (how many tries Retry and Fallback made; 1 when
  neither recorded any), ``provider_request_id``, ``served_by``
  (``provider/model`` of the reply);
- with ``log_content=True`` only: ``messages``, ``input`` (bytes shown as
  their length) and ``output`` (the reply's text).

Levels: ``info`` for ok and cancelled, ``error`` for errors. API keys are
never logged: no field holds the key, the params (which may carry headers)
are not logged, and error messages are scrubbed.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from middlewares._log import logger
from pipeline import (
    ChatChunk,
    ChatResponse,
    Handler,
    Request,
    Result,
    Stream,
    StreamAccumulator,
    TranscriptionResponse,
    Usage,
    observe,
    scrub,
)

__all__ = ["Logging"]

EVENT = "llm.request"

# Request ids correlate log lines: unique, not secret. A generator of our own
# (seeded from os.urandom, reseeded in a forked child): no syscall per request,
# and an application's random.seed() never makes two processes repeat ids.
_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.seed)
_bits = _random.getrandbits

_LEVELS = {"ok": "info", "cancelled": "info", "error": "error"}


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _tokens(usage: Usage | None) -> dict[str, int | None]:
    if usage is None:
        return {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _shown_input(value: Any) -> Any:
    """An input safe to log: audio bytes become their size."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, tuple):
        return tuple(_shown_input(part) for part in value)
    return value


def _chat_text(response: ChatResponse) -> Any:
    return [choice.message.content for choice in response.choices]


def _transcription_text(response: TranscriptionResponse) -> Any:
    return response.text


# The text a reply carries, by type; other replies (vectors, images, audio) log none.
_OUTPUT: dict[type, Callable[[Any], Any]] = {
    ChatResponse: _chat_text,
    TranscriptionResponse: _transcription_text,
}


def _outcome(exc: BaseException) -> str:
    return "error" if isinstance(exc, Exception) else "cancelled"


def _failure(exc: BaseException, request: Request) -> dict[str, Any]:
    """What an exception tells; fields it does not know are left out."""
    status = getattr(exc, "status_code", None)
    if status is None and isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
    fields: dict[str, Any] = {
        "outcome": _outcome(exc),
        "error": type(exc).__name__,
        "error_message": scrub(str(exc), request.secrets()),
        "status_code": status,
    }
    attempts = getattr(exc, "attempts", None)
    if attempts:
        fields["attempts"] = len(attempts)
    request_id = getattr(exc, "request_id", None)
    if request_id is not None:
        fields["provider_request_id"] = request_id
    return fields


def _provenance(result: Any) -> dict[str, Any]:
    """Where a response or stream came from."""
    return {
        "cache_hit": result.cache_hit,
        "attempts": len(result.attempts) or 1,
        "provider_request_id": result.request_id,
        "served_by": f"{result.provider}/{result.model}",
    }


class Logging:
    """The logging middleware; see the module docstring for the event's fields.

    Place it outermost, so its latency covers the whole chain and its
    ``request_id`` is bound for every inner middleware.
    """

    __slots__ = ("_bind", "_log", "_log_content", "_unbind")

    def __init__(self, *, log_content: bool = False) -> None:
        if not isinstance(log_content, bool):
            raise TypeError(f"log_content must be a bool, got {log_content!r}")
        self._log_content = log_content
        from structlog.contextvars import bind_contextvars, reset_contextvars

        self._log = logger()
        self._bind = bind_contextvars
        self._unbind = reset_contextvars

    def __repr__(self) -> str:
        return f"Logging(log_content={self._log_content})"

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        request_id = f"{_bits(128):032x}"  # 128 random bits, like a uuid4, without a syscall
        start = time.perf_counter()
        bound = self._bind(request_id=request_id)
        try:
            result = await call_next(request)
        except BaseException as exc:
            self._unbind(**bound)
            self._emit(request, request_id, start, _failure(exc, request))
            raise
        self._unbind(**bound)
        if isinstance(result, Stream):
            watch = _StreamWatch(self, request, request_id, start, result)
            return observe(
                result,
                on_chunk=watch.on_chunk,
                on_end=watch.on_end,
                on_error=watch.on_error,
            )
        if self._log_content:
            output = _OUTPUT.get(type(result))
            fields = {
                "outcome": "ok",
                **_tokens(getattr(result, "usage", None)),
                **_provenance(result),
                "output": output(result) if output is not None else None,
            }
            self._emit(request, request_id, start, fields)
            return result
        # The common case, written out: the same event as _emit's, in one dict.
        usage = getattr(result, "usage", None)
        self._log.info(
            EVENT,
            request_id=request_id,
            endpoint=request.endpoint,
            provider=request.provider,
            model=request.model,
            stream=request.stream,
            latency_ms=_ms(time.perf_counter() - start),
            error=None,
            status_code=None,
            cache_hit=result.cache_hit,
            attempts=len(result.attempts) or 1,
            provider_request_id=result.request_id,
            outcome="ok",
            prompt_tokens=None if usage is None else usage.prompt_tokens,
            completion_tokens=None if usage is None else usage.completion_tokens,
            total_tokens=None if usage is None else usage.total_tokens,
            served_by=f"{result.provider}/{result.model}",
        )
        return result

    def _emit(
        self, request: Request, request_id: str, start: float, fields: dict[str, Any]
    ) -> None:
        event: dict[str, Any] = {
            "request_id": request_id,
            "endpoint": request.endpoint,
            "provider": request.provider,
            "model": request.model,
            "stream": request.stream,
            "latency_ms": _ms(time.perf_counter() - start),
            "error": None,
            "status_code": None,
            "cache_hit": False,
            "attempts": 1,
            "provider_request_id": None,
            **fields,
        }
        if self._log_content:
            event["messages"] = [dict(message) for message in request.messages]
            event["input"] = _shown_input(request.input)
        getattr(self._log, _LEVELS[event["outcome"]])(EVENT, **event)

    @property
    def log_content(self) -> bool:
        return self._log_content


class _StreamWatch:
    """One logged stream: folds its chunks (usage; text only if contents are logged)."""

    __slots__ = (
        "_chunks",
        "_first_chunk",
        "_layer",
        "_parts",
        "_request",
        "_request_id",
        "_start",
        "_stream",
        "_usage",
    )

    def __init__(
        self, layer: Logging, request: Request, request_id: str, start: float, stream: Stream[Any]
    ) -> None:
        self._layer = layer
        self._request = request
        self._request_id = request_id
        self._start = start
        self._stream = stream
        self._first_chunk = time.perf_counter() - start
        self._chunks = 0
        self._parts = StreamAccumulator() if layer.log_content else None
        self._usage: Usage | None = None

    def on_chunk(self, chunk: ChatChunk) -> None:
        self._chunks += 1
        if chunk.usage is not None:
            self._usage = chunk.usage
        if self._parts is not None:
            self._parts.add(chunk)

    def on_end(self, completed: bool) -> None:
        fields: dict[str, Any] = {"outcome": "ok" if completed else "cancelled"}
        if self._parts is not None:
            fields["output"] = _chat_text(self._parts.response())
        self._finish(fields)

    def on_error(self, exc: BaseException) -> None:
        self._finish(_failure(exc, self._request))

    def _finish(self, fields: dict[str, Any]) -> None:
        fields = {
            **_tokens(self._usage),
            **_provenance(self._stream),
            "first_chunk_ms": _ms(self._first_chunk),
            "chunks": self._chunks,
            **fields,
        }
        self._layer._emit(self._request, self._request_id, self._start, fields)
