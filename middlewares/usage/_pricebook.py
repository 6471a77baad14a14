"""genai-prices asked for each reply's price, with what does not depend on the reply remembered.

``genai_prices.calc_price`` costs tens of microseconds a call, and almost none
of it is finding the model (the library caches that): it is
``ModelPrice.calc_price`` resolving and validating the model's priced units,
then splitting the usage into leaf units through the library's generic
``Usage`` (which infers every unit the reply did not report), on every call.

A :class:`PriceBook` does per reply only what depends on the reply:

- the model: the library's lookup (``find_provider_model``) per (provider,
  model), a miss included, remembered in a bounded dict;
- its prices: the ones valid at the reply's time, from the library on every
  reply (``ModelInfo.get_prices(now)``: dated price changes, off-peak hours);
- token usage: a :class:`Plan` per (those prices, which units the reply
  reports), made of the library's own resolution of the prices into units
  (its ``UnitDef`` objects, ``Decimal`` or tiered prices) and of which priced
  unit includes which. Applying it is one subtraction per included unit and
  the library's ``calc_unit_price`` per non-zero unit: the same ``Decimal``
  operations, in the same order, as the library's own calculation. Nothing is
  keyed on token counts.

A plan is made from a reply the library itself has just priced, and kept only
when it gives that reply the library's exact figure; if one ever disagrees (a
genai-prices release that prices differently), the book logs it and asks the
library for every reply from then on. The same happens when the library's
internals a plan is built from are not there. Other units (seconds,
characters) are always priced by the library's ``ModelInfo.calc_price``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from types import ModuleType
from typing import Any, NamedTuple

from middlewares._log import logger

__all__ = ["Plan", "PriceBook"]

Units = dict[str, int | float]
_UNSEEN: Any = object()
_utc_now = partial(datetime.now, UTC)


class _Internals(NamedTuple):
    """The pieces of genai-prices a plan is built from (None when a release lacks one)."""

    registry: Callable[[], Any]  # genai_prices.units._get_registry
    resolve: Callable[[Any, Any], tuple[tuple[Any, Any], ...]]  # (unit, price) per priced unit
    validate: Callable[[Any, Any], None]
    includes: Callable[[Any, Any], bool]  # decompose.is_descendant_or_self
    unit_price: Callable[[Any, Any, Any, int], Decimal]
    tiered: type

    @classmethod
    def of(cls, library: ModuleType) -> _Internals | None:
        name = library.__name__
        try:
            types = importlib.import_module(f"{name}.types")
            found = cls(
                importlib.import_module(f"{name}.units")._get_registry,
                types._collect_resolved_model_prices,
                importlib.import_module(f"{name}.validation").validate_priced_units,
                importlib.import_module(f"{name}.decompose").is_descendant_or_self,
                types.calc_unit_price,
                types.TieredPrices,
            )
        except (ImportError, AttributeError):
            return None
        return found


class Plan(NamedTuple):
    """How one set of prices (a library ``ModelPrice``) prices replies reporting given units."""

    prices: Any  # the ModelPrice it was made for (kept: the cache is keyed by its id)
    split: tuple[tuple[str, tuple[str, ...]], ...]  # unit -> the reported units inside it
    # (only units with some inside them, inner ones first)
    priced: tuple[tuple[str, Any, int], ...]  # (unit, price, per), the library's order
    tiered: bool  # a tier depends on the input tokens
    unit_price: Callable[[Any, Any, Any, int], Decimal]

    @classmethod
    def make(cls, internals: _Internals, prices: Any, reported: tuple[str, ...]) -> Plan:
        registry = internals.registry()
        resolved = internals.resolve(prices, registry)
        internals.validate(tuple(unit for unit, _ in resolved), registry)
        # A priced unit the reply does not report counts nothing (the library
        # infers 0, or refuses the shape, and then no plan is made).
        units = [unit for unit, _ in resolved if unit.usage_key in reported]
        units.sort(key=lambda unit: (-len(unit.dimensions), unit.usage_key))  # inner first
        split = tuple(
            (unit.usage_key, inner)
            for unit in units
            if (
                inner := tuple(
                    part.usage_key
                    for part in units
                    if part is not unit and internals.includes(unit, part)
                )
            )
        )
        priced = tuple(
            (unit.usage_key, price, unit.per)
            for unit, price in resolved
            if unit.usage_key in reported or unit.usage_key == "requests"
        )
        tiered = any(isinstance(price, internals.tiered) for _, price in resolved)
        return cls(prices, split, priced, tiered, internals.unit_price)

    def total(self, units: Units) -> Decimal | None:
        """The price of ``units`` (the library's figure); None where the library
        refuses them (a negative count, more cached than input tokens)."""
        if min(units.values()) < 0:
            return None
        leaves = units
        if self.split:
            leaves = dict(units)
            for key, inner in self.split:
                count = units[key]
                for part in inner:
                    count -= leaves[part]
                if count < 0:
                    return None
                leaves[key] = count
        before_tiers = units["input_tokens"] if self.tiered else 0
        total = Decimal(0)
        for key, price, per in self.priced:
            count = leaves.get(key, 1)  # the one priced unit not reported: "requests"
            if count:
                total += self.unit_price(price, count, before_tiers, per)
        return total


class PriceBook:
    """Prices replies with genai-prices' data (its bundled snapshot unless the
    application refreshed it); see the module docstring. When the library's
    data changes, everything remembered is forgotten."""

    __slots__ = ("_clock", "_internals", "_lib", "_models", "_plans", "_snapshot", "_snapshots")

    MAX_MODELS = 4096  # remembered (provider, model) look-ups, misses included
    MAX_PLANS = 1024

    def __init__(self, library: ModuleType, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._lib = library
        self._clock = clock
        self._snapshots: Callable[[], object] = library.data_snapshot.get_snapshot
        self._snapshot = self._snapshots()  # loads the data now
        self._models: dict[tuple[str, str], tuple[Any, Any] | None] = {}
        self._plans: dict[tuple[int, tuple[str, ...]], Plan] = {}
        self._internals = _Internals.of(library)

    def price(self, provider: str, models: Iterable[str], units: Units) -> float | None:
        """USD for ``units`` (the library's usage keys) at the first of ``models`` the
        library knows at ``provider``; None when it knows none (or cannot price them)."""
        snapshot = self._snapshots()
        if snapshot is not self._snapshot:
            self._snapshot = snapshot
            self._models.clear()
            self._plans.clear()
        for model in models:
            found = self._models.get((provider, model), _UNSEEN)
            if found is _UNSEEN:
                found = self._find(snapshot, provider, model)
            if found is None:
                continue
            try:
                total = self._total(found[0], found[1], units)
            except (ValueError, ArithmeticError, TypeError) as exc:
                logger().warning(
                    "costs.price_failed", provider=provider, model=model, error=type(exc).__name__
                )
                return None
            return float(total)
        return None

    def _find(self, snapshot: Any, provider: str, model: str) -> tuple[Any, Any] | None:
        found: tuple[Any, Any] | None
        try:
            found = snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            found = None
        if len(self._models) >= self.MAX_MODELS:
            self._models.clear()
        self._models[provider, model] = found
        return found

    def _total(self, provider: Any, info: Any, units: Units) -> Decimal:
        now = self._clock()
        internals = self._internals
        if internals is None or "input_tokens" not in units:  # seconds, characters
            return self._library_total(provider, info, units, now)
        prices = info.get_prices(now)
        reported = tuple(units)
        known = self._plans.get((id(prices), reported))
        if known is not None and known.prices is prices:
            total = known.total(units)
            return self._library_total(provider, info, units, now) if total is None else total
        expected = self._library_total(provider, info, units, now)
        try:
            plan = Plan.make(internals, prices, reported)
            agrees = plan.total(units) == expected
        except Exception:  # the library's internals are not what a plan expects
            agrees = False
        if not agrees:
            logger().warning("costs.plan_disagrees", model=info.id, provider=provider.id)
            self._internals = None
            self._plans.clear()
            return expected
        if len(self._plans) >= self.MAX_PLANS:
            self._plans.clear()
        self._plans[id(prices), reported] = plan
        return expected

    def _library_total(self, provider: Any, info: Any, units: Units, now: datetime) -> Decimal:
        calculation = info.calc_price(
            self._lib.Usage(**units), provider, genai_request_timestamp=now
        )
        total: Decimal = calculation.total_price
        return total
