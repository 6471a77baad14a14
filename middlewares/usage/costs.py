"""Costs: what each call cost, in USD, priced by genai-prices.

>>> from middlewares import Costs
>>> pipe = Pipeline.default(costs=Costs())
>>> (await pipe.acompletion("openai/gpt-4o-mini", messages)).cost   # e.g. 2.1e-05

``response.cost`` is a float (USD), or None when the price is unknown (an
unknown model or provider, a reply without usage); pricing never raises. A
stream's cost is known when it ends: on the stream (``stream.cost``), on the
response Callbacks' ``on_success`` receives, and in Stats. A cache hit costs
``0.0`` (the Cache layer outside says so).

Where the price comes from, first found wins:

1. the call: ``metadata={"input_cost_per_token": ..., "output_cost_per_token": ...}``
   (USD per token; checked before any I/O);
2. the deployment a Router chose, when it sets ``input_cost_per_token`` /
   ``output_cost_per_token``;
3. genai-prices (the ``[prices]`` extra), by provider and model: the model
   the provider says answered (a dated snapshot, the real model behind an
   Azure deployment name), else the model asked for. Cached-input tokens,
   prompt-cache writes and reasoning tokens are priced as the provider
   prices them; long-context tiers and dated price changes too.

A per-token override prices prompt tokens (cached ones included) at its
input price and completion tokens (reasoning included) at its output price;
a side it leaves unset costs nothing. Embeddings are priced by their prompt
tokens, transcriptions by their audio duration and speech by its characters,
where the price data has those units; images have none there, so their cost
is None.

Prices are genai-prices' bundled snapshot: nothing is fetched at run time.
To refresh them, run the library's own updater (``genai_prices.UpdatePrices``)
in your application; Costs uses whatever data the library holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from middlewares.usage._extras import require
from middlewares.usage._pricebook import PriceBook, Units
from middlewares.usage._routed import deployment_of
from pipeline import (
    ChatChunk,
    ChatResponse,
    EmbeddingResponse,
    Handler,
    Request,
    Result,
    SpeechResponse,
    Stream,
    TranscriptionResponse,
    Usage,
    errors,
    observe,
)

__all__ = ["Costs", "PriceBook", "TokenPrice", "estimate_cost"]

PRICE_KEYS = ("input_cost_per_token", "output_cost_per_token")


class TokenPrice(NamedTuple):
    """A per-token price override, USD per token."""

    input: float = 0.0
    output: float = 0.0

    def of(self, usage: Usage) -> float:
        return usage.prompt_tokens * self.input + usage.completion_tokens * self.output


def _per_token(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def call_price(request: Request) -> TokenPrice | None:
    """The price the call set in its metadata; InvalidRequestError if malformed."""
    metadata = request.options.get("metadata")
    if (
        metadata is None
        or not isinstance(metadata, Mapping)
        or not any(key in metadata for key in PRICE_KEYS)
    ):
        return None
    for key in PRICE_KEYS:
        if key in metadata and not _per_token(metadata[key]):
            raise errors.InvalidRequestError(
                f"metadata[{key!r}] must be a non-negative number (USD per token), "
                f"got {metadata[key]!r}",
                provider=request.provider,
                model=request.model,
            )
    return TokenPrice(metadata.get(PRICE_KEYS[0], 0.0), metadata.get(PRICE_KEYS[1], 0.0))


def deployment_price(request: Request) -> TokenPrice | None:
    """The routed deployment's own price, when it sets one."""
    deployment = deployment_of(request)
    if deployment is None:
        return None
    given = [getattr(deployment, key, None) for key in PRICE_KEYS]
    if given[0] is None and given[1] is None:
        return None
    return TokenPrice(given[0] or 0.0, given[1] or 0.0)


# -- what a reply measured, in the price library's units ----------------------------


class Measured(NamedTuple):
    """A reply's billable quantities: its token usage, or another unit (seconds, characters)."""

    tokens: Usage | None  # priced by tokens (overrides apply)
    units: Units | None = None  # priced by another unit

    def library_units(self) -> Units:
        if self.units is not None:
            return self.units
        usage = self.tokens
        assert usage is not None
        units: Units = {
            "input_tokens": usage.prompt_tokens,
            "output_tokens": usage.completion_tokens,
        }
        if usage.cached_tokens:
            units["cache_read_tokens"] = usage.cached_tokens
        if usage.cache_write_tokens:
            units["cache_write_tokens"] = usage.cache_write_tokens
        if usage.reasoning_tokens:
            units["output_reasoning_tokens"] = usage.reasoning_tokens
        return units


def _by_usage(response: Any, request: Request) -> Measured | None:
    usage = response.usage
    return None if usage is None else Measured(usage)


def _by_duration(response: TranscriptionResponse, request: Request) -> Measured | None:
    duration = response.duration
    return None if duration is None else Measured(None, {"audio_seconds": duration})


def _by_characters(response: SpeechResponse, request: Request) -> Measured | None:
    text = request.input
    return Measured(None, {"input_characters": len(text)}) if isinstance(text, str) else None


_MEASURE: dict[type, Callable[[Any, Request], Measured | None]] = {
    ChatResponse: _by_usage,
    EmbeddingResponse: _by_usage,
    TranscriptionResponse: _by_duration,
    SpeechResponse: _by_characters,
}


def _models(answered: str, asked: str) -> tuple[str, ...]:
    """The model the provider named, then the one asked for (when different)."""
    if not answered or answered == asked:
        return (asked,)
    return (answered, asked)


def _price(
    book: PriceBook, provider: str, models: tuple[str, ...], measured: Measured
) -> float | None:
    total = book.price(provider, models, measured.library_units())
    # A zero for a non-token unit means the model is priced in other units.
    return None if total == 0.0 and measured.tokens is None else total


class Costs:
    """Sets ``cost`` on every response and stream; see the module docstring.

    Raises :class:`MissingExtraError` when genai-prices is not installed.
    """

    __slots__ = ("_book",)

    def __init__(self) -> None:
        self._book = PriceBook(require("genai_prices", "prices", "Costs"))

    def __repr__(self) -> str:
        return "Costs()"

    def cost(
        self,
        request: Request,
        override: TokenPrice | None,
        measured: Measured | None,
        model: str = "",
    ) -> float | None:
        """The price of what ``request`` measured; ``model`` is the one the provider named."""
        if measured is None:
            return None
        if override is not None and measured.tokens is not None:
            return override.of(measured.tokens)
        return _price(self._book, request.provider, _models(model, request.model), measured)

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        override = call_price(request) or deployment_price(request)
        result = await call_next(request)
        if isinstance(result, Stream):
            watch = _StreamCost(self, request, override)
            watch.stream = observe(
                result, on_chunk=watch.on_chunk, on_end=watch.on_end, on_error=watch.on_error
            )
            return watch.stream
        measure = _MEASURE.get(type(result))
        measured = measure(result, request) if measure is not None else None
        result.cost = self.cost(request, override, measured, result.model)
        return result


class _StreamCost:
    """One stream being priced: its last usage, priced when it ends, however it ends."""

    __slots__ = ("_costs", "_model", "_override", "_request", "_usage", "stream")

    def __init__(self, costs: Costs, request: Request, override: TokenPrice | None) -> None:
        self._costs = costs
        self._request = request
        self._override = override
        self._usage: Usage | None = None
        self._model = ""
        self.stream: Stream[Any] | None = None

    def on_chunk(self, chunk: ChatChunk) -> None:
        if chunk.usage is not None:
            self._usage = chunk.usage
        if not self._model:
            self._model = chunk.model

    def on_end(self, completed: bool) -> None:
        assert self.stream is not None
        measured = None if self._usage is None else Measured(self._usage)
        self.stream.cost = self._costs.cost(self._request, self._override, measured, self._model)

    def on_error(self, exc: BaseException) -> None:
        self.on_end(False)


_shared: PriceBook | None = None


def estimate_cost(
    provider: str, model: str, prompt_tokens: int, completion_tokens: int
) -> float | None:
    """USD for ``prompt_tokens`` in and ``completion_tokens`` out at ``provider/model``,
    by genai-prices; None when the library is not installed or the model is unknown.

    For a Router's cost strategy: it never raises, and never touches the network.
    """
    global _shared
    if _shared is None:
        try:
            import genai_prices
        except ImportError:
            return None
        _shared = PriceBook(genai_prices)
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return _price(_shared, provider, (model,), Measured(usage))
