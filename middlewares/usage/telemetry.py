"""Telemetry: OpenTelemetry spans and metrics by the GenAI semantic conventions.

>>> from middlewares import Telemetry
>>> Telemetry()                                              # the global providers
>>> Telemetry(tracer_provider=provider, meter_provider=meters)

Needs ``opentelemetry-api`` (the ``[otel]`` extra); configure an SDK (or
not) as for any instrumented library. Without an SDK the API hands out
no-op tracers and instruments, and this layer skips all span work: it costs
about a microsecond per request (see benchmarks/RESULTS.md).

**One span per request**, of kind CLIENT, named ``"{operation} {model}"``
(``chat gpt-4o-mini``); current while the rest of the chain runs, so HTTP
client spans nest under it. A stream's span ends when the stream ends.
Attributes, by the conventions' names:

- at the start: ``gen_ai.operation.name`` (``chat``, ``embeddings``;
  ``image_generation``, ``transcription``, ``speech`` for the endpoints the
  conventions do not name), ``gen_ai.provider.name`` (the conventions'
  well-known value where there is one: ``gcp.gemini``, ``azure.ai.openai``,
  ``mistral_ai``, ``x_ai``; else the provider's name here),
  ``gen_ai.request.model`` (as the caller asked), and the numeric sampling
  parameters (``gen_ai.request.max_tokens``, ``.temperature``, ``.top_p``,
  ``.top_k``, ``.frequency_penalty``, ``.presence_penalty``, ``.seed``,
  ``.choice.count``) and ``gen_ai.request.stream``;
- at the end: ``gen_ai.provider.name`` again for the provider that answered
  last, ``gen_ai.response.model``, ``gen_ai.response.id``,
  ``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens`` /
  ``output_tokens`` (and ``gen_ai.usage.cache_read.input_tokens``,
  ``.cache_creation.input_tokens``, ``.reasoning.output_tokens`` when
  reported), ``gen_ai.response.time_to_first_chunk`` for streams, and
  ``error.type`` (the error's class name) with an ERROR status on failure;
- ours, under ``dispatchline.``: ``outcome`` (``ok``, ``error``,
  ``cancelled``: cancelled, or a stream closed before its end),
  ``cost_usd``, ``cache_hit``, ``deployment``, ``attempts``;
- an event ``dispatchline.attempt`` per try when Retry, Fallback or a Router
  made more than one (provider, model, deployment, ``error.type``).

**Metrics**: the histograms ``gen_ai.client.operation.duration`` (s, every
outcome), ``gen_ai.client.token.usage`` (``{token}``, with
``gen_ai.token.type`` ``input`` / ``output``) and, for streams,
``gen_ai.client.operation.time_to_first_chunk`` (s); attributes
``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.response.model`` and ``error.type``.

Never recorded: message contents, prompts, outputs, tool arguments, stop
sequences, keys or headers; no exception message is attached (an error's
class name only).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from middlewares.usage._extras import require
from middlewares.usage._routed import served_by
from pipeline import ChatChunk, ChatResponse, Handler, Request, Result, Stream, Usage, observe

__all__ = ["Telemetry"]

SCOPE = "dispatchline"

OPERATIONS: dict[str, str] = {
    "chat": "chat",
    "embedding": "embeddings",
    "image": "image_generation",
    "transcription": "transcription",
    "speech": "speech",
}

# Endpoints a call may stream: their spans say whether it did (gen_ai.request.stream).
STREAMING: frozenset[str] = frozenset({"chat"})

# Our provider names whose well-known gen_ai.provider.name differs.
PROVIDER_NAMES: dict[str, str] = {
    "gemini": "gcp.gemini",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}

# Request parameters recorded, by the attribute they go to (numbers and flags only).
_PARAMS: dict[str, str] = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
}

# Bucket boundaries the conventions advise for the two client histograms.
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                     40.96, 81.92]  # fmt: skip
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                  16777216, 67108864]  # fmt: skip


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


def _request_attributes(request: Request, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider_name(request.provider),
        "gen_ai.request.model": request.model,
    }
    for param, value in request.params.items():
        name = _PARAMS.get(param)
        if name is not None and isinstance(value, int | float) and not isinstance(value, bool):
            attributes[name] = value
    if request.endpoint in STREAMING:
        attributes["gen_ai.request.stream"] = request.stream
    return attributes


def _usage_attributes(usage: Usage) -> dict[str, int]:
    attributes = {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
    }
    if usage.cached_tokens is not None:
        attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
    if usage.cache_write_tokens is not None:
        attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens is not None:
        attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    return attributes


class _Reply:
    """What one request's reply told, however it arrived (a response, or a stream's chunks)."""

    __slots__ = ("finish_reasons", "first_chunk", "id", "model", "usage")

    def __init__(self) -> None:
        self.model = ""
        self.id = ""
        self.usage: Usage | None = None
        self.finish_reasons: dict[int, str] = {}
        self.first_chunk: float | None = None

    @classmethod
    def of(cls, result: Any, recording: bool) -> _Reply:
        reply = cls()
        reply.model = result.model
        reply.usage = getattr(result, "usage", None)
        if recording and isinstance(result, ChatResponse):  # details only a span shows
            reply.id = result.id
            for choice in result.choices:
                reply.finish_reasons[choice.index] = choice.finish_reason or "error"
        return reply

    def add(self, chunk: ChatChunk) -> None:
        self.model = self.model or chunk.model
        self.id = self.id or chunk.id
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                self.finish_reasons[choice.index] = choice.finish_reason


class Telemetry:
    """OpenTelemetry spans and metrics per request; see the module docstring.

    Raises :class:`MissingExtraError` when ``opentelemetry-api`` (the
    ``[otel]`` extra) is not installed.
    """

    __slots__ = ("_client", "_duration", "_first_chunk", "_tokens", "_trace", "_tracer")

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        trace = require("opentelemetry.trace", "otel", "Telemetry")
        metrics = require("opentelemetry.metrics", "otel", "Telemetry")
        from importlib.metadata import version

        release = version("dispatchline")
        self._trace = trace
        self._client = trace.SpanKind.CLIENT
        self._tracer = trace.get_tracer(SCOPE, release, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, release, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
        )

    def __repr__(self) -> str:
        return "Telemetry()"

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        operation = OPERATIONS[request.endpoint]
        start = time.perf_counter()
        span = self._tracer.start_span(f"{operation} {request.model}", kind=self._client)
        recording = span.is_recording()
        if recording:
            span.set_attributes(_request_attributes(request, operation))
        try:
            if span.get_span_context().is_valid:  # an SDK: make the span current
                with self._trace.use_span(
                    span, record_exception=False, set_status_on_exception=False
                ):
                    result = await call_next(request)
            else:
                result = await call_next(request)
        except BaseException as exc:
            self._end(span, request, operation, start, exc, None, exc)
            raise
        if isinstance(result, Stream):
            watch = _StreamSpan(self, span, request, operation, start, result)
            return observe(
                result, on_chunk=watch.on_chunk, on_end=watch.on_end, on_error=watch.on_error
            )
        self._end(span, request, operation, start, result, _Reply.of(result, recording), None)
        return result

    def _end(
        self,
        span: Any,
        request: Request,
        operation: str,
        start: float,
        source: Any,
        reply: _Reply | None,
        error: BaseException | None,
        outcome: str | None = None,
    ) -> None:
        """Record the metrics, finish the span's attributes and end it."""
        duration = time.perf_counter() - start
        provider, _, deployment = served_by(request, source)
        metric: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider_name(provider),
            "gen_ai.request.model": request.model,
        }
        if reply is not None and reply.model:
            metric["gen_ai.response.model"] = reply.model
        if error is not None:
            metric["error.type"] = type(error).__name__
            outcome = "error" if isinstance(error, Exception) else "cancelled"
        self._duration.record(duration, metric)
        usage = reply.usage if reply is not None else None
        if usage is not None:
            self._tokens.record(usage.prompt_tokens, {**metric, "gen_ai.token.type": "input"})
            if operation != "embeddings":
                self._tokens.record(
                    usage.completion_tokens, {**metric, "gen_ai.token.type": "output"}
                )
        if reply is not None and reply.first_chunk is not None:
            self._first_chunk.record(reply.first_chunk, metric)
        if not span.is_recording():
            span.end()
            return
        attributes: dict[str, Any] = {
            **metric,
            "dispatchline.outcome": outcome or "ok",
            "dispatchline.cache_hit": bool(getattr(source, "cache_hit", False)),
        }
        if deployment is not None:
            attributes["dispatchline.deployment"] = deployment
        cost = getattr(source, "cost", None)
        if cost is not None:
            attributes["dispatchline.cost_usd"] = cost
        if reply is not None:
            if reply.id:
                attributes["gen_ai.response.id"] = reply.id
            if reply.finish_reasons:
                attributes["gen_ai.response.finish_reasons"] = [
                    reply.finish_reasons[i] for i in sorted(reply.finish_reasons)
                ]
            if usage is not None:
                attributes.update(_usage_attributes(usage))
            if reply.first_chunk is not None:
                attributes["gen_ai.response.time_to_first_chunk"] = reply.first_chunk
        attempts = getattr(source, "attempts", ())
        if attempts:
            attributes["dispatchline.attempts"] = len(attempts)
        if len(attempts) > 1:
            for attempt in attempts:
                span.add_event("dispatchline.attempt", _attempt_attributes(attempt))
        span.set_attributes(attributes)
        if error is not None:
            status = self._trace.Status(self._trace.StatusCode.ERROR, type(error).__name__)
            span.set_status(status)
        span.end()


def _attempt_attributes(attempt: Any) -> Mapping[str, Any]:
    attributes = {
        "gen_ai.provider.name": provider_name(attempt.provider),
        "gen_ai.request.model": attempt.model,
    }
    deployment = getattr(attempt, "deployment", None)
    if deployment is not None:
        attributes["dispatchline.deployment"] = deployment
    if attempt.error is not None:
        attributes["error.type"] = attempt.error
    return attributes


class _StreamSpan:
    """One stream's span, kept open until the stream ends."""

    __slots__ = ("_operation", "_reply", "_request", "_span", "_start", "_stream", "_telemetry")

    def __init__(
        self,
        telemetry: Telemetry,
        span: Any,
        request: Request,
        operation: str,
        start: float,
        stream: Stream[Any],
    ) -> None:
        self._telemetry = telemetry
        self._span = span
        self._request = request
        self._operation = operation
        self._start = start
        self._stream = stream
        self._reply = _Reply()
        self._reply.first_chunk = time.perf_counter() - start  # the terminal waits for it

    def on_chunk(self, chunk: ChatChunk) -> None:
        self._reply.add(chunk)

    def on_end(self, completed: bool) -> None:
        self._finish(None, "ok" if completed else "cancelled")

    def on_error(self, exc: BaseException) -> None:
        self._finish(exc, None)

    def _finish(self, error: BaseException | None, outcome: str | None) -> None:
        self._telemetry._end(
            self._span,
            self._request,
            self._operation,
            self._start,
            self._stream,
            self._reply,
            error,
            outcome,
        )
