"""The usage layers in Pipeline.default: their places, working together, and keeping no secrets."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from middlewares import Budget, Callbacks, Stats, Telemetry, default_stack
from pipeline import ChatResponse, Pipeline, errors
from providers import ProviderRegistry, Script, mock_provider
from providers.mock import echo_handler
from tests._scripted_replies import failure
from tests._usage import KEY, SECRET_TEXT, chat_reply

pytestmark = pytest.mark.anyio

TARGET = "openai/gpt-4o-mini"
HAIKU = "claude-3-5-haiku-latest"


def names(stack: list[Any]) -> list[str]:
    return [type(layer).__name__ for layer in stack]


def test_default_stack_places_every_usage_layer() -> None:
    stack = default_stack(
        telemetry=True,
        stats=Stats(),
        callbacks=Callbacks(on_success=print),
        fallbacks=["other/gpt-4o-mini"],
        budgets=[Budget(1.0), Budget(5.0, scope="model")],
        costs=True,
    )
    assert names(stack) == [
        "Logging",
        "Telemetry",
        "Stats",
        "Callbacks",
        "Cache",
        "Fallback",
        "Budget",
        "Budget",
        "Costs",
        "Retry",
        "ErrorMapping",
    ]


def test_budgets_bring_their_costs_layer_and_nothing_is_added_unasked() -> None:
    assert "Costs" in names(default_stack(budgets=[Budget(1.0)]))
    plain = names(default_stack())
    assert not {"Telemetry", "Stats", "Budget", "Costs"} & set(plain)
    with pytest.raises(TypeError, match="list of Budget"):
        default_stack(budgets=Budget(1.0))  # type: ignore[arg-type]


async def test_the_default_pipeline_counts_a_request_once_and_prices_it() -> None:
    stats = Stats()
    budget = Budget(1.0)
    seen: list[ChatResponse] = []
    openai, anthropic = Script(failure(429)), Script(chat_reply(HAIKU))
    registry = ProviderRegistry(
        [mock_provider("openai", openai), mock_provider("anthropic", anthropic)]
    )
    pipe = Pipeline.default(
        registry=registry,
        logging=False,
        retry=False,
        stats=stats,
        budgets=[budget],
        callbacks=Callbacks(on_success=lambda request, response: seen.append(response)),
        fallbacks=[f"anthropic/{HAIKU}"],
    )
    async with pipe:
        # temperature=0: an answer the default cache keeps without being asked
        hi = [{"role": "user", "content": "hi"}]
        response = await pipe.acompletion(TARGET, hi, temperature=0)
        hit = await pipe.acompletion(TARGET, hi, temperature=0)
    assert response.cost is not None and response.cost > 0
    assert hit.cache_hit and hit.cost == 0.0
    assert [r.cost for r in seen] == [response.cost, 0.0]
    assert budget.spent("provider:anthropic") == response.cost  # the hit spent nothing
    targets = stats.snapshot().targets
    # A hit keeps the path of the answer it replays: both count under the fallback.
    assert set(targets) == {f"anthropic/{HAIKU}"}
    served = targets[f"anthropic/{HAIKU}"]
    assert (served.requests, served.successes, served.failures) == (2, 2, {})
    assert served.cost == response.cost
    assert served.cache_hits == 1


def test_the_sync_facade_shows_a_streams_cost(sync_backend: str) -> None:
    registry = ProviderRegistry([mock_provider("openai")])
    with Pipeline.default(registry=registry, costs=True, sync_backend=sync_backend) as pipe:
        stream = pipe.completion(TARGET, [{"role": "user", "content": "hi"}], stream=True)
        assert stream.cost is None
        for _ in stream:
            pass
        assert stream.cost is not None and stream.cost > 0


async def test_no_key_or_message_content_in_any_metric_span_or_stat() -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    stats = Stats()
    budget = Budget(10.0, scope="tag")

    def echoing(request: httpx.Request) -> httpx.Response:
        """Replies, and errors that quote the key and the prompt back, as providers do."""
        body = request.content.decode()
        if "fail" in body:
            message = f"Incorrect API key provided: {KEY}; prompt was {SECRET_TEXT}"
            return failure(401, message)
        return echo_handler(request)

    registry = ProviderRegistry([mock_provider("openai", echoing)])
    pipe = Pipeline.default(
        registry=registry, telemetry=telemetry, stats=stats, budgets=[budget], logging=False
    )
    words = [{"role": "user", "content": f"{SECRET_TEXT} {KEY}"}]
    metadata = {"tags": ["team-a"]}
    async with pipe:
        await pipe.acompletion(TARGET, words, api_key=KEY, metadata=metadata, max_tokens=9)
        stream = await pipe.acompletion(TARGET, words, api_key=KEY, stream=True, metadata=metadata)
        async for _ in stream:
            pass
        failing = [{"role": "user", "content": f"fail {SECRET_TEXT}"}]
        with pytest.raises(errors.AuthenticationError):
            await pipe.acompletion(TARGET, failing, api_key=KEY)
    exported: list[str] = []
    for span in spans.get_finished_spans():
        exported.append(span.to_json())
        exported.append(repr(span.status.description))
    data = reader.get_metrics_data()
    assert data is not None
    exported.append(data.to_json())
    exported.append(json.dumps(stats.snapshot().to_dict()))
    exported.append(stats.prometheus())
    exported.append(json.dumps(budget.snapshot()))
    assert len(spans.get_finished_spans()) == 3
    assert "AuthenticationError" in "".join(exported)  # the failure is there, by class name
    for text in exported:
        assert KEY not in text
        assert SECRET_TEXT not in text
    tracer_provider.shutdown()
    meter_provider.shutdown()
