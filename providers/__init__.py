"""Providers: the registry, the native adapters and the OpenAI-compatible table.

>>> from providers import default_registry
>>> registry = default_registry()
>>> "openai" in registry
True

The adapter classes and the testing seams are imported on first use, so
``import providers`` stays cheap: ``OpenAICompatible``, ``AzureOpenAI``,
``AnthropicMessages``, ``Gemini``, ``Ollama``, ``Cohere``, ``mock_provider``,
``echo_handler``, ``Script``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from providers.registry import ENTRY_POINT_GROUP, ProviderRegistry

if TYPE_CHECKING:
    from providers.anthropic import AnthropicMessages
    from providers.azure import AzureOpenAI
    from providers.cohere import Cohere
    from providers.gemini import Gemini
    from providers.mock import Script, echo_handler, mock_provider
    from providers.ollama import Ollama
    from providers.openai_compatible import OpenAICompatible

__all__ = [
    "ENTRY_POINT_GROUP",
    "AnthropicMessages",
    "AzureOpenAI",
    "Cohere",
    "Gemini",
    "Ollama",
    "OpenAICompatible",
    "ProviderRegistry",
    "Script",
    "capabilities",
    "default_registry",
    "echo_handler",
    "mock_provider",
]

# name -> the module that defines it
_LAZY: dict[str, str] = {
    "AnthropicMessages": "providers.anthropic",
    "AzureOpenAI": "providers.azure",
    "Cohere": "providers.cohere",
    "Gemini": "providers.gemini",
    "Ollama": "providers.ollama",
    "OpenAICompatible": "providers.openai_compatible",
    "Script": "providers.mock",
    "echo_handler": "providers.mock",
    "mock_provider": "providers.mock",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'providers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
