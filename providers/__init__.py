"""Providers: the registry, the native adapters and the OpenAI-compatible table.

>>> from providers import default_registry
>>> registry = default_registry()
>>> "openai" in registry
True

Every adapter class of a built-in provider is also a name of this package
(``providers.Gemini``, ``providers.OpenAICompatible``...), found from the
registered built-ins (:mod:`providers.builtin`) on first use, so
``import providers`` stays cheap and a new provider is registered in one
place. The testing seams (``mock_provider``, ``echo_handler``, ``Script``)
load on first use too. For typed code, import a class from its module
(``from providers.gemini import Gemini``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from providers.registry import ENTRY_POINT_GROUP, ProviderRegistry

if TYPE_CHECKING:
    from providers.mock import Script, echo_handler, mock_provider

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderRegistry",
    "Script",
    "capabilities",
    "default_registry",
    "echo_handler",
    "mock_provider",
]

_SEAMS = frozenset({"Script", "echo_handler", "mock_provider"})


def __getattr__(name: str) -> Any:
    if name in _SEAMS:
        value = getattr(importlib.import_module("providers.mock"), name)
    else:
        from providers.builtin import adapter_classes

        value = adapter_classes().get(name)
        if value is None:
            raise AttributeError(f"module 'providers' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    from providers.builtin import adapter_classes

    return sorted({*globals(), *__all__, *adapter_classes()})


def default_registry(*, load_entry_points: bool = True) -> ProviderRegistry:
    """A new registry holding every built-in provider, plus installed plugins."""
    from providers.builtin import BUILTIN

    registry = ProviderRegistry(BUILTIN)
    if load_entry_points:
        registry.load_entry_points()
    return registry


def capabilities() -> dict[str, frozenset[str]]:
    """Provider name -> endpoints, for every built-in provider."""
    return default_registry(load_entry_points=False).capabilities()
