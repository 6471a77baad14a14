"""Providers: the registry, the native adapters and the OpenAI-compatible table.

>>> from providers import default_registry
>>> registry = default_registry()
>>> "openai" in registry
True
"""

from __future__ import annotations

from providers.mock import Script, echo_handler, mock_provider
from providers.openai_compatible import OpenAICompatible
from providers.registry import ENTRY_POINT_GROUP, ProviderRegistry

__all__ = [
    "ENTRY_POINT_GROUP",
    "OpenAICompatible",
    "ProviderRegistry",
    "Script",
    "capabilities",
    "default_registry",
    "echo_handler",
    "mock_provider",
]


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
