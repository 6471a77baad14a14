"""Telemetry: spans and metrics by the GenAI semantic conventions, read from in-memory exporters."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.trace import SpanKind, StatusCode

from middlewares import Costs, ErrorMapping, Retry, Telemetry
from middlewares.usage import MissingExtraError
from pipeline import Handler, Request, Result, errors
from providers import Script
from tests._scripted_replies import Sleeps, failure
from tests._usage import FakeDeployment, chat_reply, mock_pipeline, route_to

pytestmark = pytest.mark.anyio

TARGET = "openai/gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]

# Every attribute name the GenAI semantic conventions define, from their own package.
SEMCONV = {
    value
    for name, value in vars(gen_ai_attributes).items()
    if name.startswith("GEN_AI_") and isinstance(value, str)
} | {"error.type"}


class Otel:
    """An SDK tracer and meter provider, exporting to memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def telemetry(self) -> Telemetry:
        return Telemetry(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[Otel]:
    made = Otel()
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()


def ours(name: str) -> bool:
    return name.startswith("dispatchline.")


async def test_a_chat_call_is_one_client_span_with_the_conventions_attributes(otel: Otel) -> None:
    reply = chat_reply("gpt-4o-mini-2024-07-18", prompt=12, completion=3, cached=2)
    layers = [otel.telemetry(), Costs(), ErrorMapping()]
    async with mock_pipeline(layers, Script(reply)) as pipe:
        response = await pipe.acompletion(TARGET, HELLO, max_tokens=50, temperature=0.2)
    (span,) = otel.finished()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert all(name in SEMCONV or ours(name) for name in attributes), attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.response.id"] == "chatcmpl-usage"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 2
    assert attributes["dispatchline.cost_usd"] == response.cost
    assert attributes["dispatchline.outcome"] == "ok"

    (duration,) = otel.points(gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION)
    assert duration.count == 1
    assert dict(duration.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    }
    tokens = {
        point.attributes["gen_ai.token.type"]: point.sum
        for point in otel.points(gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE)
    }
    assert tokens == {"input": 12, "output": 3}


async def test_a_stream_span_ends_when_the_stream_ends(otel: Otel) -> None:
    async with mock_pipeline([otel.telemetry(), Costs()]) as pipe:
        stream = await pipe.acompletion(TARGET, HELLO, stream=True)
        await stream.__anext__()
        assert otel.finished() == []  # still open while the stream is read
        async for _ in stream:
            pass
    (span,) = otel.finished()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    first_chunk, output = (
        attributes["gen_ai.response.time_to_first_chunk"],
        attributes["gen_ai.usage.output_tokens"],
    )
    assert isinstance(first_chunk, float) and first_chunk > 0
    assert isinstance(output, int) and output > 0
    assert attributes["dispatchline.cost_usd"] == stream.cost
    (first,) = otel.points(gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK)
    assert first.count == 1


async def test_a_stream_closed_early_ends_its_span_as_cancelled(otel: Otel) -> None:
    async with mock_pipeline([otel.telemetry()]) as pipe:
        stream = await pipe.acompletion(TARGET, HELLO, stream=True)
        await stream.__anext__()
        await stream.aclose()
    (span,) = otel.finished()
    assert dict(span.attributes or {})["dispatchline.outcome"] == "cancelled"
    assert span.status.status_code is StatusCode.UNSET


async def test_a_failure_sets_error_type_and_an_error_status(otel: Otel) -> None:
    layers = [otel.telemetry(), ErrorMapping()]
    async with mock_pipeline(layers, Script(failure(401))) as pipe:
        with pytest.raises(errors.AuthenticationError):
            await pipe.acompletion(TARGET, HELLO)
    (span,) = otel.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "AuthenticationError"
    assert dict(span.attributes or {})["error.type"] == "AuthenticationError"
    (duration,) = otel.points(gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION)
    assert duration.attributes["error.type"] == "AuthenticationError"
    assert otel.points(gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE) == []


async def test_each_retry_is_an_event_on_the_one_span(otel: Otel) -> None:
    script = Script(failure(500), failure(503), chat_reply())
    layers = [otel.telemetry(), Retry(attempts=3, sleep=Sleeps()), ErrorMapping()]
    async with mock_pipeline(layers, script) as pipe:
        await pipe.acompletion(TARGET, HELLO)
    (span,) = otel.finished()
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert [name for name, _ in events] == ["dispatchline.attempt"] * 3
    assert [a.get("error.type") for _, a in events] == [
        "InternalServerError",
        "ServiceUnavailableError",
        None,
    ]
    assert all(name in SEMCONV or ours(name) for _, a in events for name in a)
    assert dict(span.attributes or {})["dispatchline.attempts"] == 3


async def test_the_span_is_current_while_the_chain_runs(otel: Otel) -> None:
    inner: list[trace.Span] = []

    async def look(request: Request, call_next: Handler) -> Result:
        inner.append(trace.get_current_span())
        return await call_next(request)

    async with mock_pipeline([otel.telemetry(), look]) as pipe:
        await pipe.acompletion(TARGET, HELLO)
    (span,) = otel.finished()
    assert inner[0].get_span_context().span_id == span.context.span_id


async def test_routed_requests_name_their_deployment(otel: Otel) -> None:
    layers = [otel.telemetry(), route_to(FakeDeployment("east"))]
    async with mock_pipeline(layers, names=("gemini",)) as pipe:
        await pipe.aembedding("gemini/text-embedding-004", "hello")
    (span,) = otel.finished()
    attributes = dict(span.attributes or {})
    assert span.name == "embeddings text-embedding-004"
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"  # the conventions' name
    assert attributes["dispatchline.deployment"] == "east"
    tokens = otel.points(gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE)
    assert [point.attributes["gen_ai.token.type"] for point in tokens] == ["input"]


async def test_without_an_sdk_requests_pass_through() -> None:
    async with mock_pipeline([Telemetry(), ErrorMapping()], Script(chat_reply())) as pipe:
        response = await pipe.acompletion(TARGET, HELLO)
    assert response.choices[0].message.content == "fine"


async def test_without_opentelemetry_telemetry_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(MissingExtraError, match=r"dispatchline\[otel\]"):
        Telemetry()
