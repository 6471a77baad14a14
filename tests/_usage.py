"""Usage tests' plumbing: recorded replies, the price library's own figures, a router stand-in."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import genai_prices
import httpx

from pipeline import Attempt, Handler, Pipeline, Request, Result, errors
from providers import ProviderRegistry, default_registry, mock_provider
from providers.mock import MockHandler, echo_handler
from tests.conftest import load_recorded

HI = [{"role": "user", "content": "hi"}]
KEY = "sk-usage-test-9f8e7d6c5b4a3210SECRETKEY"
SECRET_TEXT = "confidential-prompt-words-zx81"


def library_price(model: str, provider: str, **units: int | float) -> float:
    """What genai-prices itself says ``units`` of ``provider/model`` cost."""
    usage = genai_prices.Usage(**units)
    return float(genai_prices.calc_price(usage, model, provider_id=provider).total_price)


def recorded(name: str, usage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A recorded exchange; ``usage`` (for JSON replies) replaces keys of its ``usage`` object."""
    data = copy.deepcopy(load_recorded(name))
    if usage is not None:
        data["response"]["body"]["usage"].update(usage)
    return data


def reply_of(data: Mapping[str, Any]) -> httpx.Response:
    reply = data["response"]
    body = reply["body"]
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.Response(reply["status"], headers=reply["headers"], content=content)


class Replay:
    """A MockTransport handler answering every request with the same recorded reply."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return reply_of(self.data)


def real_providers(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> Pipeline:
    """``Pipeline.default(**options)`` over the built-in adapters, answered by ``handler``."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Pipeline.default(
        registry=default_registry(load_entry_points=False), http_client=client, **options
    )


def mock_pipeline(
    layers: Sequence[Any], handler: MockHandler = echo_handler, names: Sequence[str] = ("openai",)
) -> Pipeline:
    """``layers`` over mock providers named ``names`` (``openai`` by default, so
    that genai-prices knows its models)."""
    registry = ProviderRegistry([mock_provider(name, handler) for name in names])
    return Pipeline(list(layers), registry=registry)


def chat_reply(
    model: str = "gpt-4o-mini",
    prompt: int = 10,
    completion: int = 5,
    *,
    reasoning: int | None = None,
    cached: int | None = None,
) -> httpx.Response:
    """An OpenAI chat completion with the given usage."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-usage",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "fine"},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        },
    )


# -- a stand-in for the Router (middlewares.router): what the layers inside it see ------


@attrs.frozen
class FakeDeployment:
    name: str
    tags: frozenset[str] = frozenset()
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None


@attrs.frozen
class RoutedAttempt(Attempt):
    """An Attempt that names its deployment, as the Router records it."""

    deployment: str | None = None


def route_to(deployment: FakeDeployment) -> Callable[[Request, Handler], Any]:
    """A layer doing what the Router promises the layers inside it: the chosen
    deployment in ``request.options["deployment"]``, and the try recorded
    with its name in ``attempts``."""

    async def layer(request: Request, call_next: Handler) -> Result:
        routed = attrs.evolve(request, options={**request.options, "deployment": deployment})
        try:
            result = await call_next(routed)
        except errors.DispatchError as exc:
            name = type(exc).__name__
            exc.attempts = (RoutedAttempt(request.provider, request.model, name, deployment.name),)
            raise
        result.attempts = (RoutedAttempt(request.provider, request.model, None, deployment.name),)
        return result

    return layer


class FakeClock:
    """Seconds that move only when told."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def after(clock: FakeClock, seconds: float, reply: Any) -> Callable[[httpx.Request], Any]:
    """A scripted reply that takes ``seconds`` of ``clock`` time; ``reply`` is a
    response or a handler."""

    def answer(request: httpx.Request) -> Any:
        clock.advance(seconds)
        return reply(request) if callable(reply) else reply

    return answer
