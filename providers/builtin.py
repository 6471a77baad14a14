"""Every provider that ships with dispatchline: one line per native adapter.

This tuple is the one place a built-in provider is registered; the package's
lazily exported adapter classes (``providers.Gemini``...) are derived from it.
"""

from __future__ import annotations

from functools import cache

from pipeline.adapter import Adapter
from providers.anthropic import ANTHROPIC
from providers.azure import AZURE
from providers.cohere import COHERE
from providers.compatible import COMPATIBLE
from providers.gemini import GEMINI
from providers.mock import mock_provider
from providers.ollama import OLLAMA
from providers.openai import OPENAI

BUILTIN: tuple[Adapter, ...] = (
    mock_provider(),
    OPENAI,
    AZURE,
    ANTHROPIC,
    OLLAMA,
    COHERE,
    GEMINI,
    *COMPATIBLE,
)


@cache
def adapter_classes() -> dict[str, type]:
    """Class name -> class, for the adapter class of every built-in provider."""
    return {type(adapter).__name__: type(adapter) for adapter in BUILTIN}
