"""Which provider and model a user's model string names.

``"provider/model"`` names the provider; ``provider=`` overrides; a bare name
(``gpt-4o-mini``) is looked up in an auto-detect table of exact names, then of
prefixes. No step scans the registered providers: an exact lookup is one dict
probe, and a prefix lookup probes one dict once per distinct prefix length,
a number bounded by the longest prefix, not by how many providers there are.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Protocol

from pipeline import errors


class ProviderNames(Protocol):
    def __contains__(self, name: object) -> bool: ...

    def names(self) -> list[str]: ...

    def detect(self, model: str) -> str | None: ...


class AutoDetect:
    """Exact model names and model-name prefixes, each claimed by one provider.

    When two providers claim the same name or prefix, the higher ``priority``
    wins; on a tie, the first to claim it keeps it.
    """

    __slots__ = ("_exact", "_lengths", "_prefixes")

    def __init__(self) -> None:
        self._exact: dict[str, tuple[int, str]] = {}
        self._prefixes: dict[str, tuple[int, str]] = {}
        self._lengths: tuple[int, ...] = ()

    def add(
        self,
        provider: str,
        *,
        models: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        priority: int = 0,
    ) -> None:
        for table, keys in ((self._exact, models), (self._prefixes, prefixes)):
            for key in keys:
                key = key.lower()
                held = table.get(key)
                if held is None or priority > held[0]:
                    table[key] = (priority, provider)
        self._lengths = tuple(sorted({len(p) for p in self._prefixes}, reverse=True))

    def remove(self, provider: str) -> None:
        for table in (self._exact, self._prefixes):
            for key in [k for k, (_, p) in table.items() if p == provider]:
                del table[key]
        self._lengths = tuple(sorted({len(p) for p in self._prefixes}, reverse=True))

    def detect(self, model: str) -> str | None:
        """The provider for a bare model name; the longest matching prefix wins."""
        key = model.lower()
        held = self._exact.get(key)
        if held is not None:
            return held[1]
        prefixes = self._prefixes
        size = len(key)
        for length in self._lengths:
            if length <= size:
                held = prefixes.get(key[:length])
                if held is not None:
                    return held[1]
        return None


def resolve_target(
    registry: ProviderNames, model: object, provider: str | None = None
) -> tuple[str, str]:
    """``(provider, model)`` for a user's model string; raises before any I/O."""
    if not isinstance(model, str) or not model.strip():
        raise errors.InvalidRequestError(
            f"model must be a non-empty string, got {type(model).__name__}"
        )
    if provider is not None:
        if not isinstance(provider, str) or provider not in registry:
            raise _not_found(registry, str(provider), model)
        prefix = provider + "/"
        return provider, model[len(prefix) :] if model.startswith(prefix) else model
    head, sep, tail = model.partition("/")
    if sep and head in registry:
        if not tail:
            raise errors.InvalidRequestError(
                f"{model!r} names a provider but no model", provider=head
            )
        return head, tail
    detected = registry.detect(model)
    if detected is not None:
        return detected, model
    raise _not_found(registry, head if sep else model, model)


def _not_found(registry: ProviderNames, name: str, model: str) -> errors.ProviderNotFoundError:
    close = difflib.get_close_matches(name, registry.names(), n=3, cutoff=0.5)
    hint = f"; closest known: {', '.join(close)}" if close else ""
    return errors.ProviderNotFoundError(f"no provider {name!r} for model {model!r}{hint}")
