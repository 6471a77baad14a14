"""The provider registry: a dict from name to adapter, plus the auto-detect table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pipeline._resolve import AutoDetect
from pipeline.adapter import Adapter, errors

ENTRY_POINT_GROUP = "dispatchline.providers"


class ProviderRegistry:
    """Providers by name. ``registry[name]`` is one dict lookup.

    Third-party providers arrive through the ``dispatchline.providers``
    entry-point group (:meth:`load_entry_points`). An entry point may name an
    adapter, an adapter class (instantiated with no arguments), or a callable
    returning an adapter or several; one that fails to
    load is recorded in ``load_errors`` (name -> reason), logged, and skipped.
    """

    def __init__(self, adapters: Iterable[Adapter] = ()) -> None:
        self._adapters: dict[str, Adapter] = {}
        self._detect = AutoDetect()
        self.load_errors: dict[str, str] = {}
        for adapter in adapters:
            self.register(adapter)

    @property
    def adapters(self) -> Mapping[str, Adapter]:
        """The live name -> adapter dict the terminal handler looks providers up in."""
        return self._adapters

    def register(self, adapter: Adapter, *, replace: bool = False) -> None:
        name = adapter.name
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"a provider name must be a non-empty string without '/': {name!r}")
        if name in self._adapters and not replace:
            raise ValueError(f"a provider named {name!r} is already registered")
        if name in self._adapters:
            self._detect.remove(name)
        self._adapters[name] = adapter
        self._detect.add(
            name, models=adapter.models, prefixes=adapter.prefixes, priority=adapter.priority
        )

    def unregister(self, name: str) -> None:
        del self._adapters[name]
        self._detect.remove(name)

    def get(self, name: str) -> Adapter | None:
        return self._adapters.get(name)

    def __getitem__(self, name: str) -> Adapter:
        try:
            return self._adapters[name]
        except KeyError:
            raise errors.ProviderNotFoundError(
                f"no provider named {name!r} is registered", provider=name
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._adapters

    def __iter__(self) -> Iterator[str]:
        return iter(self._adapters)

    def __len__(self) -> int:
        return len(self._adapters)

    def names(self) -> list[str]:
        return sorted(self._adapters)

    def detect(self, model: str) -> str | None:
        """The provider that claims a bare model name, or None."""
        return self._detect.detect(model)

    def capabilities(self) -> dict[str, frozenset[str]]:
        """Provider name -> the endpoints it offers."""
        return {name: frozenset(a.endpoints) for name, a in sorted(self._adapters.items())}

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        from importlib.metadata import entry_points  # a few ms: only when asked

        for point in entry_points(group=group):
            try:
                loaded: Any = point.load()
                # A class is instantiated (a class object can pass the Adapter protocol
                # check: its fields are descriptors); a factory is called.
                calls = isinstance(loaded, type) or not isinstance(loaded, Adapter)
                found = loaded() if calls and callable(loaded) else loaded
                for adapter in found if isinstance(found, (list, tuple)) else (found,):
                    if not isinstance(adapter, Adapter):
                        raise TypeError(f"{adapter!r} is not a provider adapter")
                    self.register(adapter)
            except Exception as exc:
                self.load_errors[point.name] = f"{type(exc).__name__}: {exc}"
                import structlog

                structlog.get_logger("dispatchline.providers").warning(
                    "provider_load_failed", entry_point=point.name, error=repr(exc)
                )

    def __repr__(self) -> str:
        return f"ProviderRegistry({len(self._adapters)} providers)"
