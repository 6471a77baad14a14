"""The price book: genai-prices' own figure for every usage, its look-ups and plans remembered."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices import types as library_types

from middlewares.usage._pricebook import PriceBook

Units = dict[str, int | float]
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def uncached(provider: str, model: str, units: Units, when: datetime) -> float | None:
    """``calc_price`` itself, asked afresh; None where it refuses the usage."""
    try:
        calculation = genai_prices.calc_price(
            genai_prices.Usage(**units), model, provider_id=provider, genai_request_timestamp=when
        )
    except ValueError:
        return None
    return float(calculation.total_price)


def book_at(*moments: datetime) -> tuple[PriceBook, list[datetime]]:
    """A book whose clock reads the last moment in the returned list."""
    clock = list(moments) or [NOW]
    return PriceBook(genai_prices, clock=lambda: clock[-1]), clock


@pytest.fixture
def library_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time anyone asks the library to price a model (the slow path)."""
    calls: list[str] = []
    original = library_types.ModelInfo.calc_price

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(self.id)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(library_types.ModelInfo, "calc_price", counted)
    return calls


def _models() -> Iterator[tuple[str, Any]]:
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            yield provider.id, model


def _all_prices(model: Any) -> list[Any]:
    return [c.prices for c in model.prices] if isinstance(model.prices, list) else [model.prices]


def tiered_model(provider: str) -> str:
    """A model of ``provider`` whose price has tiers (by input tokens), found in the data."""
    for pid, model in _models():
        if pid == provider and any(
            isinstance(value, library_types.TieredPrices)
            for prices in _all_prices(model)
            for value in vars(prices).values()
        ):
            return str(model.id)
    raise AssertionError(f"the price data has no tiered {provider} model")


def per_request_model() -> tuple[str, str]:
    for pid, model in _models():
        if any(getattr(prices, "requests_kcount", None) for prices in _all_prices(model)):
            return pid, str(model.id)
    raise AssertionError("the price data has no model priced per request")


def changing_model(
    kind: type, moments: Callable[[Any], tuple[datetime, datetime]]
) -> tuple[str, str, datetime, datetime]:
    """A model whose price changes by a ``kind`` constraint, and a moment either side."""
    units: Units = {"input_tokens": 1000, "output_tokens": 1000}
    for pid, model in _models():
        if not isinstance(model.prices, list):
            continue
        for conditional in model.prices:
            if isinstance(conditional.constraint, kind):
                before, after = moments(conditional.constraint)
                if uncached(pid, model.id, units, before) != uncached(pid, model.id, units, after):
                    return pid, str(model.id), before, after
    raise AssertionError(f"the price data has no model with a {kind.__name__} price change")


def _start_date(constraint: Any) -> tuple[datetime, datetime]:
    start = datetime.combine(constraint.start_date, time(12), tzinfo=UTC)
    return start - timedelta(days=2), start


def _time_of_day(constraint: Any) -> tuple[datetime, datetime]:
    start = datetime.combine(NOW.date(), constraint.start_time.replace(tzinfo=None), tzinfo=UTC)
    return start - timedelta(hours=2), start + timedelta(minutes=5)


def usages(seed: int, count: int) -> Iterator[Units]:
    """Token usages a provider reports: edges, long contexts, every breakdown combined."""
    rng = random.Random(seed)
    yield {"input_tokens": 0, "output_tokens": 0}
    yield {"input_tokens": 1, "output_tokens": 1}
    for _ in range(count):
        prompt = rng.choice([rng.randint(0, 2_000), rng.randint(100_000, 1_200_000)])
        completion = rng.randint(0, 60_000)
        units: Units = {"input_tokens": prompt, "output_tokens": completion}
        cached = rng.randint(0, prompt) if rng.random() < 0.5 else 0
        written = rng.randint(0, prompt - cached) if rng.random() < 0.4 else 0
        reasoning = rng.randint(0, completion) if rng.random() < 0.4 else 0
        for key, value in (
            ("cache_read_tokens", cached),
            ("cache_write_tokens", written),
            ("output_reasoning_tokens", reasoning),
        ):
            if value:
                units[key] = value
        yield units


def test_the_cached_path_gives_calc_prices_own_figure_for_every_usage(
    library_calls: list[str],
) -> None:
    targets = [
        ("openai", "gpt-4o-mini"),
        ("openai", "o3-mini"),
        ("anthropic", "claude-sonnet-4-0"),
        ("anthropic", tiered_model("anthropic")),
        ("google", tiered_model("google")),
        per_request_model(),
        ("deepseek", "deepseek-chat"),
    ]
    book, _ = book_at(NOW)
    cases = [(p, m, units) for n, (p, m) in enumerate(targets) for units in usages(n, 60)]
    expected = [uncached(p, m, units, NOW) for p, m, units in cases]
    assert sum(price is not None and price > 0 for price in expected) > 0.9 * len(cases)
    library_calls.clear()
    got = [book.price(p, (m,), units) for p, m, units in cases]
    assert got == expected
    shapes = {(p, m, tuple(units)) for p, m, units in cases}
    assert len(library_calls) <= len(shapes)  # once per model and breakdown, not per reply
    library_calls.clear()
    assert [book.price(p, (m,), units) for p, m, units in cases] == expected
    assert library_calls == []


@pytest.mark.parametrize(
    ("kind", "moments"),
    [
        (library_types.StartDateConstraint, _start_date),
        (library_types.TimeOfDateConstraint, _time_of_day),
    ],
    ids=["dated-change", "off-peak-hours"],
)
def test_a_remembered_model_is_priced_at_the_replys_time(
    kind: type, moments: Callable[[Any], tuple[datetime, datetime]]
) -> None:
    provider, model, before, after = changing_model(kind, moments)
    book, clock = book_at(before)
    units: Units = {"input_tokens": 1000, "output_tokens": 1000}
    for _ in range(2):  # the second reply goes through the remembered plan
        assert book.price(provider, (model,), units) == uncached(provider, model, units, before)
    clock.append(after)
    for _ in range(2):
        assert book.price(provider, (model,), units) == uncached(provider, model, units, after)
    clock.append(before)
    assert book.price(provider, (model,), units) == uncached(provider, model, units, before)


def test_an_unknown_model_stays_none_and_is_looked_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups: list[str] = []
    original = data_snapshot.DataSnapshot.find_provider_model

    def counted(self: Any, model_ref: str, *args: Any) -> Any:
        lookups.append(model_ref)
        return original(self, model_ref, *args)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", counted)
    book, _ = book_at()
    units: Units = {"input_tokens": 10, "output_tokens": 5}
    for _ in range(5):
        assert book.price("openai", ("no-such-model-anywhere",), units) is None
        assert book.price("no-such-provider", ("gpt-4o-mini",), units) is None
    assert lookups == ["no-such-model-anywhere", "gpt-4o-mini"]
    # the next name is still tried, and the known one priced
    price = book.price("openai", ("no-such-model-anywhere", "gpt-4o-mini"), units)
    assert price == uncached("openai", "gpt-4o-mini", units, NOW)


def test_remembered_lookups_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PriceBook, "MAX_MODELS", 8)
    book, _ = book_at()
    units: Units = {"input_tokens": 10, "output_tokens": 5}
    for n in range(50):
        assert book.price("openai", (f"unknown-{n}",), units) is None
        assert len(book._models) <= 8
    assert book.price("openai", ("gpt-4o-mini",), units) == uncached(
        "openai", "gpt-4o-mini", units, NOW
    )


def test_usage_the_library_refuses_costs_none_with_or_without_a_plan() -> None:
    book, _ = book_at()
    good: Units = {"input_tokens": 100, "output_tokens": 5, "cache_read_tokens": 40}
    bad: Units = {"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 40}
    assert uncached("openai", "gpt-4o-mini", bad, NOW) is None
    assert book.price("openai", ("gpt-4o-mini",), bad) is None  # no plan yet
    assert book.price("openai", ("gpt-4o-mini",), good) == uncached(
        "openai", "gpt-4o-mini", good, NOW
    )
    assert book.price("openai", ("gpt-4o-mini",), bad) is None  # with its plan
    negative: Units = {"input_tokens": 100, "output_tokens": 5, "cache_read_tokens": -1}
    assert uncached("openai", "gpt-4o-mini", negative, NOW) is None
    assert book.price("openai", ("gpt-4o-mini",), negative) is None


def test_a_plan_that_disagrees_with_the_library_is_never_used() -> None:
    book, _ = book_at()
    internals = book._internals
    assert internals is not None
    book._internals = internals._replace(unit_price=lambda *args: Decimal(1))
    units: Units = {"input_tokens": 1200, "output_tokens": 300}
    expected = uncached("openai", "gpt-4o-mini", units, NOW)
    for _ in range(3):
        assert book.price("openai", ("gpt-4o-mini",), units) == expected
    assert book._internals is None  # the library prices every reply from now on


def test_refreshed_price_data_is_used_at_once() -> None:
    book, _ = book_at()
    units: Units = {"input_tokens": 1200, "output_tokens": 300}
    assert book.price("openai", ("gpt-4o-mini",), units) is not None
    empty = data_snapshot.DataSnapshot(providers=[], from_auto_update=True)
    data_snapshot.set_custom_snapshot(empty)
    try:
        assert book.price("openai", ("gpt-4o-mini",), units) is None
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert book.price("openai", ("gpt-4o-mini",), units) == uncached(
        "openai", "gpt-4o-mini", units, NOW
    )


def test_other_units_are_priced_by_the_library_with_the_lookup_remembered(
    library_calls: list[str],
) -> None:
    book, _ = book_at()
    for seconds in (0.5, 42.5, 3600.0):
        units: Units = {"audio_seconds": seconds}
        assert book.price("openai", ("whisper-1",), units) == uncached(
            "openai", "whisper-1", units, NOW
        )
    assert library_calls.count("whisper-1") == 6  # the book's three and ours
